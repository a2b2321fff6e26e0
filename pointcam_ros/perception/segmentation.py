# Copyright 2026 pointcam_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Scan segmentation: region of interest, ground removal, clustering into objects.

numpy and scipy only (no torch, no open3d), so the lean runtime imports it;
:mod:`pointcam_ros.perception.segmentation_torch` is the same algorithm in
torch for the GPU and gives identical clusters.

Ground, in two steps. A plane: deterministic RANSAC (seeded RNG,
``RANSAC_ITERATIONS`` candidate planes from fixed draws, scored on at most
``RANSAC_SCORE_POINTS`` points) on the lowest 60 % of the scan, then a
least-squares refit on the inliers; accepted only when near horizontal. Then
the local level above that plane, followed outward along azimuth sectors
(:func:`ground_level`), so a sag or a crest does not turn the ground into
objects or objects into ground. Ground: at most ``ground_threshold`` above
the local level.

Clustering: connected components of the OCCUPIED voxels (``cluster_tolerance``
wide, ``cluster_z_tolerance`` high, 26-neighbourhood). The occupied voxel keys
are sorted (:func:`unique_inverse` on int64 keys), the neighbours of each voxel are
found among the occupied ones by ``searchsorted`` for the 13 forward offsets,
and ``scipy.sparse.csgraph.connected_components`` labels the graph. No dense
grid is built, so the bounding box of the scan does not matter.

Wide clusters: in streets, parked cars in a row, a pedestrian by a wall or
a bush by a facade touch at this voxel size and become one cluster, often
wider than ``max_object_size`` and then dropped with everything in it. A
cluster wider (x or y) than ``split_size`` is clustered again on its own with
``split_tolerance`` wide voxels (at most ``SPLIT_STEP * cluster_tolerance``),
and what is still too wide once more,
``SPLIT_STEP`` times finer (:func:`split_wide_clusters`). A piece is also
cut by the cluster it came from, so splitting never joins anything, and
clusters of normal size are not touched. A split that would leave more
than 1 - ``SPLIT_KEEP`` of a cluster's points in pieces too small to
classify is not taken: that cluster is sparse (far, seen by few rings), not
merged.

``PipelineConfig.segmentation = 'range'`` (issue #23; opt-in, about twice
the time of ``voxel``): after the split pass, clusters wider than :data:`RANGE_WIDE` are
cut by the range-image angle criterion of depth_clustering (a person in
front of a wall or beside a car, a pedestrian under a tree) and the pieces
that over-split a car are re-joined
(:mod:`~pointcam_ros.perception.range_image`, ``docs/segmentation.md``).

Bound, for ``M`` finite input points and any accepted parameters: time
O(M log M) (a handful of sorts and binary searches over the points, ``13``
searches over ``V <= M`` occupied voxels) and memory O(M) (a few dozen bytes
per point; at most ``13 V`` neighbour pairs), plus constants that no
parameter changes: the RANSAC block (100 x 4096 float64) and the ground
table (``GROUND_SECTORS`` x at most ``len(RANGE_EDGES)`` = 868 range bins,
one pass over the occupied bins). The split passes (at most ``SPLIT_PASSES``) are
clusterings of subsets, so the bound holds. Range, height band and voxel sizes only
change how many points and voxels there are, never an array beyond ``M`` or
``13 M``. Voxel or cell coordinates that would not fit an int64 key (an axis
spanning more than 2**20 cells) are first compressed per axis, keeping which
cells are adjacent; ValueError only if even the compressed keys overflow
(more than ~2**20 distinct cells on every axis).
"""

from dataclasses import dataclass
from typing import Optional, TypeVar

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.range_image import dense_rank, range_clusters
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Candidate planes drawn by the ground RANSAC (fixed: the result is reproducible).
RANSAC_ITERATIONS = 100
#: Candidate planes are scored on at most this many of the low points (a seeded subset).
RANSAC_SCORE_POINTS = 4096
#: The 13 forward offsets of the 26-neighbourhood (the other 13 are their negatives).
FORWARD_OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                            for dz in (-1, 0, 1) if (dx, dy, dz) > (0, 0, 0)], np.int64)
#: Largest voxel span per axis that is keyed directly (3 axes x 21 bits fit an int64).
DIRECT_SPAN = 2 ** 20
#: Azimuth sectors of the local ground level (steps of the diamond angle, ~1.4 deg).
GROUND_SECTORS = 256
#: Which low height of a cell is its ground (0 = the lowest point; 0.1 ignores noise below).
GROUND_QUANTILE = 0.1
#: m; rise over the last ground level still taken as ground (noise of the low points)...
GROUND_STEP = np.float32(0.1)
#: ...plus this per metre from the last ground (a change of grade; rings are metres apart).
GROUND_SLOPE = np.float32(0.03)
#: m; the gap to the last ground counted for GROUND_SLOPE at most (unseen ground is unknown).
GROUND_GAP = np.float32(5.0)
#: m; a cell whose points rise more above its low point holds a vertical face, not ground.
GROUND_FLAT = np.float32(0.3)
#: m; inner radius of each range bin: 1 m bins to 20 m, then 5 % wider each, to float32's end.
RANGE_EDGES = np.array([0.0] + list(range(1, 20)) + [
    20.0 * 1.05 ** k for k in range(int(np.log(1.8e19 / 20.0) / np.log(1.05)) + 1)],
    np.float32)
RANGE_EDGES_SQ = RANGE_EDGES * RANGE_EDGES
#: Re-clusterings of wide clusters; each pass is this much finer than the last.
SPLIT_PASSES = 2
SPLIT_STEP = 0.6
#: A split is taken only if this share of the cluster's points lands in pieces big enough
#: to classify (``min_cluster_points``); otherwise the cluster is sparse, not merged.
SPLIT_KEEP = 0.8


@dataclass
class Segmentation:
    """
    Result of segmenting ``M`` points.

    ``labels`` (M,) int32: object index ``0..num_objects-1``, or -1 (ground,
    outside the region of interest, filtered cluster). ``ground`` (M,) bool.
    ``plane`` (4,) float64 ``a, b, c, d`` of the ground plane (c > 0).
    ``height`` (M,) float32: each point's height above the local ground level
    (:func:`ground_level`), NaN outside the region of interest; a model input
    (:data:`~pointcam_ros.model.preprocess.GROUND_NORMALIZATIONS`).
    """

    labels: np.ndarray
    ground: np.ndarray
    plane: np.ndarray
    num_objects: int
    height: np.ndarray


def region_of_interest(xyz: np.ndarray, config: PipelineConfig) -> np.ndarray:
    """``(M,)`` bool: points inside the range ring and height band of ``config``."""
    r2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1]
    return ((r2 >= np.float32(config.min_range ** 2)) & (r2 <= np.float32(config.max_range ** 2))
            & (xyz[:, 2] >= np.float32(config.min_z)) & (xyz[:, 2] <= np.float32(config.max_z)))


def ransac_draws(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Random numbers of the ground RANSAC for ``seed``, independent of the scan.

    ``triples`` (RANSAC_ITERATIONS, 3) float64 in [0, 1): which three low
    points make each candidate plane; ``score`` (RANSAC_SCORE_POINTS,) float64
    in [0, 1): which low points score them. Scaled by the number of low points,
    so the numpy and torch fits draw the same points.
    """
    rng = np.random.default_rng(seed)
    return rng.random((RANSAC_ITERATIONS, 3)), rng.random(RANSAC_SCORE_POINTS)


def plane_height(xyz: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """Signed height ``(M,)`` float32 of ``(M, 3)`` float32 points above ``plane`` (4,)."""
    p = plane.astype(np.float32)
    return xyz[:, 0] * p[0] + xyz[:, 1] * p[1] + xyz[:, 2] * p[2] + p[3]


def _order_statistics(values: np.ndarray, fractions: tuple[float, ...]) -> list[float]:
    """
    Linear-interpolated quantiles of ``(n,)`` float32 ``values`` at ``fractions``, in float64.

    One partition for all of them (each order statistic is the same value as
    after a full sort).
    """
    positions = [fraction * (len(values) - 1) for fraction in fractions]
    below = [int(np.floor(position)) for position in positions]
    above = [min(b + 1, len(values) - 1) for b in below]
    part = np.partition(values, sorted(set(below + above)))
    out = []
    for position, b, a in zip(positions, below, above):
        lo, hi = float(part[b]), float(part[a])
        out.append(lo + (position - b) * (hi - lo))
    return out


def candidate_planes(low: np.ndarray, triples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    RANSAC candidates through three of the ``(n, 3)`` float32 ``low`` points each.

    Returns unit normals ``(I, 4)`` float64 ``a, b, c, d`` and ``(I,)`` bool
    (the three points were not collinear). Written as plain element-wise
    float64 arithmetic so the torch version gives the same bits.
    """
    pick = np.minimum((triples * len(low)).astype(np.int64), len(low) - 1)
    p = low[pick].astype(np.float64)  # (I, 3, 3)
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    n = np.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                  u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                  u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], axis=1)
    norm = np.sqrt(n[:, 0] * n[:, 0] + n[:, 1] * n[:, 1] + n[:, 2] * n[:, 2])
    valid = norm > 1e-12
    n = n / np.where(valid, norm, 1.0)[:, None]
    d = -(n[:, 0] * p[:, 0, 0] + n[:, 1] * p[:, 0, 1] + n[:, 2] * p[:, 0, 2])
    return np.concatenate([n, d[:, None]], axis=1), valid


def fit_ground(xyz: np.ndarray, threshold: float, seed: int,
               draws: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """
    Fit the ground plane ``(4,)`` float64 with normal pointing up to ``(M, 3)`` float32 points.

    RANSAC runs on the lowest 60 % of the points: ``RANSAC_ITERATIONS``
    candidate planes through three points drawn with ``seed``; the one with
    the most inliers within ``threshold`` among at most ``RANSAC_SCORE_POINTS``
    drawn points wins (first one on ties), then :func:`refine_plane` refits it
    on all its inliers. If no near-horizontal plane (normal within ~25 degrees
    of vertical) comes out, a horizontal plane at the 5th height percentile is
    returned instead. ``draws`` (from :func:`ransac_draws`) may be passed to
    skip drawing them again.
    """
    if len(xyz) < 3:
        return np.array([0.0, 0.0, 1.0, -(float(xyz[:, 2].min()) if len(xyz) else 0.0)])
    z = np.ascontiguousarray(xyz[:, 2])
    cut, floor = _order_statistics(z, (0.6, 0.05))
    low = xyz[z <= np.float32(cut)]
    fallback = np.array([0.0, 0.0, 1.0, -floor])
    if len(low) < 3:
        return fallback
    triples, score = draws if draws is not None else ransac_draws(seed)
    planes, valid = candidate_planes(low, triples)
    sample = low[np.minimum((score * len(low)).astype(np.int64), len(low) - 1)]
    sample = sample.astype(np.float64)
    distance = np.abs(planes[:, 0:1] * sample[:, 0] + planes[:, 1:2] * sample[:, 1]
                      + planes[:, 2:3] * sample[:, 2] + planes[:, 3:4])  # (I, S)
    counts = np.where(valid, (distance <= threshold).sum(axis=1), -1)
    best = int(np.argmax(counts))
    if counts[best] < 3:
        return fallback
    return upward_or(refine_plane(low, planes[best], threshold), fallback)


#: A (4,) plane: a numpy array here, a torch tensor in segmentation_torch.
PlaneT = TypeVar('PlaneT')


def upward_or(plane: PlaneT, fallback: PlaneT) -> PlaneT:
    """
    Turn ``plane`` (4,) to point up; return ``fallback`` unless it is near horizontal.

    Works on numpy arrays and torch tensors alike (the two ground-fit backends
    share it): the normal must be within ~25 degrees of vertical (n_z >= 0.9).
    """
    if plane[2] < 0:
        plane = -plane
    return fallback if plane[2] < 0.9 else plane


def refine_plane(xyz: np.ndarray, plane: np.ndarray, threshold: float) -> np.ndarray:
    """
    Least-squares refit ``(4,)`` of a unit-normal plane to its inliers within ``threshold``.

    The refit uses every inlier (at a fixed stride to at most ~10k) instead
    of three points, so the plane does not depend on which three were drawn.
    """
    inliers = xyz[np.abs(plane_height(xyz, plane)) <= np.float32(threshold)]
    inliers = inliers[::max(1, len(inliers) // 10_000)].astype(np.float64)  # fixed stride
    if len(inliers) < 3:
        return plane
    center = inliers.mean(axis=0)
    centered = inliers - center
    _, vectors = np.linalg.eigh(centered.T @ centered)
    normal = vectors[:, 0]  # smallest eigenvalue
    if normal @ plane[:3] < 0:
        normal = -normal
    return np.array([*normal, -normal @ center])


def grid_coordinates(values: np.ndarray, sizes: np.ndarray,
                     pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """
    Integer cell coordinates ``(M, D)`` int64 of ``(M, D)`` float32 points and the span ``(D,)``.

    Cells are ``sizes`` (D,) wide. Coordinates start at ``pad`` and ``span``
    is the largest coordinate plus ``pad + 1``, so a coordinate moved by up
    to ``pad`` stays inside ``[0, span)``. An axis spanning more than
    ``DIRECT_SPAN`` cells is compressed: its distinct cell indices are ranked
    with gaps capped at ``pad + 1``, so which cells lie within ``pad`` of each
    other is kept. Raises ValueError if the keys would not fit an int64.
    """
    cells = np.floor(values.astype(np.float64) / np.asarray(sizes, np.float64))
    out = np.empty(cells.shape, np.int64)
    span = np.empty(cells.shape[1], np.int64)
    for axis in range(cells.shape[1]):
        column = cells[:, axis]
        lo, hi = column.min(), column.max()
        if hi - lo < DIRECT_SPAN:
            out[:, axis] = (column - lo).astype(np.int64) + pad
            span[axis] = int(hi - lo) + 2 * pad + 1  # the largest coordinate + pad + 1
        else:
            unique, inverse = np.unique(column, return_inverse=True)
            steps = np.minimum(np.diff(unique), pad + 1).astype(np.int64)
            ranks = np.concatenate([[0], np.cumsum(steps)]).astype(np.int64) + pad
            out[:, axis] = ranks[inverse.reshape(-1)]
            span[axis] = int(ranks[-1]) + pad + 1
    if float(np.prod(span.astype(np.float64))) >= 2.0 ** 62:
        raise ValueError('the points span too many cells to key in int64 '
                         f'({span.tolist()}); reduce max_range or the height band')
    return out, span


def sortable_bits(values: np.ndarray) -> np.ndarray:
    """
    Map ``(M,)`` float32 to int64 in ``[0, 2**32)`` with the same order (exact, no ties added).

    The IEEE bits of a negative float are flipped so that integer order is
    float order; numpy and torch compute the same integers.
    """
    bits = values.view(np.int32).astype(np.int64)
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)) + 2 ** 31


def ring_sector(xyz: np.ndarray) -> np.ndarray:
    """
    Azimuth sector ``(M,)`` int64 in ``[0, GROUND_SECTORS)`` of ``(M, 3)`` float32 points.

    Sectors are equal steps of the "diamond angle" (``y / (|x| + |y|)`` per
    quadrant), monotonic in the azimuth and computed with one IEEE division,
    so numpy and torch put every point in the same sector.
    """
    x, y = xyz[:, 0], xyz[:, 1]
    total = np.abs(x) + np.abs(y)
    t = np.divide(y, total, out=np.zeros_like(y), where=total > 0)
    angle = np.where(x >= 0, np.where(y >= 0, t, np.float32(4) + t), np.float32(2) - t)
    sector = np.floor(angle * np.float32(GROUND_SECTORS / 4)).astype(np.int64)
    return np.clip(sector, 0, GROUND_SECTORS - 1)


def ground_level(xyz: np.ndarray, height: np.ndarray) -> np.ndarray:
    """
    Local ground level ``(M,)`` float32 of ``(M, 3)`` float32 points, as a height above the plane.

    ``height`` (M,) float32 is each point's height above the fitted plane.
    Real ground is not one plane (a sag or a crest moves it 0.5 m at 35 m),
    so the level is followed outward along each azimuth sector, as in
    Himmelsbach et al., "Fast segmentation of 3D point clouds for ground
    vehicles" (IV 2010): per cell (sector x range bin, ``RANGE_EDGES``) the
    ``GROUND_QUANTILE`` lowest height is the ground there if the cell is flat
    (its points rise at most ``GROUND_FLAT`` above it: several rings at one
    range are a vertical face) and it rises at most
    ``GROUND_STEP`` + ``GROUND_SLOPE`` per metre (up to ``GROUND_GAP``) above
    the last ground seen nearer in the sector (the plane at the sensor to begin with); otherwise
    the cell holds an object (a car's lowest ring, a wall) and keeps that last
    level. Downward steps are always ground. Work: one sort of the points and
    one pass over the occupied range bins (at most ``len(RANGE_EDGES)``),
    ``GROUND_SECTORS`` wide.
    """
    if len(xyz) == 0:
        return np.zeros(0, np.float32)
    r2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1]
    bins = np.searchsorted(RANGE_EDGES_SQ, r2, side='right').astype(np.int64) - 1
    width = int(bins.max()) + 1
    cell = ring_sector(xyz) * width + bins
    # By cell, then height; ties are equal heights, so any order gives the same levels
    # ('stable': timsort, fast on a scan's ring order).
    order = np.argsort(cell * 2 ** 32 + sortable_bits(height), kind='stable')
    ordered = cell[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(np.append(starts, len(ordered)))
    rank = (GROUND_QUANTILE * (counts - 1).astype(np.float64)).astype(np.int64)
    low = height[order[starts + rank]]
    flat = height[order[starts + counts - 1]] - low <= GROUND_FLAT  # not a vertical face
    table = np.full(GROUND_SECTORS * width, np.inf, np.float32)
    table[ordered[starts[flat]]] = low[flat]
    level = follow_ground(table.reshape(GROUND_SECTORS, width), np.flatnonzero(np.bincount(bins)))
    return level.reshape(-1)[cell]


def follow_ground(table: np.ndarray, occupied: np.ndarray) -> np.ndarray:
    """
    Ground level ``(S, W)`` float32 per cell, followed outward along each sector.

    ``table`` (S, W) float32: per sector and range bin the low height of a
    flat cell, ``inf`` where the cell is empty or a vertical face;
    ``occupied`` (B,) int64 the range bins that hold points, ascending. See
    :func:`ground_level`. The torch path runs this same loop on the host:
    the table is small (``GROUND_SECTORS`` x range bins), and one copy each
    way costs less than a device launch per step.
    """
    level = np.zeros_like(table)
    last = np.zeros(len(table), np.float32)  # level of the last ground cell
    last_range = np.zeros(len(table), np.float32)  # and its range
    for b in occupied:  # the occupied range bins, in order
        low = table[:, b]
        gap = np.minimum(RANGE_EDGES[b] - last_range, GROUND_GAP)
        ground = low - last <= GROUND_STEP + GROUND_SLOPE * gap
        level[:, b] = np.where(ground, low, last)
        last = level[:, b]
        last_range = np.where(ground, RANGE_EDGES[b], last_range)
    return level


def voxel_coordinates(xyz: np.ndarray, tolerance: float,
                      z_tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxel coordinates ``(M, 3)`` int64 and span ``(3,)`` (:func:`grid_coordinates`, pad 1)."""
    return grid_coordinates(xyz, np.array([tolerance, tolerance, z_tolerance]), pad=1)


def unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    ``np.unique(keys, return_inverse=True)`` of ``(M,)`` int64: ``(V,)`` sorted, ``(M,)`` int64.

    A stable argsort (timsort: fast on the runs of a scan's ring order) and a
    scatter instead of numpy's quicksort; the same arrays.
    """
    order = np.argsort(keys, kind='stable')
    ordered = keys[order]
    first = np.empty(len(keys), bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(keys), np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def cluster_voxels(xyz: np.ndarray, tolerance: float,
                   z_tolerance: float) -> tuple[np.ndarray, int]:
    """
    Label connected components of occupied voxels: ``(M,)`` int32 ids and their count.

    Voxels are ``tolerance`` wide and ``z_tolerance`` high: a spinning LiDAR's
    rings are much farther apart vertically than its points horizontally.
    Component ids are ordered by their smallest voxel key (x, then y, then z),
    the order the torch implementation produces too.
    """
    if len(xyz) == 0:
        return np.zeros(0, np.int32), 0
    cells, span = voxel_coordinates(xyz, tolerance, z_tolerance)
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
    voxels, inverse = unique_inverse(keys)
    strides = np.array([span[1] * span[2], span[2], 1], np.int64)
    sources, targets = [], []
    for offset in FORWARD_OFFSETS @ strides:
        wanted = voxels + offset
        pos = np.searchsorted(voxels, wanted)
        pos_clipped = np.minimum(pos, len(voxels) - 1)
        hit = voxels[pos_clipped] == wanted
        sources.append(np.flatnonzero(hit))
        targets.append(pos_clipped[hit])
    rows, cols = np.concatenate(sources), np.concatenate(targets)
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)),
                       shape=(len(voxels), len(voxels))).tocsr()
    count, component = connected_components(graph, directed=False)
    # Canonical ids: components in the order of their smallest voxel.
    _, first = np.unique(component, return_index=True)
    rank = np.empty(count, np.int32)
    rank[np.argsort(first, kind='stable')] = np.arange(count, dtype=np.int32)
    return rank[component][inverse], int(count)


def cluster_extent(cluster: np.ndarray, count: int, xyz: np.ndarray,
                   axes: int = 3) -> np.ndarray:
    """
    Largest extent ``(count,)`` float32 of each of ``count`` clusters over its first ``axes``.

    ``cluster`` (V,) ids of the ``(V, 3)`` float32 points ``xyz``; ``axes`` 2
    measures x and y only, 3 also z.
    """
    extent = np.zeros(count, np.float32)
    for axis in range(axes):  # per axis: ufunc.at on 1-D arrays is ~10x faster than on 2-D
        lo = np.full(count, np.inf, np.float32)
        hi = np.full(count, -np.inf, np.float32)
        np.minimum.at(lo, cluster, xyz[:, axis])
        np.maximum.at(hi, cluster, xyz[:, axis])
        extent = np.maximum(extent, hi - lo)
    return extent


def split_wide_clusters(cluster: np.ndarray, count: int, xyz: np.ndarray,
                        config: PipelineConfig) -> tuple[np.ndarray, int]:
    """
    Cluster again, finer, every cluster wider than ``config.split_size``: new ``(V,)`` ids, count.

    ``cluster`` (P,) int ids of ``count`` clusters of the P points ``xyz``
    (P, 3) float32. Pass k (at most :data:`SPLIT_PASSES`) re-clusters the
    points of the clusters still wider than ``split_size`` (x or y, axis
    aligned) with ``min(split_tolerance, SPLIT_STEP * cluster_tolerance) *
    SPLIT_STEP**k`` wide voxels. A cluster takes its split only if at least
    :data:`SPLIT_KEEP` of its points land in pieces of ``min_cluster_points``
    or more: a sparse object (a wall or a bus at 60 m on a VLP-16, points
    0.4 m apart) would crumble into dust, so it stays whole. The rule is per
    cluster: when a dense facade takes its split, a person beside it whose
    own points are too sparse to hold together is lost with the crumbs.
    Returns ``(P,)`` int64 ids ``0..K-1`` (kept clusters in their old order,
    then the new pieces) and K.
    """
    cluster = cluster.astype(np.int64)
    # Strictly finer than the clustering, or the first pass would cut nothing.
    tolerance = min(config.split_tolerance, SPLIT_STEP * config.cluster_tolerance)
    for _ in range(SPLIT_PASSES):
        wide = cluster_extent(cluster, count, xyz, axes=2) > np.float32(config.split_size)
        members = np.flatnonzero(wide[cluster])
        if len(members) == 0:
            break
        pieces, num_pieces = cluster_voxels(xyz[members], tolerance,
                                            config.cluster_z_tolerance)
        # A piece is (old cluster, fine component): never two old clusters joined.
        old = cluster[members]
        piece = pieces.astype(np.int64)
        home = np.zeros(num_pieces, np.int64)
        home[piece] = old  # a fine component's cluster (nearly always only one)
        if np.any(home[piece] != old):  # one spans two clusters: pieces are the pairs
            piece = unique_inverse(old * num_pieces + piece)[1]
        usable = np.bincount(piece)[piece] >= config.min_cluster_points
        kept = np.bincount(old[usable], minlength=count)  # integer counts: exact everywhere
        take = kept[old] >= SPLIT_KEEP * np.bincount(old, minlength=count)[old]
        cluster[members[take]] = count + piece[take]
        cluster = dense_rank(cluster, count + len(members))  # kept ones, then pieces
        count = int(cluster.max()) + 1
        tolerance *= SPLIT_STEP
    return cluster, count


def keep_clusters(cluster: np.ndarray, count: int, xyz: np.ndarray,
                  config: PipelineConfig) -> np.ndarray:
    """
    Renumber ``count`` clusters of ``(V,)`` ids ``cluster``: ``(count,)`` int32, -1 dropped.

    A cluster is kept if it has ``min_cluster_points..max_cluster_points``
    points and a longest extent along x, y or z (``xyz`` (V, 3) float32) in
    ``min_object_size..max_object_size`` (so thin poles count by their
    height); kept clusters are numbered ``0..K-1`` in order of their first point.
    """
    sizes = np.bincount(cluster, minlength=count)
    extent = cluster_extent(cluster, count, xyz)
    keep = ((sizes >= config.min_cluster_points) & (sizes <= config.max_cluster_points)
            & (extent >= np.float32(config.min_object_size))
            & (extent <= np.float32(config.max_object_size)))
    first = np.full(count, len(cluster), np.int64)
    np.minimum.at(first, cluster, np.arange(len(cluster)))
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(first[kept], kind='stable')]
    remap = np.full(count, -1, np.int32)
    remap[kept] = np.arange(len(kept), dtype=np.int32)
    return remap


#: Clustering designs of :func:`segment_scene` (``bench/segmentation_compare.py`` measures
#: them). ``voxel``: voxel components, wide ones split finer (:func:`split_wide_clusters`).
#: ``range``: ``voxel``, then the clusters wider than :data:`RANGE_WIDE` cut by the angle
#: criterion and over-split pieces re-joined (:mod:`~pointcam_ros.perception.range_image`).
#: Measured only: ``range-nosplit`` (``range`` without the finer split), ``range-nomerge``
#: (without the split and without re-joining: the issue's feasibility check) and ``angle``
#: (the angle criterion alone, depth_clustering). ``PipelineConfig.segmentation`` selects
#: ``voxel`` or ``range``.
DESIGNS = ('voxel', 'range', 'range-nosplit', 'range-nomerge', 'angle')
#: m; voxel clusters wider (x or y) than this are cut by the angle criterion (designs range*).
RANGE_WIDE = 1.2


def cluster_points(xyz: np.ndarray, height: np.ndarray, config: PipelineConfig,
                   design: Optional[str] = None) -> tuple[np.ndarray, int]:
    """
    Cluster ``(V, 3)`` float32 non-ground points: ``(V,)`` int64 ids ``0..K-1`` and ``K``.

    ``height`` (V,) float32 above the local ground; ``design`` one of
    :data:`DESIGNS` (default ``config.segmentation``). ValueError for an
    unknown design.
    """
    design = config.segmentation if design is None else design
    if design not in DESIGNS:
        raise ValueError(f'unknown segmentation design {design!r}; use one of {DESIGNS}')
    if design == 'angle':
        one = np.zeros(len(xyz), np.int64)
        return range_clusters(xyz, height, one, 1, config.min_cluster_points, wide=-1.0,
                              merge=False)
    cluster, count = cluster_voxels(xyz, config.cluster_tolerance, config.cluster_z_tolerance)
    if count == 0:
        return cluster.astype(np.int64), 0
    if design in ('voxel', 'range'):
        cluster, count = split_wide_clusters(cluster, count, xyz, config)
    if design == 'voxel':
        return cluster, count
    return range_clusters(xyz, height, cluster, count, config.min_cluster_points,
                          wide=RANGE_WIDE, merge=design != 'range-nomerge',
                          extent=cluster_extent(cluster, count, xyz, axes=2))


def segment_scene(xyz: np.ndarray, config: PipelineConfig,
                  design: Optional[str] = None) -> Segmentation:
    """
    Split ``(M, 3)`` float32 finite points into ground, objects and the rest.

    Ground: points of the region of interest at most ``ground_threshold``
    above the local ground level (every point's height above it is kept).
    Objects: clusters of the rest (:func:`cluster_points`; ``design``, one of
    :data:`DESIGNS`, defaults to ``config.segmentation``) that pass
    :func:`keep_clusters`.
    """
    num = len(xyz)
    labels = np.full(num, -1, np.int32)
    roi_idx = np.flatnonzero(region_of_interest(xyz, config))
    roi = xyz[roi_idx]
    plane = fit_ground(roi, config.ground_threshold, config.seed)
    height = plane_height(roi, plane)
    above_ground = np.full(num, np.nan, np.float32)
    above_ground[roi_idx] = height - ground_level(roi, height)
    low = above_ground[roi_idx] <= np.float32(config.ground_threshold)
    ground = np.zeros(num, bool)
    ground[roi_idx[low]] = True
    above = roi_idx[~low]
    cluster, count = cluster_points(xyz[above], above_ground[above], config, design)
    if count == 0:
        return Segmentation(labels, ground, plane, 0, above_ground)
    remap = keep_clusters(cluster, count, xyz[above], config)
    labels[above] = remap[cluster]
    return Segmentation(labels, ground, plane, int((remap >= 0).sum()), above_ground)
