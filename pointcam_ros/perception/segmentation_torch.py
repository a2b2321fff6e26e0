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
The segmentation of :mod:`~pointcam_ros.perception.segmentation` in torch, on any device.

Same steps, same arithmetic, same random draws: region of interest, RANSAC
ground fit and refit, occupied-voxel keys sorted with ``torch.unique``,
neighbour pairs by ``torch.searchsorted`` for the 13 forward offsets, then
connected components by label propagation with pointer jumping (every
component ends labelled with its smallest voxel), and the cluster filter. On
the CPU it gives the numpy path's clusters exactly (tested on simulated
scans of several sensors); on CUDA the points stay on the GPU throughout.

Bound: as the numpy path, O(M) memory; time O(M log M) per propagation
round, and the rounds needed grow with the logarithm of a component's voxel
count in practice (pointer jumping), never beyond its voxel count.
Points and results stay on the device. The transfers are a few scalars
that steer the control flow (the object count, the occupied range bins, the
extent of the voxel keys, one "changed?" flag per two pointer jumps) and the
ground-level table (``GROUND_SECTORS`` x range bins float32, about 60 KB),
which goes to the host and back once: the outward walk over the range bins
runs there, in the numpy path's own loop (``follow_ground``).
Scalars enter the kernels as Python floats, which torch rounds to float32
exactly as the numpy path's ``np.float32`` constants.
"""

from typing import NamedTuple, Optional

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception import segmentation as numpy_segmentation
from pointcam_ros.perception.segmentation import (
    DIRECT_SPAN, follow_ground, FORWARD_OFFSETS, GROUND_FLAT, GROUND_QUANTILE, GROUND_SECTORS,
    RANGE_EDGES_SQ, ransac_draws, SPLIT_KEEP, SPLIT_PASSES, SPLIT_STEP, upward_or)
import torch
from torch import Tensor


class DeviceTables(NamedTuple):
    """Constants of the segmentation on one device, made once per seed, not per scan."""

    triples: Tensor  # (RANSAC_ITERATIONS, 3) float64, see ransac_draws
    score: Tensor  # (RANSAC_SCORE_POINTS,) float64
    edges_sq: Tensor  # RANGE_EDGES_SQ, float32


def device_tables(seed: int, device: torch.device) -> DeviceTables:
    """Copy the RANSAC draws of ``seed`` and the range bins to ``device`` (once)."""
    triples, score = ransac_draws(seed)
    return DeviceTables(*(torch.as_tensor(t, device=device)
                          for t in (triples, score, RANGE_EDGES_SQ)))


def region_of_interest(xyz: Tensor, config: PipelineConfig) -> Tensor:
    """``(M,)`` bool: points of ``(M, 3)`` float32 ``xyz`` in the range ring and height band."""
    r2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1]
    return ((r2 >= config.min_range ** 2) & (r2 <= config.max_range ** 2)
            & (xyz[:, 2] >= config.min_z) & (xyz[:, 2] <= config.max_z))


def plane_height(xyz: Tensor, plane: Tensor) -> Tensor:
    """Signed height ``(M,)`` float32 of ``(M, 3)`` float32 points above ``plane`` (4,) float64."""
    p = plane.to(torch.float32)
    return xyz[:, 0] * p[0] + xyz[:, 1] * p[1] + xyz[:, 2] * p[2] + p[3]


def _order_statistic(ordered: Tensor, fraction: float) -> Tensor:
    """Linear-interpolated ``fraction`` quantile of ``(n,)`` sorted float32 values, float64."""
    position = fraction * (len(ordered) - 1)
    below = int(position // 1)
    lo = ordered[below].to(torch.float64)
    hi = ordered[min(below + 1, len(ordered) - 1)].to(torch.float64)
    return lo + (position - below) * (hi - lo)


def _candidate_planes(low: Tensor, triples: Tensor) -> tuple[Tensor, Tensor]:
    """Torch twin of ``segmentation.candidate_planes``: ``(I, 4)`` float64 and ``(I,)`` bool."""
    pick = torch.clamp((triples * len(low)).to(torch.int64), max=len(low) - 1)
    p = low[pick].to(torch.float64)
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    n = torch.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                     u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                     u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], dim=1)
    norm = torch.sqrt(n[:, 0] * n[:, 0] + n[:, 1] * n[:, 1] + n[:, 2] * n[:, 2])
    valid = norm > 1e-12
    n = n / torch.where(valid, norm, torch.ones_like(norm))[:, None]
    d = -(n[:, 0] * p[:, 0, 0] + n[:, 1] * p[:, 0, 1] + n[:, 2] * p[:, 0, 2])
    return torch.cat([n, d[:, None]], dim=1), valid


def _horizontal(offset: Tensor) -> Tensor:
    """Plane ``(4,)`` float64 ``0, 0, 1, offset`` on ``offset``'s device."""
    out = torch.zeros(4, dtype=torch.float64, device=offset.device)
    out[2] = 1.0
    out[3] = offset
    return out


def refine_plane(xyz: Tensor, plane: Tensor, threshold: float) -> Tensor:
    """Torch twin of ``segmentation.refine_plane``: least-squares refit on the inliers."""
    inliers = xyz[torch.abs(plane_height(xyz, plane)) <= threshold]
    inliers = inliers[::max(1, len(inliers) // 10_000)].to(torch.float64)
    if len(inliers) < 3:
        return plane
    center = inliers.mean(dim=0)
    centered = inliers - center
    _, vectors = torch.linalg.eigh(centered.T @ centered)
    normal = vectors[:, 0]
    if normal @ plane[:3] < 0:
        normal = -normal
    return torch.cat([normal, (-normal @ center)[None]])


def fit_ground(xyz: Tensor, threshold: float,
               draws: tuple[Tensor, Tensor]) -> Tensor:
    """
    Fit the ground plane ``(4,)`` float64 (normal up) to ``(M, 3)`` float32 points.

    ``draws`` are :func:`~pointcam_ros.perception.segmentation.ransac_draws`
    on ``xyz``'s device; see ``segmentation.fit_ground`` for the method.
    """
    if len(xyz) < 3:
        if len(xyz) == 0:
            return _horizontal(xyz.new_zeros((), dtype=torch.float64))
        return _horizontal(-xyz[:, 2].min().to(torch.float64))
    z = xyz[:, 2]
    ordered = torch.sort(z).values
    low = xyz[z <= _order_statistic(ordered, 0.6).to(torch.float32)]
    fallback = _horizontal(-_order_statistic(ordered, 0.05))
    if len(low) < 3:
        return fallback
    triples, score = draws
    planes, valid = _candidate_planes(low, triples)
    pick = torch.clamp((score * len(low)).to(torch.int64), max=len(low) - 1)
    sample = low[pick].to(torch.float64)
    distance = torch.abs(planes[:, 0:1] * sample[:, 0] + planes[:, 1:2] * sample[:, 1]
                         + planes[:, 2:3] * sample[:, 2] + planes[:, 3:4])
    counts = torch.where(valid, (distance <= threshold).sum(dim=1),
                         torch.full_like(valid, -1, dtype=torch.int64))
    best = int(torch.argmax(counts))
    if int(counts[best]) < 3:
        return fallback
    return upward_or(refine_plane(low, planes[best], threshold), fallback)


def grid_keys(values: Tensor, sizes: list[float], pad: int) -> tuple[Tensor, list[int]]:
    """
    Int64 cell keys ``(M,)`` of ``(M, D)`` float32 points and the key strides (D ints).

    Torch twin of ``segmentation.grid_coordinates`` (same ``pad``, same
    compression of axes spanning more than ``DIRECT_SPAN`` cells), flattened
    to keys: a cell moved by ``d`` (each |d_i| <= pad) has key ``key + d . strides``.
    """
    out = torch.empty(values.shape, dtype=torch.int64, device=values.device)
    for axis in range(values.shape[1]):
        column = torch.floor(values[:, axis].to(torch.float64) / float(sizes[axis]))
        lo, hi = column.min(), column.max()
        if float(hi - lo) < DIRECT_SPAN:
            out[:, axis] = (column - lo).to(torch.int64) + pad
        else:
            unique, inverse = torch.unique(column, sorted=True, return_inverse=True)
            steps = torch.clamp(torch.diff(unique), max=pad + 1).to(torch.int64)
            ranks = torch.cat([steps.new_zeros(1), torch.cumsum(steps, 0)]) + pad
            out[:, axis] = ranks[inverse]
    span = [int(v) + pad + 1 for v in out.max(dim=0).values.tolist()]
    total = 1.0
    for extent in span:
        total *= float(extent)
    if total >= 2.0 ** 62:
        raise ValueError('the points span too many cells to key in int64 '
                         f'({span}); reduce max_range or the height band')
    strides = [1] * len(span)
    for axis in range(len(span) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * span[axis + 1]
    keys = out[:, 0] * strides[0]
    for axis in range(1, len(span)):
        keys = keys + out[:, axis] * strides[axis]
    return keys, strides


def sortable_bits(values: Tensor) -> Tensor:
    """Torch twin of ``segmentation.sortable_bits``: float32 to order-keeping int64."""
    bits = values.view(torch.int32).to(torch.int64)
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)) + 2 ** 31


def ring_sector(xyz: Tensor) -> Tensor:
    """Torch twin of ``segmentation.ring_sector``: ``(M,)`` int64 azimuth sector."""
    x, y = xyz[:, 0], xyz[:, 1]
    total = torch.abs(x) + torch.abs(y)
    t = torch.where(total > 0, y / torch.where(total > 0, total, torch.ones_like(total)),
                    torch.zeros_like(y))
    four, two = 4.0, 2.0
    angle = torch.where(x >= 0, torch.where(y >= 0, t, four + t), two - t)
    sector = torch.floor(angle * GROUND_SECTORS / 4).to(torch.int64)
    return torch.clamp(sector, 0, GROUND_SECTORS - 1)


def ground_level(xyz: Tensor, height: Tensor,
                 tables: Optional[DeviceTables] = None) -> Tensor:
    """Torch twin of ``segmentation.ground_level``: ``(M,)`` float32 local ground level."""
    if len(xyz) == 0:
        return height.new_zeros(0)
    device = xyz.device
    tables = tables if tables is not None else device_tables(0, device)
    r2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1]
    bins = torch.searchsorted(tables.edges_sq, r2, right=True) - 1
    occupied = torch.nonzero(torch.bincount(bins)).reshape(-1).tolist()
    width = occupied[-1] + 1
    cell = ring_sector(xyz) * width + bins
    order = torch.argsort(cell * 2 ** 32 + sortable_bits(height))  # by cell, then height
    ordered = cell[order]
    first = torch.ones(len(ordered), dtype=torch.bool, device=device)
    first[1:] = ordered[1:] != ordered[:-1]
    starts = torch.nonzero(first).reshape(-1)
    counts = torch.diff(torch.cat([starts, starts.new_full((1,), len(ordered))]))
    rank = (GROUND_QUANTILE * (counts - 1).to(torch.float64)).to(torch.int64)
    low = height[order[starts + rank]]
    flat = height[order[starts + counts - 1]] - low <= float(GROUND_FLAT)
    table = torch.full((GROUND_SECTORS * width,), float('inf'), device=device)
    table[ordered[starts[flat]]] = low[flat]
    level = follow_ground(table.reshape(GROUND_SECTORS, width).cpu().numpy(),
                          np.asarray(occupied))  # the numpy loop, on a small table
    return torch.from_numpy(level).to(device).reshape(-1)[cell]


def voxel_keys(xyz: Tensor, tolerance: float, z_tolerance: float) -> tuple[Tensor, Tensor]:
    """Voxel keys ``(M,)`` and strides ``(3,)``: :func:`grid_keys` with pad 1."""
    return grid_keys(xyz, [tolerance, tolerance, z_tolerance], 1)


def connected_components(num: int, source: Tensor, target: Tensor) -> Tensor:
    """
    Component of each of ``num`` nodes ``(num,)`` int64: the smallest node index in it.

    Edges ``source[i] - target[i]`` (undirected). Hooking: every root takes
    the smallest root it has an edge to; then pointer jumping until every
    node points at its root; repeated until no edge joins two roots.
    """
    parent = torch.arange(num, dtype=torch.int64, device=source.device)
    while True:
        a, b = parent[source], parent[target]
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        hooked = parent.scatter_reduce(0, hi, lo, reduce='amin', include_self=True)
        while True:  # two jumps per check: one host sync less per pair
            jumped = hooked[hooked]
            jumped = jumped[jumped]
            if torch.equal(jumped, hooked):
                break
            hooked = jumped
        if torch.equal(hooked, parent):
            return parent
        parent = hooked


def cluster_voxels(xyz: Tensor, tolerance: float, z_tolerance: float) -> tuple[Tensor, int]:
    """
    Torch twin of ``segmentation.cluster_voxels``: ``(M,)`` int64 ids and their count.

    Ids are ordered by the component's smallest voxel key, as in numpy.
    """
    if len(xyz) == 0:
        return torch.zeros(0, dtype=torch.int64, device=xyz.device), 0
    keys, strides = voxel_keys(xyz, tolerance, z_tolerance)
    voxels, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    offsets = [int(o) for o in FORWARD_OFFSETS @ np.array(strides, np.int64)]
    wanted = torch.stack([voxels + offset for offset in offsets])  # (13, V)
    pos = torch.clamp(torch.searchsorted(voxels, wanted), max=len(voxels) - 1)
    hit = voxels[pos] == wanted
    source = torch.arange(len(voxels), device=xyz.device).expand_as(pos)[hit]
    root = connected_components(len(voxels), source, pos[hit])
    roots, component = torch.unique(root, sorted=True, return_inverse=True)
    return component[inverse], len(roots)


def cluster_extent(cluster: Tensor, count: int, xyz: Tensor, axes: int = 3) -> Tensor:
    """Torch twin of ``segmentation.cluster_extent``: ``(count,)`` in ``xyz``'s dtype."""
    extent = torch.zeros(count, dtype=xyz.dtype, device=xyz.device)
    for axis in range(axes):
        values = xyz[:, axis]
        lo = torch.full((count,), float('inf'), dtype=xyz.dtype, device=xyz.device)
        hi = torch.full((count,), float('-inf'), dtype=xyz.dtype, device=xyz.device)
        lo = lo.scatter_reduce(0, cluster, values, reduce='amin')
        hi = hi.scatter_reduce(0, cluster, values, reduce='amax')
        extent = torch.maximum(extent, hi - lo)
    return extent


def split_wide_clusters(cluster: Tensor, count: int, xyz: Tensor,
                        config: PipelineConfig) -> tuple[Tensor, int]:
    """
    Torch twin of ``segmentation.split_wide_clusters``: ``(P,)`` int64 ids and their count.

    Each pass that finds a wide cluster syncs with the host twice (how many
    points, how many pieces); a scan with none costs one sync.
    """
    cluster = cluster.to(torch.int64)
    tolerance = min(config.split_tolerance, SPLIT_STEP * config.cluster_tolerance)
    for _ in range(SPLIT_PASSES):
        wide = cluster_extent(cluster, count, xyz, axes=2) > config.split_size
        members = torch.nonzero(wide[cluster]).reshape(-1)
        if len(members) == 0:
            break
        pieces, num_pieces = cluster_voxels(xyz[members], tolerance,
                                            config.cluster_z_tolerance)
        old = cluster[members]
        piece = old * num_pieces + pieces
        _, piece_index = torch.unique(piece, sorted=True, return_inverse=True)
        usable = torch.bincount(piece_index)[piece_index] >= config.min_cluster_points
        kept = torch.bincount(old[usable], minlength=count)
        take = kept[old] >= SPLIT_KEEP * torch.bincount(old, minlength=count)[old]
        cluster = cluster.clone()
        cluster[members[take]] = count + piece[take]
        _, cluster = torch.unique(cluster, sorted=True, return_inverse=True)
        count = int(cluster.max()) + 1
        tolerance *= SPLIT_STEP
    return cluster, count


def keep_clusters(cluster: Tensor, count: int, xyz: Tensor, config: PipelineConfig) -> Tensor:
    """Torch twin of ``segmentation.keep_clusters``: ``(count,)`` int64 new ids, -1 dropped."""
    device = xyz.device
    sizes = torch.bincount(cluster, minlength=count)
    extent = cluster_extent(cluster, count, xyz)
    keep = ((sizes >= config.min_cluster_points) & (sizes <= config.max_cluster_points)
            & (extent >= config.min_object_size)
            & (extent <= config.max_object_size))
    first = torch.full((count,), len(cluster), dtype=torch.int64, device=device).scatter_reduce(
        0, cluster, torch.arange(len(cluster), device=device), reduce='amin')
    # Kept clusters in order of their first point: sort by first, dropped ones last.
    order = torch.argsort(torch.where(keep, first, first.new_full((), len(cluster) + 1)),
                          stable=True)
    kept = int(keep.sum())
    remap = torch.full((count,), -1, dtype=torch.int64, device=device)
    remap[order[:kept]] = torch.arange(kept, device=device)
    return remap


def segment_scene(xyz: Tensor, config: PipelineConfig,
                  tables: Optional[DeviceTables] = None) -> tuple[Tensor, Tensor, int, Tensor]:
    """
    Segment ``(M, 3)`` float32 finite points on their device.

    Returns ``labels`` (M,) int64 (object ``0..K-1`` or -1), the ground
    ``plane`` (4,) float64, ``K`` and each point's height above the local
    ground level (M,) float32 (NaN outside the region of interest); identical
    to ``segmentation.segment_scene``. ``config.segmentation == 'range'``:
    the clustering of the non-ground points runs on the host in the numpy
    code (:func:`~pointcam_ros.perception.segmentation.cluster_points`).
    ``tables``: :func:`device_tables` of ``config.seed`` on the device (made
    here if not given).
    """
    device = xyz.device
    if tables is None:
        tables = device_tables(config.seed, device)
    labels = torch.full((len(xyz),), -1, dtype=torch.int64, device=device)
    roi_idx = torch.nonzero(region_of_interest(xyz, config)).reshape(-1)
    roi = xyz[roi_idx]
    plane = fit_ground(roi, config.ground_threshold, (tables.triples, tables.score))
    height = plane_height(roi, plane)
    above_ground = torch.full((len(xyz),), float('nan'), dtype=xyz.dtype, device=device)
    above_ground[roi_idx] = height - ground_level(roi, height, tables)
    above = roi_idx[above_ground[roi_idx] > config.ground_threshold]
    points = xyz[above]
    if config.segmentation != 'voxel':
        # The range-image design runs on the host, in the numpy code itself: one copy of
        # the non-ground points each way, and the same clusters by construction.
        cluster, count = numpy_segmentation.cluster_points(
            points.cpu().numpy(), above_ground[above].cpu().numpy(), config)
        if count == 0:
            return labels, plane, 0, above_ground
        remap = numpy_segmentation.keep_clusters(cluster, count, points.cpu().numpy(), config)
        labels[above] = torch.from_numpy(remap[cluster].astype(np.int64)).to(device)
        return labels, plane, int((remap >= 0).sum()), above_ground
    cluster, count = cluster_voxels(points, config.cluster_tolerance,
                                    config.cluster_z_tolerance)
    if count == 0:
        return labels, plane, 0, above_ground
    cluster, count = split_wide_clusters(cluster, count, points, config)
    remap = keep_clusters(cluster, count, points, config)
    labels[above] = remap[cluster]
    return labels, plane, int((remap >= 0).sum()), above_ground
