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
Point and box geometry shared by the pipeline and the simulator (the one home of the box math).

Numpy only at import time: :func:`oriented_boxes_torch`, the torch twin of
:func:`oriented_box` for all objects of a scan at once, imports torch when
it is called, so ``common/`` still loads without torch.
"""

from typing import Optional, Sequence, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the torch twin's annotations; torch loads only when it is called
    from torch import Tensor


def finite_rows(xyz: np.ndarray) -> np.ndarray:
    """``(M,)`` bool: rows of an ``(M, 3)`` float array whose x, y and z are all finite."""
    # v * 0 is 0 for every finite v and NaN for NaN/Inf; this is ~10x faster than
    # isfinite(xyz).all(axis=1) and, unlike x + y + z, cannot overflow.
    with np.errstate(invalid='ignore'):
        return (xyz[:, 0] * 0 + xyz[:, 1] * 0 + xyz[:, 2] * 0) == 0


def nearest_in_plane(centers: np.ndarray, point: np.ndarray, max_distance: float) -> int:
    """
    Index of the ``centers`` (T, >=2) row nearest ``point`` (>=2,) in the x-y plane, or -1.

    -1 when there are no centers or the nearest is farther than ``max_distance`` m.
    """
    if len(centers) == 0:
        return -1
    distance = np.linalg.norm(np.asarray(centers)[:, :2] - np.asarray(point)[:2], axis=1)
    best = int(np.argmin(distance))
    return best if distance[best] <= max_distance else -1


def box_at_yaw(points: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Tightest box of ``(n, 3)`` points whose length axis is at ``yaw`` (rad) about z.

    Returns center (3,) and size (3,) (length, width, height) float64.
    """
    xy = points[:, :2].astype(np.float64)
    mean = xy.mean(axis=0)
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[c, -s], [s, c]])
    local = (xy - mean) @ rotation
    lo, hi = local.min(axis=0), local.max(axis=0)
    center_xy = mean + rotation @ ((lo + hi) / 2)
    z_lo, z_hi = float(points[:, 2].min()), float(points[:, 2].max())
    return (np.array([center_xy[0], center_xy[1], (z_lo + z_hi) / 2]),
            np.array([hi[0] - lo[0], hi[1] - lo[1], z_hi - z_lo]))


#: Candidate box yaws besides the principal axis: 1 degree steps over a quarter turn
#: (a rectangle repeats every 90 degrees). Both backends read this one table.
BOX_YAWS = np.deg2rad(np.arange(90, dtype=np.float64))
BOX_COS, BOX_SIN = np.cos(BOX_YAWS), np.sin(BOX_YAWS)
#: Candidate yaws evaluated per chunk (bounds the temporary to n x 32 x 2 float64).
_YAW_CHUNK = 32
#: Table yaws projected per block in :func:`oriented_boxes` (the 90 in three blocks of
#: ``(30, rows)`` float64 temporaries).
_TABLE_CHUNK = 30
#: Box candidates the torch twin projects at a time on the CPU (``P x 8`` float64
#: temporaries).
_BOX_STEP_CPU = 8
#: On a GPU, elements of each float64 temporary of the torch box fit (16 MiB; 4-6 of them).
_BOX_BLOCK = 1 << 21


def principal_yaw(xy: np.ndarray) -> float:
    """Yaw (rad) of the principal axis of ``(n, 2)`` float64 points (closed form, 2x2 PCA)."""
    d = xy - xy.mean(axis=0)
    sxx, sxy, syy = (d[:, 0] * d[:, 0]).sum(), (d[:, 0] * d[:, 1]).sum(), (d[:, 1] * d[:, 1]).sum()
    return float(0.5 * np.arctan2(2.0 * sxy, sxx - syy))


def box_yaw(xy: np.ndarray, outline: Optional[np.ndarray] = None) -> float:
    """
    Yaw (rad) of the smallest-area box around ``(n, 2)`` float64 points, along its long side.

    Candidates: the principal axis (exact for a full rectangle) and every
    :data:`BOX_YAWS` step. A LiDAR sees a car as an L (two sides) or an I
    (one side); the principal axis of an L runs diagonally and makes a
    5 x 4.4 m box of a 4.5 x 1.8 m car, while the smallest-area box follows
    its sides. Work: ``n x 91`` projections, in chunks. ``outline`` (h, 2)
    float64, when given, holds the points projected instead: any subset of
    ``xy`` that contains its convex hull's vertices gives the same box (an
    extent is reached at a hull vertex), at ``h x 91`` (a facade of 7,000
    points has a few dozen vertices). The principal axis uses all of ``xy``.
    """
    principal = principal_yaw(xy)
    if outline is not None:
        xy = outline
    yaws = np.concatenate([[principal], BOX_YAWS])
    cos = np.concatenate([[np.cos(principal)], BOX_COS])
    sin = np.concatenate([[np.sin(principal)], BOX_SIN])
    length = np.empty(len(yaws))
    width = np.empty(len(yaws))
    for lo in range(0, len(yaws), _YAW_CHUNK):
        c, s = cos[lo:lo + _YAW_CHUNK], sin[lo:lo + _YAW_CHUNK]
        along = xy[:, :1] * c + xy[:, 1:] * s  # (n, chunk); the torch twin's formula
        across = xy[:, 1:] * c - xy[:, :1] * s
        length[lo:lo + _YAW_CHUNK] = along.max(axis=0) - along.min(axis=0)
        width[lo:lo + _YAW_CHUNK] = across.max(axis=0) - across.min(axis=0)
    best = int(np.argmin(length * width))
    yaw = float(yaws[best])
    return yaw + np.pi / 2 if width[best] > length[best] else yaw


def oriented_box(points: np.ndarray, outline: Optional[np.ndarray] = None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """
    Box of ``(n, 3)`` points: center (3,), size (3,) (length >= width, height), yaw.

    The yaw is :func:`box_yaw`'s (0 for fewer than 3 points), ``outline``
    passed on.
    """
    yaw = 0.0
    if len(points) >= 3:
        yaw = box_yaw(points[:, :2].astype(np.float64), outline)
    center, size = box_at_yaw(points, yaw)
    return center, size, yaw


def oriented_boxes(points: np.ndarray, counts: np.ndarray,
                   outlines: Sequence[Optional[np.ndarray]]) -> np.ndarray:
    """
    Oriented boxes ``(K, 7)`` float64 (center, size, yaw) of K objects' points at once.

    ``points`` (P, 3) float32 grouped by object (object k holds ``counts[k]``
    rows, each > 0, after those of objects 0..k-1), ``counts`` (K,) int64,
    ``outlines`` K ``(h, 2)`` float64 hull vertices or None (``oriented_box``'s
    ``outline``). Bit for bit ``oriented_box(points_k, outlines[k])`` of every
    object: the candidates (:func:`box_yaw`) of all objects are projected at
    once over the outline rows (element-wise products and sums, then min and
    max by object: exact), the means are the same row-by-row sums
    (``np.add.reduceat`` along the rows sums in ``mean(axis=0)``'s order);
    only the three sums of the principal axis (numpy's pairwise order) and
    the rotations of :func:`box_at_yaw` (a BLAS product) run per object,
    with the same numpy calls as :func:`oriented_box`.
    """
    count = len(counts)
    starts = np.cumsum(counts) - counts
    xy = points[:, :2].astype(np.float64)
    mean = np.add.reduceat(xy, starts, axis=0) / counts[:, None]
    labels = np.repeat(np.arange(count), counts)
    d = xy - np.take(mean, labels, axis=0)
    products = np.stack([d[:, 0] * d[:, 0], d[:, 0] * d[:, 1], d[:, 1] * d[:, 1]])  # (3, P)
    second = np.stack([products[:, lo:lo + n].sum(axis=1) for lo, n in zip(starts, counts)])
    principal = 0.5 * np.arctan2(2.0 * second[:, 1], second[:, 0] - second[:, 2])
    yaws = np.concatenate([principal[:, None], np.broadcast_to(BOX_YAWS, (count, 90))], axis=1)
    rows = [xy[lo:lo + n] if outline is None else outline
            for lo, n, outline in zip(starts, counts, outlines)]
    sizes = np.array([len(r) for r in rows])
    outline_xy = np.concatenate(rows)
    row_starts = np.cumsum(sizes) - sizes
    length, width = _candidate_extents(outline_xy, row_starts, principal)
    best = np.argmin(length * width, axis=1)[:, None]
    yaw = np.take_along_axis(yaws, best, 1)[:, 0]
    longer = np.take_along_axis(width, best, 1)[:, 0] > np.take_along_axis(length, best, 1)[:, 0]
    yaw = np.where(longer, yaw + np.pi / 2, yaw)
    yaw[counts < 3] = 0.0
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.stack([np.stack([c, -s], 1), np.stack([s, c], 1)], 1)  # (K, 2, 2)
    local = np.empty_like(d)
    for k, (lo, n) in enumerate(zip(starts, counts)):
        local[lo:lo + n] = d[lo:lo + n] @ rotation[k]
    low = np.minimum.reduceat(local, starts, axis=0)
    high = np.maximum.reduceat(local, starts, axis=0)
    mid = (low + high) / 2
    center_xy = mean + np.stack([rotation[k] @ mid[k] for k in range(count)])
    z_lo = np.minimum.reduceat(points[:, 2], starts).astype(np.float64)
    z_hi = np.maximum.reduceat(points[:, 2], starts).astype(np.float64)
    return np.concatenate([center_xy, ((z_lo + z_hi) / 2)[:, None], high - low,
                           (z_hi - z_lo)[:, None], yaw[:, None]], axis=1)


def _candidate_extents(xy: np.ndarray, starts: np.ndarray,
                       principal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Length and width ``(K, 91)`` float64 of K objects' rows along each candidate yaw.

    ``xy`` (R, 2) float64 rows grouped by object (object k's from
    ``starts[k]``), ``principal`` (K,) float64 each object's principal yaw
    (column 0), then the :data:`BOX_YAWS` steps. Each projection is
    :func:`box_yaw`'s ``x c + y s`` (``y c - x s`` across), element-wise in
    float64, then min and max by object: exact. The table's yaws are the same
    for every object, so they are projected by broadcasting, ``_TABLE_CHUNK``
    yaws at a time in ``(chunk, R)`` rows (contiguous reductions); only the
    principal axis is gathered per row.
    """
    x, y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    labels = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(xy))))
    cos, sin = np.cos(principal)[labels], np.sin(principal)[labels]
    along = np.empty((1 + len(BOX_YAWS), len(starts)))
    across = np.empty_like(along)
    columns = [(cos, sin)] + [(BOX_COS[lo:lo + _TABLE_CHUNK, None],
                               BOX_SIN[lo:lo + _TABLE_CHUNK, None])
                              for lo in range(0, len(BOX_YAWS), _TABLE_CHUNK)]
    row = 0
    for c, s in columns:
        rows = c.shape[0] if c.ndim == 2 else 1  # the principal axis, or a table chunk
        for out, values in ((along, x * c + y * s), (across, y * c - x * s)):
            values = values.reshape(rows, len(x))
            out[row:row + rows] = (np.maximum.reduceat(values, starts, axis=1)
                                   - np.minimum.reduceat(values, starts, axis=1))
        row += rows
    return along.T, across.T


def oriented_boxes_torch(points: 'Tensor', labels: 'Tensor', counts: 'Tensor') -> 'Tensor':
    """
    Oriented boxes ``(K, 7)`` float64 (center, size, yaw) of ``(P, 3)`` points by object.

    Torch twin of :func:`oriented_box` for all K objects of a scan at once,
    on the points' device: ``points`` (P, 3) float32 object points in any
    order, ``labels`` (P,) int64 their objects ``0..K-1``, ``counts`` (K,)
    int64 the points per object (each > 0). The smallest-area box over the
    principal axis and the :data:`BOX_YAWS` steps, along its long side (yaw
    0 for objects of fewer than 3 points). The candidates are projected 8 at
    a time on the CPU (``P x 8`` float64 temporaries, cache-friendly); on a
    GPU as many at a time as keep each temporary at ``_BOX_BLOCK`` elements,
    all 91 for up to 23k object points, so that a scan costs few kernel
    launches.
    """
    import torch
    count = len(counts)
    xyz = points.to(torch.float64)
    n = counts.to(torch.float64)
    mean = torch.zeros((count, 2), dtype=torch.float64, device=points.device)
    mean = mean.index_add(0, labels, xyz[:, :2]) / n[:, None]
    d = xyz[:, :2] - mean[labels]
    second = torch.zeros((count, 3), dtype=torch.float64, device=points.device).index_add(
        0, labels, torch.stack([d[:, 0] * d[:, 0], d[:, 0] * d[:, 1], d[:, 1] * d[:, 1]], 1))
    principal = 0.5 * torch.atan2(2 * second[:, 1], second[:, 0] - second[:, 2])
    table = [torch.from_numpy(t).to(points.device) for t in (BOX_YAWS, BOX_COS, BOX_SIN)]
    yaws = torch.cat([principal[:, None], table[0].expand(count, -1)], dim=1)  # (K, 91)
    cos = torch.cat([torch.cos(principal)[:, None], table[1].expand(count, -1)], dim=1)
    sin = torch.cat([torch.sin(principal)[:, None], table[2].expand(count, -1)], dim=1)
    length = torch.empty_like(yaws)
    width = torch.empty_like(yaws)
    x, y = xyz[:, :1], xyz[:, 1:2]
    step = (_BOX_STEP_CPU if points.device.type == 'cpu'
            else max(_BOX_STEP_CPU, _BOX_BLOCK // max(1, len(labels))))
    for lo in range(0, yaws.shape[1], step):
        c, s = cos[labels, lo:lo + step], sin[labels, lo:lo + step]
        index = labels[:, None].expand(-1, c.shape[1])
        for out, values in ((length, x * c + y * s), (width, y * c - x * s)):
            top = torch.full((count, c.shape[1]), float('-inf'), dtype=torch.float64,
                             device=points.device).scatter_reduce(0, index, values, 'amax')
            low = torch.full((count, c.shape[1]), float('inf'), dtype=torch.float64,
                             device=points.device).scatter_reduce(0, index, values, 'amin')
            out[:, lo:lo + step] = top - low
    best = torch.argmin(length * width, dim=1, keepdim=True)
    yaw = yaws.gather(1, best)[:, 0]
    longer = width.gather(1, best)[:, 0] > length.gather(1, best)[:, 0]
    yaw = torch.where(longer, yaw + np.pi / 2, yaw)
    yaw = torch.where(counts >= 3, yaw, torch.zeros_like(yaw))
    c, s = torch.cos(yaw)[labels], torch.sin(yaw)[labels]
    local = torch.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c,
                         xyz[:, 2]], dim=1)
    lo = torch.full((count, 3), float('inf'), dtype=torch.float64, device=points.device)
    hi = torch.full((count, 3), float('-inf'), dtype=torch.float64, device=points.device)
    index = labels[:, None].expand(-1, 3)
    lo = lo.scatter_reduce(0, index, local, reduce='amin')
    hi = hi.scatter_reduce(0, index, local, reduce='amax')
    mid = (lo + hi) / 2
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    center = torch.stack([mean[:, 0] + cy * mid[:, 0] - sy * mid[:, 1],
                          mean[:, 1] + sy * mid[:, 0] + cy * mid[:, 1], mid[:, 2]], dim=1)
    return torch.cat([center, hi - lo, yaw[:, None]], dim=1)
