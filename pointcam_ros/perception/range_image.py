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
Range-image segmentation: the angle criterion of depth_clustering, without ring order.

Bogoslavskyi and Stachniss, "Fast range image-based segmentation of sparse
3D laser scans for online operation" (IROS 2016): two neighbouring returns
belong together when the angle ``beta`` between the farther one's beam and
the line joining the two is larger than ``theta`` (10 degrees); a person
0.3 m in front of a wall makes ``beta`` of a few degrees, a surface seen
head-on ~90 degrees.

Neighbours come from the points' angles alone, so neither ring numbers nor
the driver's point order are needed (a KITTI ``.bin``, a cloud whose NaN
rows were dropped): the points are seen from the origin (sensor frame).

* Along a ring: points are binned by elevation (:data:`ELEVATION_BIN`, finer
  than any preset's beam spacing) and sorted by azimuth in each bin; each
  point is paired with the next one and the one after (the image's
  neighbours 1 and 2 steps away, :data:`STEPS`).
* Across rings: binned by azimuth (:data:`AZIMUTH_BIN`, coarser than any
  preset's column step) and sorted by elevation; the next point and the one
  after.
* A pair counts when its gap is at most :data:`REACH` times the scan's
  typical spacing (the median gap; across rings per elevation bin, since
  real beams are not evenly spread), so one missing return is bridged and
  a hole (glass, a gap between two people, the sky) is not.

``beta`` uses the true angle between the two beams, so a bin holding two
lasers (real sensors are not on a grid) still gives correct angles.
Everything is a few sorts and element-wise arithmetic: O(N log N) time, O(N)
memory, no per-point Python loop; a scan's points usually arrive ring by
ring, and the sort along rings (timsort) is then close to O(N). A cloud
that does not look like a scan from the origin (:func:`is_range_scan`) is
not cut at all: the voxel clusters stand.

The pieces the criterion cuts are re-joined by :func:`merge_pieces` where
their union is no larger than a car and neither piece looks like a person;
see there. Its Python loop runs over candidate pairs of pieces: at most the
cut pairs (four per point) plus, per cluster of at most
:data:`MAX_PAIRWISE` pieces, the pairs of pieces that come close
(:func:`close_pairs`, a sweep); each test is O(:data:`DIRECTIONS`).

Speed (same labels, bit for bit, as the first version; the structure is
unchanged): most of the time went to memory, not arithmetic. Each fresh
array of a few hundred thousand pairs costs page faults, so
:func:`neighbour_pairs` compacts each sorted order once, straight into the
kept pairs (no per-step arrays concatenated and filtered again), and
:func:`beta_angle` gathers with ``np.take`` and computes in place (the same
operations in the same order). :func:`direction_extents` reduces one
contiguous row per direction instead of the (N, D) rows; :func:`rectangle`
reads only the first half of its products (the second half repeats them).
In :func:`merge_pieces` a crumb that joins a group no longer updates the
group's extents: they are folded in (min / max, exact in any order) only
when the group is next checked. The sorts stay as they were: across rings,
ties (two returns of one column at the same elevation, common in real and
simulated scans) are ordered by numpy's default sort, and that order picks
the pairs.
"""

import math
from typing import Optional, Union

import numpy as np
from pointcam_ros.perception.scatter import group_rows, scatter_reduce
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: rad; elevation bins of the ring neighbours (the presets' beams are 0.33-2 deg apart).
ELEVATION_BIN = math.radians(0.25)
#: rad; azimuth bins of the neighbours across rings (wider than any column step).
AZIMUTH_BIN = math.radians(0.4)
#: A neighbour is at most this many typical spacings away (2: one return missing).
REACH = 2.5
#: rad; smaller gaps are the same beam or column (not counted in the typical spacing).
SAME_ANGLE = math.radians(0.05)
#: rad; the typical spacing of a scan too sparse to measure it.
DEFAULT_SPACING = math.radians(0.4)
#: rad; points farther apart than this along rings (typically) are not a LiDAR scan
#: (the presets step 0.17-0.35 degrees, a VLP-16 at 20 Hz 0.4).
MAX_SPACING = math.radians(1.0)
#: rad; the angle criterion's threshold (depth_clustering's default).
THETA = math.radians(10.0)
#: Steps to the neighbours paired along each sort (1: adjacent, 2: one return skipped).
STEPS = (1, 2)
#: A cloud where fewer of the points have an image neighbour is not a range scan.
MIN_LINKED_SHARE = 0.5
#: m; a piece is person-sized with a footprint at most this long...
PERSON_FOOTPRINT = 1.0
#: m; ...and a top this high above the ground...
PERSON_TOP = (1.0, 2.2)
#: m; ...or a footprint at most this long and wide with a top at least this high (a
#: cyclist, a person striding or with a bag).
RIDER = (2.0, 1.0, 1.4)
#: m; two pieces are re-joined when their union's footprint fits this (length, width)...
CAR_FOOTPRINT = (5.5, 2.4)
#: m; ...and they come this close (their xy bounding boxes).
MERGE_GAP = 0.5
#: m; two returns this close are one point to the angle criterion (joined).
SAME_POINT = 1e-3
#: Most candidate pairs of pieces one scan's re-join tries, closest first. A street scan of
#: an HDL-64E has about 9,000 (15,000 at most in the benchmark scans, 6,400 in the real
#: development scans); a cloud of noise has millions, which the Python loop over them would
#: take seconds for. Beyond this the farther pairs stay apart.
MAX_MERGE_PAIRS = 100_000


def polar(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth in ``[-pi, pi]`` and elevation ``(N,)`` float64 of ``(N, 3)`` float32 points."""
    x, y, z = (xyz[:, i].astype(np.float64) for i in range(3))
    azimuth = np.arctan2(y, x)
    horizontal = np.hypot(x, y, out=x)
    return azimuth, np.arctan2(z, horizontal, out=y)


def _sorted_steps(group: np.ndarray, along: np.ndarray, stable: bool) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, list]:
    """
    Points sorted by ``group``, then ``along``; per step of :data:`STEPS`, who pairs with whom.

    ``group`` (N,) int64 bin of each point (``0 <= group < 2**20``), ``along``
    (N,) float64 the sort coordinate in ``[-pi, pi]``. Returns the order
    ``(N,)`` int64 and the sorted ``group`` and ``along`` (N,), and per step
    ``(step, same, gap)``: position ``i`` of the order pairs with ``i + step``
    when ``same[i]`` ((N - step,) bool: one group), ``gap[i]`` ((N - step,)
    float64) how much further the second is. ``stable``: ties keep the input
    order (timsort, close to O(N) on a scan's points that come ring by ring);
    else numpy's default sort, whose order of ties picks the pairs.
    """
    key = group * 8.0 + along  # group, then along
    order = np.argsort(key, kind='stable' if stable else None)
    g, a = group[order], along[order]
    steps = [(step, g[step:] == g[:-step], a[step:] - a[:-step])
             for step in STEPS if len(order) > step]
    return order, g, a, steps


def _wrap_pairs(order: np.ndarray, g: np.ndarray, a: np.ndarray) -> list:
    """
    Pair across +-pi the ends of each group of :func:`_sorted_steps`: ``[(i, j, gap, step)]``.

    The first points after -pi with the last ones before +pi (those not
    already paired directly), as ``(C,)`` int64 ``i, j``, float64 ``gap`` and
    an int ``step``; ``order``, ``g``, ``a`` (N,) as :func:`_sorted_steps` returns.
    """
    if len(order) < 2:
        return []
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)] - 1
    pairs = []
    for after in range(max(STEPS)):  # the first point after -pi, the next...
        for before in range(max(STEPS) - after):  # ...and the last ones before +pi
            first, last = starts + after, ends - before
            ok = first < last - max(STEPS) + 1  # not already paired directly
            first, last = first[ok], last[ok]
            pairs.append((order[last], order[first], a[first] + 2 * math.pi - a[last],
                          before + after + 1))
    return pairs


def _bin_medians(g: np.ndarray, d: np.ndarray, bins: int) -> np.ndarray:
    """
    Upper median ``(bins,)`` float64 of the gaps ``d`` (M,) float64 per bin ``g`` (M,) int64.

    Bins without any gap take the median of all, no gaps at all
    :data:`DEFAULT_SPACING`. One bin: by a partition instead of a sort.
    """
    if bins == 1:
        if not len(d):
            return np.full(1, DEFAULT_SPACING)
        return np.full(1, np.partition(d, len(d) // 2)[len(d) // 2])
    out = np.full(bins, np.median(d) if len(d) else DEFAULT_SPACING)
    if len(d):
        order = np.argsort(g * 8.0 + d)  # bin, then gap (gaps < 8 rad)
        g, d = g[order], d[order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        counts = np.diff(np.r_[starts, len(g)])
        out[g[starts]] = d[starts + counts // 2]
    return out


def spacing(group: np.ndarray, gap: np.ndarray, step: np.ndarray,
            bins: int) -> np.ndarray:
    """
    Typical angle between adjacent returns ``(bins,)`` float64 (rad), per bin of ``group``.

    The median of the positive gaps (above :data:`SAME_ANGLE`) between
    points one step apart (``step`` 1), per bin ``group`` (P,) int64 in
    ``[0, bins)``; bins without any take the median of all, and a scan
    without any :data:`DEFAULT_SPACING`.
    """
    use = (step == 1) & (gap > SAME_ANGLE)
    return _bin_medians(group[use], gap[use], bins)


def neighbour_pairs(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """
    Range-image neighbour pairs ``(P,)`` int64 ``i, j`` of ``(N, 3)`` float32 points.

    Along rings and across them, as the module describes; a pair may appear
    twice (harmless for connected components). How far a neighbour may be
    follows the scan: :data:`REACH` times the typical spacing of returns
    (:func:`spacing`; along rings one value for the scan, across rings one
    per elevation bin, since beams are not evenly spread). Also returns that
    typical spacing along rings (rad), which tells whether the points are a
    scan at all (:func:`is_range_scan`). Pairs come along rings (step 1,
    step 2, then across +-pi), then across rings (step 1, step 2); each
    sorted order is compacted once, straight into the kept pairs.
    """
    if len(xyz) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), math.inf
    azimuth, elevation = polar(xyz)
    row = np.floor((elevation + math.pi / 2) / ELEVATION_BIN).astype(np.int64)
    column = np.floor((azimuth + math.pi) / AZIMUTH_BIN).astype(np.int64)
    rows = int(row.max()) + 1
    sources, targets = [], []
    # Along rings: one typical spacing for the scan.
    order, g, a, steps = _sorted_steps(row, azimuth, stable=True)
    wraps = _wrap_pairs(order, g, a)
    ones = [gap[same & (gap > SAME_ANGLE)] for step, same, gap in steps if step == 1]
    ones += [gap[gap > SAME_ANGLE] for _, _, gap, step in wraps if step == 1]
    along = float(_bin_medians(np.zeros(0, np.int64), np.concatenate(ones), 1)[0])
    reach = REACH * along
    for step, same, gap in steps:
        keep = np.flatnonzero(same & (gap <= reach))
        sources.append(order[keep])
        targets.append(order[keep + step])
    for i, j, gap, _ in wraps:
        keep = gap <= reach
        sources.append(i[keep])
        targets.append(j[keep])
    # Across rings: a typical spacing per elevation bin.
    order, _, _, steps = _sorted_steps(column, elevation, stable=False)
    limit = np.full(rows, REACH * DEFAULT_SPACING)
    for step, same, gap in steps:
        if step == 1:
            use = np.flatnonzero(same & (gap > SAME_ANGLE))
            limit = REACH * _bin_medians(row[order[use]], gap[use], rows)
        keep = np.flatnonzero(same)
        source = order[keep]
        ok = gap[keep] <= limit[row[source]]
        sources.append(source[ok])
        targets.append(order[keep[ok] + step])
    return np.concatenate(sources), np.concatenate(targets), along


def beta_angle(xyz: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """
    Angle ``beta`` ``(P,)`` float64 (rad) of each pair of ``(N, 3)`` float32 points.

    ``beta = atan2(d2 sin(alpha), d1 - d2 cos(alpha))``, ``d1 >= d2`` the two
    ranges, ``alpha`` the angle between the two beams. ``source``, ``target``
    (P,) int64 point indices. Float64 throughout; the dot products are summed
    as ``(x x' + z z') + y y'`` (numpy's ``einsum`` order for three terms, so
    the angles are the same bits as before), on gathered 1-D columns. A pair
    closer than :data:`SAME_POINT` (a repeated return) has no direction:
    its beta is 90 degrees, the pair one surface.
    """
    x, y, z = (xyz[:, i].astype(np.float64) for i in range(3))
    distance = np.sqrt((x * x + z * z) + y * y)
    # In place where possible: each fresh (P,) array costs page faults, more than its sum.
    dot = np.take(x, source)
    dot *= np.take(x, target)
    term = np.take(z, source)
    term *= np.take(z, target)
    dot += term
    np.take(y, source, out=term)
    term *= np.take(y, target)
    dot += term
    da, db = np.take(distance, source), np.take(distance, target)
    np.multiply(da, db, out=term)
    np.maximum(term, 1e-300, out=term)
    cos = np.clip(np.divide(dot, term, out=dot), -1.0, 1.0, out=dot)
    sin = np.multiply(cos, cos, out=term)
    np.subtract(1.0, sin, out=sin)
    np.sqrt(sin, out=sin)
    d1 = np.maximum(da, db)
    d2 = np.minimum(da, db, out=da)
    rise = np.multiply(d2, sin, out=sin)
    run = np.subtract(d1, np.multiply(d2, cos, out=cos), out=d1)
    # rise and run are the legs of the segment joining the pair: a pair that coincides
    # (a point repeated, as merged clouds and dual returns give) has no direction; it is
    # one surface, beta = 90 degrees, not the 0 that atan2(0, 0) would cut.
    length = np.multiply(rise, rise, out=cos)  # the joining segment's squared length
    length += np.multiply(run, run, out=d2)
    same = np.less(length, SAME_POINT * SAME_POINT)
    beta = np.arctan2(rise, run, out=rise)
    np.copyto(beta, np.pi / 2, where=same)
    return beta


def dense_rank(values: np.ndarray, bound: int) -> np.ndarray:
    """
    Rank ``(N,)`` int64 ids in ``[0, bound)`` among the ids used: ``(N,)`` int64 ``0..K-1``.

    The same as ``np.unique(values, return_inverse=True)[1]`` (order kept), in
    O(N + bound) instead of a sort.
    """
    used = np.zeros(bound, bool)
    used[values] = True
    rank = np.cumsum(used) - 1
    return rank[values]


def label_components(num: int, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, int]:
    """
    Label the connected components ``(num,)`` int64 of ``num`` nodes joined by pairs.

    ``source``, ``target`` (E,) int64, repeats allowed; components are
    numbered in the order of their smallest node (scipy's search starts at
    each unlabelled node in turn). The search reads only which nodes each
    node is joined to, so the pairs go over as they are, marked canonical:
    scipy would otherwise sort all E pairs and sum the repeats first (as it
    also does to convert weights that are not float64).
    """
    pairs = coo_matrix((np.ones(len(source)), (source, target)), shape=(num, num))
    pairs.has_canonical_format = True  # skip the sort and the sum (see above)
    graph = pairs.tocsr()
    count, component = connected_components(graph, directed=False)
    return component.astype(np.int64), int(count)


def is_range_scan(num: int, source: np.ndarray, along: float) -> bool:
    """
    Whether ``num`` points look like a spinning LiDAR's scan from the origin.

    ``source`` the first points of their image neighbour pairs, ``along``
    the typical spacing along rings (:func:`neighbour_pairs`). A scan has
    returns at most :data:`MAX_SPACING` apart along its rings and at least
    :data:`MIN_LINKED_SHARE` of its points with an image neighbour; a
    sparse or synthetic cloud, or one not seen from the origin, has not.
    """
    if num == 0 or not along <= MAX_SPACING:
        return False
    linked = np.zeros(num, bool)
    linked[source] = True
    return bool(linked.mean() >= MIN_LINKED_SHARE)


def angle_pieces(xyz: np.ndarray, cluster: np.ndarray, count: int, split: np.ndarray,
                 theta: float = THETA) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """
    Cut the clusters flagged in ``split`` along the angle criterion.

    ``xyz`` (N, 3) float32 points (sensor frame), ``cluster`` (N,) int64 ids
    of ``count`` clusters, ``split`` (count,) bool. Inside a flagged cluster
    two points stay together when they are image neighbours with ``beta >
    theta``; clusters not flagged are kept as they are. Returns the new ids
    ``(N,)`` int64 ``0..K-1`` (each used), ``K``, and the cut pairs ``(C,)``
    int64 ``i, j`` (image neighbours of one flagged cluster that the
    criterion parted), for :func:`merge_pieces`. If the flagged points are
    not a range scan (:func:`is_range_scan`) nothing is cut: the voxel
    clusters are returned as they came.
    """
    cluster = cluster.astype(np.int64)
    empty = np.zeros(0, np.int64)
    sub = np.flatnonzero(split[cluster])
    points = np.take(xyz, sub, axis=0)  # all the work below is on these, in their indices
    source, target, along = neighbour_pairs(points)
    if not is_range_scan(len(sub), source, along):
        return cluster, count, empty, empty
    owner = cluster[sub]
    inside = owner[source] == owner[target]
    source, target = source[inside], target[inside]
    joined = beta_angle(points, source, target) > theta
    component, _ = label_components(len(sub), source[joined], target[joined])
    pieces = cluster.copy()
    pieces[sub] = count + component
    pieces = dense_rank(pieces, count + len(sub))
    parted = ~joined
    return pieces, int(pieces.max()) + 1, sub[source[parted]], sub[target[parted]]


#: Directions (over 180 degrees) along which footprints are measured: a rectangle at most
#: 5.6 degrees off (a 4.5 x 1.8 m car measures at most 4.6 x 2.2 m).
DIRECTIONS = 16
#: Rows per matrix product of :func:`direction_extents`: OpenBLAS runs a larger product on
#: all cores, which on a shared machine costs ~40 times more than one core (each row's
#: result does not depend on the others, so chunks give the same bits).
_GEMM_ROWS = 4096
#: Pieces of one cluster are compared pairwise (bounding boxes) up to this many pieces;
#: beyond, only pieces that the angle criterion parted are candidates.
MAX_PAIRWISE = 200
#: Per direction ``d < _HALF``, the direction at right angles is ``d + _HALF``.
_HALF = DIRECTIONS // 2


def direction_extents(xy: np.ndarray, group: np.ndarray,
                      count: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Lowest and highest projection ``(count, DIRECTIONS)`` of each group's points.

    ``xy`` (N, 2) float32 or float64, ``group`` (N,) int64 ids ``0..count-1``
    (every id used); the extents have ``xy``'s dtype. The extents of a union
    are the elementwise min / max of its parts'.
    """
    angles = np.arange(DIRECTIONS) * (math.pi / DIRECTIONS)
    order, bounds = group_rows(group, count)
    starts = bounds[:-1]
    basis = np.stack([np.cos(angles), np.sin(angles)]).astype(xy.dtype)
    ordered = np.take(xy, order, axis=0)
    # Per direction, a contiguous 1-D reduceat: ~3 times faster than reducing the (N, D) rows;
    # each block's product is turned while it is in cache.
    columns = np.empty((DIRECTIONS, len(ordered)), xy.dtype)
    for start in range(0, len(ordered), _GEMM_ROWS):  # the same bits as one product
        columns[:, start:start + _GEMM_ROWS] = (ordered[start:start + _GEMM_ROWS] @ basis).T
    lo = np.empty((DIRECTIONS, count), xy.dtype)
    hi = np.empty((DIRECTIONS, count), xy.dtype)
    for d in range(DIRECTIONS):
        np.minimum.reduceat(columns[d], starts, out=lo[d])
        np.maximum.reduceat(columns[d], starts, out=hi[d])
    return np.ascontiguousarray(lo.T), np.ascontiguousarray(hi.T)


def rectangle(lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    """
    Length and width (m) of the smallest rectangle over the directions (``(D,)`` extents).

    One group's :func:`rectangles`, the same numbers without its 2-D overhead: the
    product ``span[d] * span[d + DIRECTIONS / 2]`` repeats (bit for bit) in the second
    half, so the first smallest one is always in the first half.
    """
    span = hi - lo
    best = int((span[:_HALF] * span[_HALF:]).argmin())
    a, b = float(span[best]), float(span[best + _HALF])
    return (a, b) if a >= b else (b, a)


def rectangles(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Length and width ``(K,)`` of the smallest rectangle around each of K groups.

    ``lo``, ``hi`` (K, DIRECTIONS) projection extents (:func:`direction_extents`):
    the rectangle along direction ``d`` is ``span[d]`` by ``span[d + DIRECTIONS / 2]``.
    """
    span = hi - lo
    half = DIRECTIONS // 2
    across = np.concatenate([span[:, half:], span[:, :half]], axis=1)
    best = np.argmin(span * across, axis=1)
    a = np.take_along_axis(span, best[:, None], axis=1)[:, 0]
    b = np.take_along_axis(across, best[:, None], axis=1)[:, 0]
    return np.maximum(a, b), np.minimum(a, b)


def box_gap(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """
    Gap ``(C, 2)`` along x and y between the boxes ``a`` and ``b`` (C,) int64 (0 if they overlap).

    ``lo``, ``hi`` (K, 2) bounding boxes; the gap has their dtype. Rows gathered with
    ``np.take`` (faster than fancy indexing, the same values).
    """
    lo_a, hi_a = np.take(lo, a, axis=0), np.take(hi, a, axis=0)
    lo_b, hi_b = np.take(lo, b, axis=0), np.take(hi, b, axis=0)
    return np.maximum(np.maximum(lo_a - hi_b, 0), np.maximum(lo_b - hi_a, 0))


def close_pairs(lo: np.ndarray, hi: np.ndarray,
                owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Pieces of one cluster whose xy bounding boxes are within :data:`MERGE_GAP`: ``(C,)`` ``a, b``.

    ``lo``, ``hi`` (K, 2) float32 boxes, ``owner`` (K,) int64 clusters; only
    clusters of 2 to :data:`MAX_PAIRWISE` pieces. A sweep along x: per
    cluster the pieces sorted by their lowest x, each paired with those
    that start at most ``MERGE_GAP`` (plus 1 mm, so no pair is missed by
    rounding) beyond its highest x; on those, the exact test (the gap's
    ``hypot`` in float32, at least its x part). O(K log K + pairs tested),
    not all pairs of a cluster.
    """
    per_cluster = np.bincount(owner)
    pieces = np.flatnonzero((per_cluster[owner] >= 2) & (per_cluster[owner] <= MAX_PAIRWISE))
    if len(pieces) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start, stop = lo[pieces, 0].astype(np.float64), hi[pieces, 0].astype(np.float64)
    base = float(start.min())
    stride = float(stop.max()) - base + 1.0  # a cluster's keys never reach the next's
    rank = dense_rank(owner[pieces], len(per_cluster)).astype(np.float64) * stride
    key = rank + (start - base)
    order = np.argsort(key, kind='stable')
    reach = (rank + (stop - base) + (MERGE_GAP + 1e-3))[order]
    later = np.searchsorted(key[order], reach, side='right') - np.arange(len(order)) - 1
    later = np.maximum(later, 0)  # partners after each sorted position, in its cluster
    i = np.repeat(np.arange(len(order)), later)
    j = i + 1 + np.arange(len(i)) - np.repeat(np.cumsum(later) - later, later)
    a, b = pieces[order[i]], pieces[order[j]]
    gap = box_gap(lo, hi, a, b)
    close = np.hypot(gap[:, 0], gap[:, 1]) <= MERGE_GAP
    return a[close], b[close]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of ``(N,)`` int64 ``values``: one sort and a mask (numpy's hash is slower)."""
    ordered = np.sort(values)
    first = np.empty(len(ordered), bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def candidate_pairs(lo: np.ndarray, hi: np.ndarray, owner: np.ndarray,
                    cut_a: np.ndarray, cut_b: np.ndarray) -> np.ndarray:
    """
    Pairs of pieces to try joining ``(C, 2)`` int64, closest bounding boxes first.

    ``lo``, ``hi`` (K, 2) float64 xy bounding boxes; ``owner`` (K,) int64 the
    cluster of each piece. Pieces of one cluster within :data:`MERGE_GAP` of
    each other (clusters of at most :data:`MAX_PAIRWISE` pieces), and the
    pieces of every cut pair ``cut_a, cut_b`` (C',) int64.
    """
    a, b = close_pairs(lo, hi, owner)
    first = np.concatenate([np.minimum(cut_a, cut_b), np.minimum(a, b)])
    second = np.concatenate([np.maximum(cut_a, cut_b), np.maximum(a, b)])
    keys = sorted_unique(first[first != second] * len(owner) + second[first != second])
    a, b = keys // len(owner), keys % len(owner)
    gap = box_gap(lo, hi, a, b)
    order = np.argsort(np.hypot(gap[:, 0], gap[:, 1]), kind='stable')
    return np.stack([a[order], b[order]], axis=1)


def looks_like_person(length: Union[float, np.ndarray], width: Union[float, np.ndarray],
                      top: Union[float, np.ndarray]) -> Union[bool, np.ndarray]:
    """
    Person- or rider-sized (see :func:`merge_pieces`): numbers, or ``(K,)`` arrays.

    ``length``, ``width`` (m) of the footprint, ``top`` (m) above the ground;
    a bool, or ``(K,)`` bool for arrays.
    """
    rider = (length <= RIDER[0]) & (width <= RIDER[1]) & (top >= RIDER[2])
    return (PERSON_TOP[0] <= top) & (top <= PERSON_TOP[1]) & (
        (length <= PERSON_FOOTPRINT) | rider)


def merge_pieces(xyz: np.ndarray, height: np.ndarray, pieces: np.ndarray, count: int,
                 parent: np.ndarray, min_points: int, cut: tuple[np.ndarray, np.ndarray],
                 car: tuple[float, float] = CAR_FOOTPRINT) -> tuple[np.ndarray, int]:
    """
    Re-join pieces of one cluster that the angle criterion over-split.

    ``xyz`` (N, 3) float32, ``height`` (N,) float32 above the local ground,
    ``pieces`` (N,) int64 ids ``0..count-1`` (each used), ``parent`` (N,)
    int64 the cluster each point came from (pieces of two clusters are never
    joined), ``cut`` the point pairs the criterion parted
    (:func:`angle_pieces`). Candidates come from :func:`candidate_pairs`;
    closest first, two groups are joined when

    * one of them has fewer than ``min_points`` points (crumbs: mixed pixels,
      a lone ring, a far object's few returns), or
    * neither looks like a person or a rider (top :data:`PERSON_TOP` above
      the ground and a footprint at most :data:`PERSON_FOOTPRINT` long, or
      within :data:`RIDER`) and the union's footprint fits ``car`` (length,
      width): the sides, bonnet and roof of a car seen at a slant.

    Footprints are the smallest rectangles over :data:`DIRECTIONS`
    directions, kept per group as projection extents (a union's are the
    min / max of its parts'), so a check costs O(DIRECTIONS) (amortised: the
    groups a crumb join left pending are folded in once, at the next check). Only pieces of
    clusters cut in two or more can be joined, so only their points are
    projected. Returns ``(N,)`` int64 ids ``0..K-1`` and ``K``. The Python
    loop runs over candidate pairs of pieces, not points.
    """
    if count < 2:
        return pieces, count
    owner = np.zeros(count, np.int64)
    owner[pieces] = parent
    involved = np.flatnonzero(np.bincount(owner)[owner] >= 2)  # (n,) pieces of cut clusters
    if len(involved) < 2:
        return pieces, count
    local = np.full(count, -1, np.int64)  # piece id -> 0..n-1, order kept
    local[involved] = np.arange(len(involved))
    members = np.flatnonzero(local[pieces] >= 0)
    group = local[pieces[members]]
    lo, hi = direction_extents(np.take(xyz[:, :2], members, axis=0), group, len(involved))
    box_lo = np.stack([lo[:, 0], lo[:, DIRECTIONS // 2]], axis=1)  # x, y bounding boxes
    box_hi = np.stack([hi[:, 0], hi[:, DIRECTIONS // 2]], axis=1)
    top = np.full(len(involved), -np.inf)
    scatter_reduce(np.maximum, top, group,
                   np.nan_to_num(height[members], nan=0.0).astype(np.float64))
    cut_a, cut_b = local[pieces[cut[0]]], local[pieces[cut[1]]]
    parted = cut_a != cut_b  # two pieces (then both involved), not one
    candidates = candidate_pairs(box_lo, box_hi, owner[involved], cut_a[parted],
                                 cut_b[parted])[:MAX_MERGE_PAIRS]
    root = list(range(len(involved)))
    # Extents per group, kept lazily (crumbs join often, groups are checked seldom): a
    # root's rows of ``lo`` / ``hi`` hold its extents at its last check, and a chain (``head``,
    # ``link``, ``tail``: flat int lists, no small lists for the garbage collector to count)
    # the groups joined to it unchecked since, whose rows froze when they were joined. Min /
    # max are exact, so the extents come out the same bits in any order.
    head, tail, link = [-1] * len(involved), [-1] * len(involved), [-1] * len(involved)
    top_l = top.tolist()
    sizes_l = np.bincount(group, minlength=len(involved)).tolist()
    persons = looks_like_person(*rectangles(lo, hi), top).tolist()  # per group, while whole
    car_length, car_width = car
    # Two flat lists, not one of [a, b] lists: thousands of small lists would set off the
    # garbage collector's full passes (over every object of the process, torch's too).
    for a, b in zip(candidates[:, 0].tolist(), candidates[:, 1].tolist()):
        while root[a] != a:  # find, with path halving
            root[a] = root[root[a]]
            a = root[a]
        while root[b] != b:
            root[b] = root[root[b]]
            b = root[b]
        if a == b:
            continue
        if a > b:
            a, b = b, a  # the group keeps the smaller root
        if sizes_l[a] >= min_points and sizes_l[b] >= min_points:  # crumbs join unchecked
            for k in (a, b):
                if head[k] >= 0:  # fold in the groups joined unchecked (and k's own row)
                    rows, row = [k], head[k]
                    while row >= 0:
                        rows.append(row)
                        row = link[row]
                    lo[k] = lo[rows].min(axis=0)
                    hi[k] = hi[rows].max(axis=0)
                    head[k] = -1
                if persons[k] is None:  # no footprint needed for a top out of a person's range
                    persons[k] = (PERSON_TOP[0] <= top_l[k] <= PERSON_TOP[1] and bool(
                        looks_like_person(*rectangle(lo[k], hi[k]), top_l[k])))
                if persons[k]:
                    break
            if persons[a] or persons[b]:
                continue
            union_lo, union_hi = np.minimum(lo[a], lo[b]), np.maximum(hi[a], hi[b])
            length, width = rectangle(union_lo, union_hi)
            if length > car_length or width > car_width:
                continue
            lo[a], hi[a] = union_lo, union_hi
        else:
            link[b] = head[b]  # b, then what joined b unchecked, at the end of a's chain
            end = tail[b] if head[b] >= 0 else b
            if head[a] < 0:
                head[a] = b
            else:
                link[tail[a]] = b
            tail[a] = end
        root[b] = a
        sizes_l[a] += sizes_l[b]
        if top_l[b] > top_l[a]:
            top_l[a] = top_l[b]
        persons[a] = None
    final = np.arange(count)
    for k in range(len(root)):  # every piece to its group's root (roots come first)
        root[k] = root[root[k]]
    final[involved] = involved[root]
    merged = dense_rank(final, count)
    return merged[pieces], int(merged.max()) + 1


def range_clusters(xyz: np.ndarray, height: np.ndarray, cluster: np.ndarray, count: int,
                   min_points: int, wide: float = 1.2, merge: bool = True,
                   extent: Optional[np.ndarray] = None) -> tuple[np.ndarray, int]:
    """
    Angle-criterion pieces of the clusters wider than ``wide``, re-joined where over-split.

    ``xyz`` (N, 3) float32 non-ground points, ``height`` (N,) float32 above
    the ground, ``cluster`` (N,) int ids of ``count`` voxel clusters,
    ``extent`` (count,) float32 their xy extent (computed if None; 0 wide =
    every cluster). Returns ``(N,)`` int64 ids ``0..K-1`` and ``K``.
    """
    cluster = cluster.astype(np.int64)
    if extent is None:
        extent = np.zeros(count, np.float32)
        for axis in range(2):
            lo = np.full(count, np.inf, np.float32)
            hi = np.full(count, -np.inf, np.float32)
            scatter_reduce(np.minimum, lo, cluster, xyz[:, axis])
            scatter_reduce(np.maximum, hi, cluster, xyz[:, axis])
            extent = np.maximum(extent, hi - lo)
    split = extent > np.float32(wide)
    pieces, num, cut_a, cut_b = angle_pieces(xyz, cluster, count, split)
    if merge:
        pieces, num = merge_pieces(xyz, height, pieces, num, cluster, min_points,
                                   (cut_a, cut_b))
    return pieces, num
