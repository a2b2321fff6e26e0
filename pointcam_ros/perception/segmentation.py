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

Written once over an array namespace ``xp`` (issue #23): the functions
take numpy arrays or torch tensors (on any device) and answer in the same
backend (only :func:`ransac_draws` and the small :func:`follow_ground` are
numpy on the host for both). :func:`array_namespace` picks the backend
module: :mod:`~pointcam_ros.perception.segmentation_numpy` (numpy and
scipy; no torch, no open3d, so the lean runtime imports this module
without them) or :mod:`~pointcam_ros.perception.segmentation_torch`
(imported only when a tensor comes in). Those modules hold the array-API
spellings that differ between the libraries and the few primitives that
truly do (connected components, scatter min/max, order statistics, sorted
unique keys); everything else is here, so the two backends give the same
clusters, numbered alike, by construction (``docs/segmentation.md``, "One
algorithm, two backends").

Ground, in two steps. A plane: deterministic RANSAC (seeded RNG,
``RANSAC_ITERATIONS`` near-horizontal candidate planes, half of them through
points drawn from the lowest 30 % at each range, scored by their inliers among at most
``RANSAC_SCORE_POINTS`` points of the scan's lowest 60 %), then
least-squares refits on the inliers; accepted only when near horizontal.
Then the local level above that plane, followed outward along azimuth sectors
(:func:`ground_level`), so a sag or a crest does not turn the ground into
objects or objects into ground. Ground: at most ``ground_threshold`` above
the local level.

Clustering: connected components of the OCCUPIED voxels (``cluster_tolerance``
wide, ``cluster_z_tolerance`` high, 26-neighbourhood). The occupied voxel keys
are sorted (:func:`unique_inverse` on int64 keys), the neighbours of each voxel at
the 13 forward offsets are found among the occupied ones (:func:`neighbour_voxels`:
one ``searchsorted`` per column of three offsets), and the backend's
``connected_components`` labels the graph (scipy's csgraph, or label
propagation in torch). No dense grid is built, so the bounding box
of the scan does not matter.

Wide clusters: in streets, parked cars in a row, a pedestrian by a wall or
a bush by a facade touch at this voxel size and become one cluster, often
wider than ``max_object_size`` and then dropped as no object (a person in
one is looked for on a finer grid later: ``Segmentation.oversize``,
:mod:`~pointcam_ros.perception.split`). A
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
O(M log M) (a handful of sorts and binary searches over the points, ``4``
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
import sys
from types import ModuleType
from typing import Any, NamedTuple, Optional, TYPE_CHECKING, TypeVar, Union

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception import segmentation_numpy
from pointcam_ros.perception.range_image import range_clusters

if TYPE_CHECKING:  # torch is imported only where tensors come in (array_namespace)
    import torch

#: An array of either backend: a numpy array, or a torch tensor on any device.
Array = Union[np.ndarray, 'torch.Tensor']

#: Candidate planes drawn by the ground RANSAC (fixed: the result is reproducible).
RANSAC_ITERATIONS = 100
#: Candidate planes are scored on at most this many of the low points (a seeded subset).
RANSAC_SCORE_POINTS = 4096
#: Candidate planes scored at a time: the (rows, RANSAC_SCORE_POINTS) float64 temporaries
#: stay cache-sized (800 KiB) instead of 3.2 MiB each; the same arithmetic per element.
RANSAC_BLOCK = 25
#: Candidates are scored on points drawn from the lowest share of the scan.
RANSAC_SCORE_SHARE = 0.6
#: Half of the candidates are drawn from the lowest share of those points in each of
#: RANSAC_RANGE_BANDS bands of range (equal counts), the other half from any of them. The
#: ground is the lowest surface at every range: a scan with many returns at the sensor's
#: height (a 32-beam sensor's beams bunch near the horizon: car roofs, hedges, facades)
#: holds more of them than ground among its lowest 60 %, so three ground points seldom come
#: together in a draw from them all. The other half keeps candidates through the ground
#: under the sensor where lower ground beside the road (a bank, a fill) is the lowest in
#: the far bands; the most inliers decide between them.
RANSAC_DRAW_SHARE = 0.3
RANSAC_RANGE_BANDS = 8
#: Smallest upward normal component of the ground plane (about 25 degrees from vertical,
#: :func:`upward_or`); a steeper candidate is a wall and is not scored.
GROUND_MIN_NZ = 0.9
#: Least-squares refits of the winning candidate, each on the last one's inliers: the
#: second takes the points the first plane gained or lost at the threshold, so candidates
#: a few millimetres apart end on the same plane.
REFINE_PASSES = 2
#: The 13 forward offsets of the 26-neighbourhood (the other 13 are their negatives).
FORWARD_OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                            for dz in (-1, 0, 1) if (dx, dy, dz) > (0, 0, 0)], np.int64)
#: The (dx, dy) columns of the other 12 (dz = -1, 0, 1 each): see neighbour_voxels.
COLUMN_OFFSETS = np.array([(0, 1), (1, -1), (1, 0), (1, 1)], np.int64)
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


def array_namespace(array: Any) -> ModuleType:
    """
    Return the backend module (``xp``) of ``array``, a numpy array or a torch tensor.

    :mod:`~pointcam_ros.perception.segmentation_numpy` for a numpy array,
    :mod:`~pointcam_ros.perception.segmentation_torch` for a tensor (torch
    is imported only then). TypeError for anything else.
    """
    if isinstance(array, np.ndarray):
        return segmentation_numpy
    torch_module = sys.modules.get('torch')
    if torch_module is not None and isinstance(array, torch_module.Tensor):
        from pointcam_ros.perception import segmentation_torch
        return segmentation_torch
    raise TypeError(f'the segmentation takes numpy arrays or torch tensors, not {type(array)}')


def _f32(value: float) -> float:
    """
    ``value`` rounded to float32, as a Python float.

    Compared with float32 arrays it gives the same answer whether a backend
    compares in float32 or in float64 (it is exactly representable in both).
    """
    return float(np.float32(value))


@dataclass
class Segmentation:
    """
    Result of segmenting ``M`` points, in the backend of the points (numpy, or torch on a device).

    ``labels`` (M,) int32: object index ``0..num_objects-1``, or -1 (ground,
    outside the region of interest, filtered cluster). ``ground`` (M,) bool.
    ``plane`` (4,) float64 ``a, b, c, d`` of the ground plane (c > 0).
    ``height`` (M,) float32: each point's height above the local ground level
    (:func:`ground_level`), NaN outside the region of interest; a model input
    (:data:`~pointcam_ros.model.preprocess.GROUND_NORMALIZATIONS`).
    ``oversize`` (M,) int32: ``0..J-1`` for the points of the J clusters
    dropped for being too large, longer than ``max_object_size`` or with
    more than ``max_cluster_points`` points (a hedge, a wall, a facade; a
    person may stand in one: :mod:`~pointcam_ros.perception.split`), -1
    elsewhere.
    """

    labels: Array
    ground: Array
    plane: Array
    num_objects: int
    height: Array
    oversize: Array


class SegmentationTables(NamedTuple):
    """Constants of the segmentation in one backend (and device), made once per seed."""

    triples: Array  # (RANSAC_ITERATIONS, 3) float64, see ransac_draws
    score: Array  # (RANSAC_SCORE_POINTS,) float64
    edges_sq: Array  # (len(RANGE_EDGES),) float32: RANGE_EDGES_SQ


def ransac_draws(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Random numbers of the ground RANSAC for ``seed``, independent of the scan.

    ``triples`` (RANSAC_ITERATIONS, 3) float64 in [0, 1): which three low
    points make each candidate plane; ``score`` (RANSAC_SCORE_POINTS,) float64
    in [0, 1): which low points score them. Scaled by the number of low points,
    so that every backend draws the same points.
    """
    rng = np.random.default_rng(seed)
    return rng.random((RANSAC_ITERATIONS, 3)), rng.random(RANSAC_SCORE_POINTS)


def segmentation_tables(seed: int, xp: ModuleType = segmentation_numpy,
                        device: Any = None) -> SegmentationTables:
    """Make the RANSAC draws of ``seed`` and the range bins in backend ``xp`` on ``device``."""
    triples, score = ransac_draws(seed)
    return SegmentationTables(*(xp.asarray(t, device=device)
                                for t in (triples, score, RANGE_EDGES_SQ)))


def region_of_interest(xyz: Array, config: PipelineConfig) -> Array:
    """``(M,)`` bool: points of ``(M, 3)`` float32 ``xyz`` in the range ring and height band."""
    with np.errstate(over='ignore'):  # beyond 1.8e19 m the square is Inf: out of range, quietly
        r2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1]
    return ((r2 >= _f32(config.min_range ** 2)) & (r2 <= _f32(config.max_range ** 2))
            & (xyz[:, 2] >= _f32(config.min_z)) & (xyz[:, 2] <= _f32(config.max_z)))


def plane_height(xyz: Array, plane: Array) -> Array:
    """Signed height ``(M,)`` float32 of ``(M, 3)`` float32 points above ``plane`` (4,) float64."""
    xp = array_namespace(xyz)
    p = xp.astype(plane, xp.float32)
    return xyz[:, 0] * p[0] + xyz[:, 1] * p[1] + xyz[:, 2] * p[2] + p[3]


def candidate_planes(low: Array, triples: Array) -> tuple[Array, Array]:
    """
    RANSAC candidates through three of the ``(n, 3)`` float32 ``low`` points each.

    ``triples`` (I, 3) float64 in [0, 1) pick the points. Returns unit
    normals ``(I, 4)`` float64 ``a, b, c, d`` and ``(I,)`` bool (the three
    points were not collinear), in plain element-wise float64 arithmetic, so
    that the backends agree to the last bit or two: torch's float64 square
    root is not correctly rounded on every CPU (1 ulp off for about 1 % of
    values on the project's machine), so a candidate can differ in its last
    bit; its inlier count changes only for a point within ~1e-15 m of the
    threshold.
    """
    xp = array_namespace(low)
    pick = xp.clip(xp.astype(triples * len(low), xp.int64), 0, len(low) - 1)
    p = xp.astype(low[pick], xp.float64)  # (I, 3, 3)
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    n = xp.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                  u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                  u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], axis=1)
    norm = xp.sqrt(n[:, 0] * n[:, 0] + n[:, 1] * n[:, 1] + n[:, 2] * n[:, 2])
    valid = norm > 1e-12
    n = n / xp.where(valid, norm, 1.0)[:, None]
    d = -(n[:, 0] * p[:, 0, 0] + n[:, 1] * p[:, 0, 1] + n[:, 2] * p[:, 0, 2])
    return xp.concat([n, d[:, None]], axis=1), valid


def fit_ground(xyz: Array, threshold: float, seed: int,
               draws: Optional[tuple[Array, Array]] = None) -> Array:
    """
    Fit the ground plane ``(4,)`` float64 with normal pointing up to ``(M, 3)`` float32 points.

    RANSAC on the lowest ``RANSAC_SCORE_SHARE`` of the points: up to
    ``RANSAC_SCORE_POINTS`` of them drawn with ``seed`` score the candidates;
    ``RANSAC_ITERATIONS`` candidate planes run through three of those points,
    the first half through the lowest ``RANSAC_DRAW_SHARE`` of them in each
    band of range (:func:`lowest_by_range`). The near-horizontal candidate (normal at
    least ``GROUND_MIN_NZ`` up) with the most inliers within ``threshold``
    wins (first one on ties), then :func:`refine_plane` refits it on all its
    inliers among the lowest ``RANSAC_SCORE_SHARE``, ``REFINE_PASSES`` times.
    If no near-horizontal plane (normal within ~25 degrees of vertical) comes
    out, a horizontal plane at the 5th height percentile is returned instead.
    ``draws`` (:func:`ransac_draws`, in the backend of ``xyz``:
    :class:`SegmentationTables`) may be passed to skip drawing them again.
    """
    xp = array_namespace(xyz)
    device = xp.device(xyz)
    if len(xyz) < 3:
        offset = -(float(xyz[:, 2].min()) if len(xyz) else 0.0)
        return xp.asarray([0.0, 0.0, 1.0, offset], dtype=xp.float64, device=device)
    z = xyz[:, 2]
    cut, floor = xp.order_statistics(z, (RANSAC_SCORE_SHARE, 0.05))
    low = xp.take(xyz, xp.flatnonzero(z <= _f32(cut)))
    fallback = xp.asarray([0.0, 0.0, 1.0, -floor], dtype=xp.float64, device=device)
    if len(low) < 3:
        return fallback
    if draws is None:
        draws = segmentation_tables(seed, xp, device)[:2]
    triples, score = draws
    sample = low[xp.clip(xp.astype(score * len(low), xp.int64), 0, len(low) - 1)]
    pool = lowest_by_range(sample, RANSAC_DRAW_SHARE, RANSAC_RANGE_BANDS)
    half = len(triples) // 2  # through the lowest at each range, then through any low points
    banded, valid_banded = candidate_planes(pool, triples[:half])  # pool: >= 1 row per band
    anywhere, valid_anywhere = candidate_planes(sample, triples[half:])
    planes = xp.concat([banded, anywhere])
    valid = xp.concat([valid_banded, valid_anywhere])
    steep = xp.abs(planes[:, 2]) < GROUND_MIN_NZ
    counts = xp.where(valid & ~steep,
                      inlier_counts(planes, xp.astype(sample, xp.float64), threshold), -1)
    best = int(xp.argmax(counts))
    if int(counts[best]) < 3:
        return fallback
    plane = planes[best]
    for _ in range(REFINE_PASSES):
        plane = refine_plane(low, plane, threshold)
    return upward_or(plane, fallback)


def inlier_counts(planes: Array, sample: Array, threshold: float) -> Array:
    """
    Points within ``threshold`` of each plane: ``(I,)`` int64.

    ``planes`` (I, 4) float64 ``a, b, c, d`` (unit normals), ``sample`` (S, 3)
    float64 points. The distance ``|a x + b y + c z + d|`` is summed in that
    order, element-wise, :data:`RANSAC_BLOCK` planes at a time (the same bits
    in every backend and block size).
    """
    xp = array_namespace(planes)
    x, y, z = (xp.astype(sample[:, axis], xp.float64) for axis in range(3))  # contiguous
    counts = []
    for lo in range(0, len(planes), RANSAC_BLOCK):
        p = planes[lo:lo + RANSAC_BLOCK]
        distance = xp.abs(p[:, 0:1] * x + p[:, 1:2] * y + p[:, 2:3] * z + p[:, 3:4])
        counts.append(xp.sum(distance <= threshold, axis=1))
    return xp.concat(counts)


def lowest_by_range(points: Array, share: float, bands: int) -> Array:
    """
    Return the lowest ``share`` of ``(S, 3)`` float32 ``points`` in each of ``bands`` range bands.

    Bands hold equal counts (their edges are order statistics of the
    squared horizontal range); in each, the points at most as high as its
    ``share`` height quantile are kept, in input order: ``(P, 3)`` float32.
    """
    xp = array_namespace(points)
    if len(points) == 0:
        return points
    with np.errstate(over='ignore'):  # beyond 1.8e19 m the square is Inf: the last band, quietly
        r2 = points[:, 0] * points[:, 0] + points[:, 1] * points[:, 1]
    edges = xp.order_statistics(r2, tuple(k / bands for k in range(1, bands))) if bands > 1 else []
    band = xp.searchsorted(xp.asarray(edges, dtype=r2.dtype, device=xp.device(points)), r2,
                           side='right')
    limit = xp.full((len(points),), float('-inf'), points.dtype, xp.device(points))
    z = points[:, 2]
    for b in range(bands):
        members = band == b
        if bool(xp.any(members)):
            limit[members] = xp.order_statistics(z[members], (share,))[0]
    return xp.take(points, xp.flatnonzero(z <= limit))


#: A (4,) plane of either backend.
PlaneT = TypeVar('PlaneT')


def upward_or(plane: PlaneT, fallback: PlaneT) -> PlaneT:
    """
    Turn ``plane`` (4,) to point up; return ``fallback`` unless it is near horizontal.

    The normal must be within ~25 degrees of vertical (n_z >= :data:`GROUND_MIN_NZ`).
    """
    if plane[2] < 0:
        plane = -plane
    return fallback if plane[2] < GROUND_MIN_NZ else plane


def refine_plane(xyz: Array, plane: Array, threshold: float) -> Array:
    """
    Refit ``(4,)`` float64 a unit-normal plane to its inliers within ``threshold`` (least squares).

    ``xyz`` (M, 3) float32, ``plane`` (4,) float64. The refit uses every
    inlier (at a fixed stride to at most ~10k) instead of three points, so
    the plane does not depend on which three were drawn.
    """
    xp = array_namespace(xyz)
    inliers = xp.take(xyz, xp.flatnonzero(xp.abs(plane_height(xyz, plane)) <= _f32(threshold)))
    inliers = xp.astype(inliers[::max(1, len(inliers) // 10_000)], xp.float64)  # fixed stride
    if len(inliers) < 3:
        return plane
    center = xp.mean(inliers, axis=0)
    centered = inliers - center
    _, vectors = xp.linalg.eigh(centered.T @ centered)
    normal = vectors[:, 0]  # smallest eigenvalue
    if normal @ plane[:3] < 0:
        normal = -normal
    return xp.concat([normal, (-normal @ center).reshape(1)])


def grid_keys(values: Array, sizes: list[float], pad: int = 1) -> tuple[Array, list[int]]:
    """
    Int64 cell keys ``(M,)`` of ``(M, D)`` float32 points and the key strides (D ints).

    Cells are ``sizes`` (D floats) wide. Per axis, coordinates start at
    ``pad`` and span the largest coordinate plus ``pad + 1``, so a cell moved
    by ``d`` (each ``|d_i| <= pad``) stays inside the span and has the key
    ``key + d . strides``. An axis spanning more than ``DIRECT_SPAN`` cells is
    compressed: its distinct cell indices are ranked with gaps capped at
    ``pad + 1``, so which cells lie within ``pad`` of each other is kept.
    Raises ValueError if the keys would not fit an int64.
    """
    xp = array_namespace(values)
    keys, spans = None, []
    for axis in range(values.shape[1]):
        column = xp.floor(xp.astype(values[:, axis], xp.float64) / float(sizes[axis]))
        lo, hi = float(column.min()), float(column.max())
        if hi - lo < DIRECT_SPAN:
            coordinate = xp.astype(column - lo, xp.int64) + pad
            spans.append(int(hi - lo) + 2 * pad + 1)  # the largest coordinate + pad + 1
        else:
            unique, inverse = unique_inverse(column)
            steps = xp.astype(xp.clip(xp.diff(unique), 0, pad + 1), xp.int64)
            ranks = xp.cumulative_sum(xp.concat([xp.zeros((1,), xp.int64, xp.device(steps)),
                                                 steps])) + pad
            coordinate = ranks[inverse]
            spans.append(int(ranks[-1]) + pad + 1)
        keys = coordinate if keys is None else keys * spans[-1] + coordinate
    if float(np.prod(np.array(spans, np.float64))) >= 2.0 ** 62:
        raise ValueError('the points span too many cells to key in int64 '
                         f'({spans}); reduce max_range or the height band')
    strides = [int(np.prod(spans[axis + 1:], dtype=np.int64)) for axis in range(len(spans))]
    return keys, strides


def sortable_bits(values: Array) -> Array:
    """
    Map ``(M,)`` float32 to int64 in ``[0, 2**32)`` with the same order (exact, no ties added).

    The IEEE bits of a negative float are flipped so that integer order is
    float order; every backend computes the same integers.
    """
    xp = array_namespace(values)
    bits = xp.astype(values.view(xp.int32), xp.int64)
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)) + 2 ** 31


def ring_sector(xyz: Array) -> Array:
    """
    Azimuth sector ``(M,)`` int64 in ``[0, GROUND_SECTORS)`` of ``(M, 3)`` float32 points.

    Sectors are equal steps of the "diamond angle" (``y / (|x| + |y|)`` per
    quadrant), monotonic in the azimuth and computed with one IEEE division,
    so every backend puts every point in the same sector.
    """
    xp = array_namespace(xyz)
    x, y = xyz[:, 0], xyz[:, 1]
    total = xp.abs(x) + xp.abs(y)
    positive = total > 0
    t = xp.where(positive, y / xp.where(positive, total, 1.0), 0.0)
    angle = xp.where(x >= 0, xp.where(y >= 0, t, 4.0 + t), 2.0 - t)
    sector = xp.astype(xp.floor(angle * float(GROUND_SECTORS // 4)), xp.int64)
    return xp.clip(sector, 0, GROUND_SECTORS - 1)


def ground_level(xyz: Array, height: Array, edges_sq: Optional[Array] = None) -> Array:
    """
    Local ground level ``(M,)`` float32 of ``(M, 3)`` float32 points, as a height above the plane.

    ``height`` (M,) float32 is each point's height above the fitted plane;
    ``edges_sq`` :data:`RANGE_EDGES_SQ` in the backend of ``xyz`` (made here
    if not given). Real ground is not one plane (a sag or a crest moves it
    0.5 m at 35 m), so the level is followed outward along each azimuth
    sector, as in Himmelsbach et al., "Fast segmentation of 3D point clouds
    for ground vehicles" (IV 2010): per cell (sector x range bin,
    ``RANGE_EDGES``) the ``GROUND_QUANTILE`` lowest height is the ground
    there if the cell is flat (its points rise at most ``GROUND_FLAT`` above
    it: several rings at one range are a vertical face) and it rises at most
    ``GROUND_STEP`` + ``GROUND_SLOPE`` per metre (up to ``GROUND_GAP``) above
    the last ground seen nearer in the sector (the plane at the sensor to
    begin with); otherwise the cell holds an object (a car's lowest ring, a
    wall) and keeps that last level. Downward steps are always ground. Work:
    one sort of the points and one pass over the occupied range bins (at
    most ``len(RANGE_EDGES)``), ``GROUND_SECTORS`` wide, on the host
    (:func:`follow_ground`).
    """
    xp = array_namespace(xyz)
    device = xp.device(xyz)
    if len(xyz) == 0:
        return xp.zeros((0,), xp.float32, device)
    if edges_sq is None:
        edges_sq = xp.asarray(RANGE_EDGES_SQ, device=device)
    r2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1]
    bins = xp.searchsorted(edges_sq, r2, side='right') - 1
    occupied = xp.to_numpy(xp.flatnonzero(xp.bincount(bins)))  # ascending range bins
    width = int(occupied[-1]) + 1
    cell = ring_sector(xyz) * width + bins
    # By cell, then height; ties are equal heights, so any order gives the same levels
    # ('stable': timsort in numpy, fast on a scan's ring order).
    order = xp.argsort(cell * 2 ** 32 + sortable_bits(height), stable=True)
    ordered = cell[order]
    first = xp.ones((len(ordered),), xp.bool, device)
    first[1:] = ordered[1:] != ordered[:-1]
    starts = xp.flatnonzero(first)
    counts = xp.diff(xp.concat([starts, xp.asarray([len(ordered)], xp.int64, device)]))
    rank = xp.astype(GROUND_QUANTILE * xp.astype(counts - 1, xp.float64), xp.int64)
    low = height[order[starts + rank]]
    flat = height[order[starts + counts - 1]] - low <= _f32(GROUND_FLAT)  # not a vertical face
    table = xp.full((GROUND_SECTORS * width,), float('inf'), xp.float32, device)
    table[ordered[starts[flat]]] = low[flat]
    level = follow_ground(xp.to_numpy(table).reshape(GROUND_SECTORS, width), occupied)
    return xp.asarray(level, device=device).reshape(-1)[cell]


def follow_ground(table: np.ndarray, occupied: np.ndarray) -> np.ndarray:
    """
    Ground level ``(S, W)`` float32 per cell, followed outward along each sector.

    ``table`` (S, W) float32: per sector and range bin the low height of a
    flat cell, ``inf`` where the cell is empty or a vertical face;
    ``occupied`` (B,) int64 the range bins that hold points, ascending. See
    :func:`ground_level`. Numpy on the host for every backend: the table is
    small (``GROUND_SECTORS`` x range bins), and one copy each way costs
    less than a device launch per step.
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


def voxel_keys(xyz: Array, tolerance: float, z_tolerance: float) -> tuple[Array, list[int]]:
    """Voxel keys ``(M,)`` int64 of ``(M, 3)`` float32 points and strides: :func:`grid_keys`."""
    return grid_keys(xyz, [tolerance, tolerance, z_tolerance], pad=1)


def unique_inverse(keys: Array) -> tuple[Array, Array]:
    """
    ``np.unique(keys, return_inverse=True)`` of ``(M,)`` keys: ``(V,)`` sorted, ``(M,)`` int64.

    The backend's ``unique_inverse`` (the array API's name): a stable
    argsort and a scatter in numpy (timsort: fast on the runs of a scan's
    ring order), ``torch.unique`` in torch; the same arrays.
    """
    return array_namespace(keys).unique_inverse(keys)


def dense_rank(values: Array, bound: int) -> Array:
    """
    Rank ``(N,)`` int64 ids in ``[0, bound)`` among the ids used: ``(N,)`` int64 ``0..K-1``.

    ``unique_inverse(values)[1]`` (order kept) in O(N + bound) instead of a
    sort; :func:`~pointcam_ros.perception.range_image.dense_rank` in any backend.
    """
    xp = array_namespace(values)
    used = xp.zeros((bound,), xp.bool, xp.device(values))
    used[values] = True
    return (xp.cumulative_sum(used) - 1)[values]


def cluster_voxels(xyz: Array, tolerance: float, z_tolerance: float) -> tuple[Array, int]:
    """
    Label connected components of occupied voxels: ``(M,)`` int64 ids and their count.

    ``xyz`` (M, 3) float32. Voxels are ``tolerance`` wide and ``z_tolerance``
    high: a spinning LiDAR's rings are much farther apart vertically than its
    points horizontally. The occupied voxels' keys are sorted, the neighbours
    of each voxel at the 13 forward offsets are found among them
    (:func:`neighbour_voxels`), and the backend's ``connected_components``
    labels the graph (its ids do not depend on the order of the pairs).
    Component ids are ordered by their smallest voxel key (x, then y, then z)
    in every backend.
    """
    xp = array_namespace(xyz)
    device = xp.device(xyz)
    if len(xyz) == 0:
        return xp.zeros((0,), xp.int64, device), 0
    keys, strides = voxel_keys(xyz, tolerance, z_tolerance)
    voxels, inverse = unique_inverse(keys)
    source, target = neighbour_voxels(voxels, strides)
    component, count = xp.connected_components(len(voxels), source, target)
    return component[inverse], count


def neighbour_voxels(voxels: Array, strides: list[int]) -> tuple[Array, Array]:
    """
    Occupied forward neighbours ``(E,)`` int64 ``i, j`` of the sorted ``(V,)`` int64 voxel keys.

    ``strides`` (x, y, z) of :func:`grid_keys` (z's is 1). Voxel ``j`` is
    ``i``'s neighbour at a :data:`FORWARD_OFFSETS` offset; every such pair
    once. The offset straight up is the next key, hence the next voxel if
    occupied. The other 12 are 4 columns (dx, dy) of 3 consecutive keys (dz
    = -1, 0, 1; padding keeps them in the column), which sit at most 3
    places apart in the sorted keys: one ``searchsorted`` per column
    (:data:`COLUMN_OFFSETS`; 4 V binary searches instead of 13 V), then 3
    looks.
    """
    xp = array_namespace(voxels)
    device = xp.device(voxels)
    up = xp.flatnonzero(voxels[1:] == voxels[:-1] + 1)  # z, the last axis, has stride 1
    columns = xp.asarray(COLUMN_OFFSETS @ np.array(strides[:2], np.int64) - 1, device=device)
    lowest = voxels[None, :] + columns[:, None]  # (4, V) each column's dz = -1 key, sorted
    first = xp.searchsorted(voxels, lowest)
    pos = first[:, None, :] + xp.arange(3, xp.int64, device)[None, :, None]  # (4, 3, V)
    near = voxels[xp.clip(pos, 0, len(voxels) - 1)]
    hit = (pos < len(voxels)) & (near - lowest[:, None, :] <= 2)
    index = xp.broadcast_to(xp.arange(len(voxels), xp.int64, device), pos.shape)
    return xp.concat([up, index[hit]]), xp.concat([up + 1, pos[hit]])


def pieces_by_cluster(piece: Array, count: int, cluster: Array) -> tuple[Array, Array]:
    """
    Keep a finer cut's pieces within the clusters they were cut from.

    ``piece`` (n,) int64 ids ``0..count-1`` of a finer clustering of points
    that belong to the clusters ``cluster`` (n,) int64. A piece that spans
    two clusters (they touch at the finer grid) becomes one piece per
    cluster. Returns the pieces' ``(n,)`` int64 ids and each piece's cluster
    ``(P,)`` int64; the ids are unchanged where no piece spans two clusters
    (nearly always).
    """
    xp = array_namespace(piece)
    home = xp.zeros((count,), xp.int64, xp.device(piece))
    home[piece] = cluster  # a piece's cluster (nearly always only one)
    if bool(xp.any(home[piece] != cluster)):  # one spans two clusters: pieces are the pairs
        keys, piece = unique_inverse(cluster * count + piece)
        home = keys // count
    return piece, home


def cluster_extent(cluster: Array, count: int, xyz: Array, axes: int = 3) -> Array:
    """
    Largest extent ``(count,)`` float32 of each of ``count`` clusters over its first ``axes``.

    ``cluster`` (V,) int64 ids of the ``(V, 3)`` float32 points ``xyz``;
    ``axes`` 2 measures x and y only, 3 also z.
    """
    xp = array_namespace(xyz)
    device = xp.device(xyz)
    extent = xp.zeros((count,), xp.float32, device)
    for axis in range(axes):  # per axis: numpy's ufunc.at on 1-D arrays is ~10x faster
        lo = xp.scatter_min(xp.full((count,), float('inf'), xp.float32, device), cluster,
                            xyz[:, axis])
        hi = xp.scatter_max(xp.full((count,), float('-inf'), xp.float32, device), cluster,
                            xyz[:, axis])
        extent = xp.maximum(extent, hi - lo)
    return extent


def split_wide_clusters(cluster: Array, count: int, xyz: Array,
                        config: PipelineConfig) -> tuple[Array, int]:
    """
    Cluster again, finer, every cluster wider than ``config.split_size``: new ``(P,)`` ids, count.

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
    then the new pieces) and K. Each pass that finds a wide cluster asks
    the host a few questions (how many points, how many pieces, whether a
    piece spans two clusters); a scan with none, one.
    """
    xp = array_namespace(xyz)
    cluster = xp.astype(cluster, xp.int64)  # a copy: updated below
    # Strictly finer than the clustering, or the first pass would cut nothing.
    tolerance = min(config.split_tolerance, SPLIT_STEP * config.cluster_tolerance)
    for _ in range(SPLIT_PASSES):
        wide = cluster_extent(cluster, count, xyz, axes=2) > _f32(config.split_size)
        members = xp.flatnonzero(wide[cluster])
        if len(members) == 0:
            break
        piece, num_pieces = cluster_voxels(xp.take(xyz, members), tolerance,
                                           config.cluster_z_tolerance)
        old = cluster[members]
        piece, _ = pieces_by_cluster(piece, num_pieces, old)  # never two old clusters joined
        usable = xp.bincount(piece)[piece] >= config.min_cluster_points
        kept = xp.bincount(old[usable], minlength=count)  # integer counts: exact everywhere
        total = xp.astype(xp.bincount(old, minlength=count)[old], xp.float64)
        take = kept[old] >= SPLIT_KEEP * total
        cluster[members[take]] = count + piece[take]
        cluster = dense_rank(cluster, count + len(members))  # kept ones, then pieces
        count = int(cluster.max()) + 1
        tolerance *= SPLIT_STEP
    return cluster, count


def keep_clusters(cluster: Array, count: int, xyz: Array, config: PipelineConfig
                  ) -> tuple[Array, Array]:
    """
    Renumber ``count`` clusters of ``(V,)`` int64 ids ``cluster``: kept ones and oversize ones.

    A cluster is kept if it has ``min_cluster_points..max_cluster_points``
    points and a longest extent along x, y or z (``xyz`` (V, 3) float32) in
    ``min_object_size..max_object_size`` (so thin poles count by their
    height); kept clusters are numbered ``0..K-1`` in order of their first
    point, the others -1: ``(count,)`` int32. The second ``(count,)`` int32
    numbers ``0..J-1`` the clusters of at least ``min_cluster_points``
    dropped for being too large: longer than ``max_object_size`` or with
    more than ``max_cluster_points`` points; the others -1.
    """
    xp = array_namespace(xyz)
    device = xp.device(xyz)
    sizes = xp.bincount(cluster, minlength=count)
    extent = cluster_extent(cluster, count, xyz)
    counted = sizes >= config.min_cluster_points
    large = (extent > _f32(config.max_object_size)) | (sizes > config.max_cluster_points)
    keep = counted & (extent >= _f32(config.min_object_size)) & ~large
    first = xp.scatter_min(xp.full((count,), len(cluster), xp.int64, device), cluster,
                           xp.arange(len(cluster), xp.int64, device))
    kept = xp.flatnonzero(keep)
    kept = kept[xp.argsort(first[kept], stable=True)]
    remap = xp.full((count,), -1, xp.int32, device)
    remap[kept] = xp.arange(len(kept), xp.int32, device)
    oversize = xp.flatnonzero(counted & large)
    too_large = xp.full((count,), -1, xp.int32, device)
    too_large[oversize] = xp.arange(len(oversize), xp.int32, device)
    return remap, too_large


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


def cluster_points(xyz: Array, height: Array, config: PipelineConfig,
                   design: Optional[str] = None) -> tuple[Array, int]:
    """
    Cluster ``(V, 3)`` float32 non-ground points: ``(V,)`` int64 ids ``0..K-1`` and ``K``.

    ``height`` (V,) float32 above the local ground; ``design`` one of
    :data:`DESIGNS` (default ``config.segmentation``). ValueError for an
    unknown design. The angle criterion and the merging of the ``range``
    designs run on the host in numpy (:func:`range_clusters`), whatever the
    backend of ``xyz``: one copy of the points each way.
    """
    design = config.segmentation if design is None else design
    if design not in DESIGNS:
        raise ValueError(f'unknown segmentation design {design!r}; use one of {DESIGNS}')
    xp = array_namespace(xyz)
    if design == 'angle':
        one = np.zeros(len(xyz), np.int64)
        cluster, count = range_clusters(xp.to_numpy(xyz), xp.to_numpy(height), one, 1,
                                        config.min_cluster_points, wide=-1.0, merge=False)
        return xp.asarray(cluster, device=xp.device(xyz)), count
    cluster, count = cluster_voxels(xyz, config.cluster_tolerance, config.cluster_z_tolerance)
    if count == 0:
        return cluster, 0
    if design in ('voxel', 'range'):
        cluster, count = split_wide_clusters(cluster, count, xyz, config)
    if design == 'voxel':
        return cluster, count
    extent = cluster_extent(cluster, count, xyz, axes=2)
    cluster, count = range_clusters(xp.to_numpy(xyz), xp.to_numpy(height), xp.to_numpy(cluster),
                                    count, config.min_cluster_points, wide=RANGE_WIDE,
                                    merge=design != 'range-nomerge', extent=xp.to_numpy(extent))
    return xp.asarray(cluster, device=xp.device(xyz)), count


def segment_scene(xyz: Array, config: PipelineConfig, design: Optional[str] = None,
                  tables: Optional[SegmentationTables] = None) -> Segmentation:
    """
    Split ``(M, 3)`` float32 finite points into ground, objects and the rest.

    Ground: points of the region of interest at most ``ground_threshold``
    above the local ground level (every point's height above it is kept).
    Objects: clusters of the rest (:func:`cluster_points`; ``design``, one of
    :data:`DESIGNS`, defaults to ``config.segmentation``) that pass
    :func:`keep_clusters`. ``xyz`` a numpy array or a torch tensor on any
    device; the result is in the same backend, on the same device.
    ``tables``: :func:`segmentation_tables` of ``config.seed`` there (made
    here if not given; a pipeline makes them once).
    """
    xp = array_namespace(xyz)
    device = xp.device(xyz)
    if tables is None:
        tables = segmentation_tables(config.seed, xp, device)
    num = len(xyz)
    labels = xp.full((num,), -1, xp.int32, device)
    oversize = xp.full((num,), -1, xp.int32, device)
    roi_idx = xp.flatnonzero(region_of_interest(xyz, config))
    roi = xp.take(xyz, roi_idx)
    plane = fit_ground(roi, config.ground_threshold, config.seed, tables[:2])
    height = plane_height(roi, plane)
    above_ground = xp.full((num,), float('nan'), xp.float32, device)
    above_ground[roi_idx] = height - ground_level(roi, height, tables.edges_sq)
    low = above_ground[roi_idx] <= _f32(config.ground_threshold)
    ground = xp.zeros((num,), xp.bool, device)
    ground[roi_idx[low]] = True
    above = roi_idx[~low]
    points = xp.take(xyz, above)
    cluster, count = cluster_points(points, above_ground[above], config, design)
    if count == 0:
        return Segmentation(labels, ground, plane, 0, above_ground, oversize)
    remap, too_large = keep_clusters(cluster, count, points, config)
    labels[above] = remap[cluster]
    oversize[above] = too_large[cluster]
    return Segmentation(labels, ground, plane, int((remap >= 0).sum()), above_ground, oversize)
