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
Join the pieces of one vehicle: a merge the classifier confirms.

The segmentation cuts a vehicle where its returns part: at the windows
(glass returns little), between a side and a bonnet seen at a slant (the
angle criterion), or where an end seen head-on looks like a person, which
the range design's geometric re-join leaves apart on purpose
(:func:`~pointcam_ros.perception.range_image.merge_pieces`). Each piece is
then classified alone, and one car is shown as two or three.

Here the model decides. Objects it calls the same vehicle class
(:data:`LIMITS`) are joined when their points come within :data:`JOIN_GAP`
of each other and the union still fits that class: its footprint (the
smallest rectangle seen from above), its height and ``max_cluster_points``;
closest pairs first, so a chain of pieces joins while it fits. Classes must
match exactly: a piece called car and one called van stay apart. At least
one piece of a union must have ``min_confidence`` (a fragment or one ring of
a car's side may have less). Every union goes through the model again, in
one batch for the scan, and is kept only if the model calls it the same
class with at least ``min_confidence``: the union is explained as one
object, so its saliency explains the points it is shown with. A union takes
the lowest id of its pieces; the ids after it close up.

Two whole cars parked nose to tail do not join: their union is longer than
any car (two partly seen ends may fit, and only the model's check on the
union keeps them apart). A person beside a car does not join either: the
model must call both pieces car. The work per scan is bounded: each object
is paired with at most :data:`MAX_PARTNERS` others, and one pass explains at
most the scan's object limit of unions (the largest).
"""

from typing import Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.range_image import (
    CAR_FOOTPRINT, direction_extents, MERGE_GAP, rectangle, rectangles)
from pointcam_ros.perception.scatter import group_rows
from pointcam_ros.perception.segmentation import array_namespace
from pointcam_ros.perception.split import Explain, explain_groups
from pointcam_ros.perception.stages import largest_first, ObjectBatch, Segments
from scipy.spatial import cKDTree

#: m; (length, width, height) a union may have, per vehicle class: a car or van, the range
#: design's re-join footprint (range_image.CAR_FOOTPRINT, 5.5 x 2.4: a 4.5 x 1.8 m car seen
#: at a slant, with margin) and 3 m (a high-roof van is 2.8 m); a rigid truck or bus, 12 x
#: 2.55 m and up to 4.4 m tall, with margin.
LIMITS = {'car': (*CAR_FOOTPRINT, 3.0), 'van': (*CAR_FOOTPRINT, 3.0),
          'truck': (13.0, 3.0, 4.5), 'bus': (13.0, 3.0, 4.5)}
#: m; pieces are joined when two of their points come this close (the range design's
#: re-join gap, range_image.MERGE_GAP: a window's height on a sparse sensor at range).
JOIN_GAP = MERGE_GAP
#: Each object is paired with at most this many others, the nearest by bounding box: a
#: vehicle is cut in a few pieces, and the pairs (hence the distance queries) stay O(K).
MAX_PARTNERS = 8


def merge_vehicles(explain: Explain, segments: Segments, batch: ObjectBatch,
                   class_names: Sequence[str], config: PipelineConfig,
                   limit: int) -> ObjectBatch:
    """
    Return ``batch`` with the pieces of each vehicle joined (or ``batch`` itself).

    ``explain`` classifies and explains the objects of a :class:`Segments`
    (:func:`~pointcam_ros.perception.split.explain_with`); ``segments`` are
    the scan's F finite points, ``batch`` their K explained objects
    (``labels`` (F,) int32, -1 outside objects); ``limit`` the most unions
    one model pass explains (the largest are kept; the others stay apart).
    A union takes the lowest id of its pieces and the ids after the dropped
    ones close up: the result has ids 0..K'-1, K' <= K.
    """
    groups = vehicle_groups(segments, batch, class_names, config)
    if not groups:
        return batch
    owner = np.full(len(batch) + 1, -1, np.int64)  # object id -> its group; [-1] stays -1
    for j, members in enumerate(groups):
        owner[members] = j
    point_group = owner[batch.labels]
    rows = np.flatnonzero(point_group >= 0)
    order, bounds = group_rows(point_group[rows], len(groups))
    rows = rows[order]
    unions = [rows[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
    if len(groups) > limit:  # the largest unions, in their order
        kept = largest_first([len(u) for u in unions], limit)
        groups, unions = [groups[j] for j in kept], [unions[j] for j in kept]
    if not groups:
        return batch
    joined = explain_groups(explain, segments, unions)
    kept = []
    for j, members in enumerate(groups):
        predicted = int(joined.predicted[j])
        if (predicted == int(batch.predicted[members[0]])
                and joined.probs[j, predicted] >= config.min_confidence):
            kept.append(j)
    if not kept:
        return batch
    return _splice(batch, joined, unions, [groups[j] for j in kept], kept)


def vehicle_groups(segments: Segments, batch: ObjectBatch, class_names: Sequence[str],
                   config: PipelineConfig) -> list[list[int]]:
    """
    Objects to join: ``[[k0, k1, ...], ...]``, int ids ascending, two or more per group.

    ``segments`` (F finite points) and ``batch`` (K explained objects) as for
    :func:`merge_vehicles`. Objects of one vehicle class (:data:`LIMITS`),
    paired when their points come within :data:`JOIN_GAP`, closest pairs
    first, while the union fits the class; each group has one object of at
    least ``min_confidence``.
    """
    vehicles = [i for i, name in enumerate(class_names) if name in LIMITS]
    confidence = batch.probs[np.arange(len(batch)), batch.predicted]
    candidates = np.flatnonzero(np.isin(batch.predicted, vehicles))
    if len(candidates) < 2:
        return []
    xp = array_namespace(segments.points)
    local = np.full(len(batch) + 1, -1, np.int64)  # object id -> 0..n-1; [-1] stays -1
    local[candidates] = np.arange(len(candidates))
    rows = np.flatnonzero(local[batch.labels] >= 0)
    group = local[batch.labels[rows]]
    by_group, bounds = group_rows(group, len(candidates))
    rows, group = rows[by_group], group[by_group]
    xyz = xp.to_numpy(xp.take(segments.points, xp.asarray(
        rows, device=xp.device(segments.points)))).astype(np.float64)
    lo, hi = direction_extents(xyz[:, :2], group, len(candidates))
    z_lo = np.minimum.reduceat(xyz[:, 2], bounds[:-1])  # every candidate has points
    z_hi = np.maximum.reduceat(xyz[:, 2], bounds[:-1])
    counts = np.diff(bounds)
    points = [xyz[bounds[i]:bounds[i + 1], :2] for i in range(len(candidates))]
    predicted = batch.predicted[candidates]
    limits = np.array([LIMITS[class_names[c]] for c in predicted])
    pairs = _close_pairs(points, lo, hi, predicted, limits)
    root = np.arange(len(candidates))
    for a, b in pairs:  # closest first
        ra, rb = _find(root, a), _find(root, b)
        if ra == rb:
            continue
        low, high = np.minimum(lo[ra], lo[rb]), np.maximum(hi[ra], hi[rb])
        length, width = rectangle(low, high)
        height = max(z_hi[ra], z_hi[rb]) - min(z_lo[ra], z_lo[rb])
        if (length <= limits[a, 0] and width <= limits[a, 1] and height <= limits[a, 2]
                and counts[ra] + counts[rb] <= config.max_cluster_points):
            root[rb] = ra
            lo[ra], hi[ra] = low, high
            z_lo[ra], z_hi[ra] = min(z_lo[ra], z_lo[rb]), max(z_hi[ra], z_hi[rb])
            counts[ra] += counts[rb]
    members: dict[int, list[int]] = {}
    for i in range(len(candidates)):
        members.setdefault(_find(root, i), []).append(int(candidates[i]))
    return [sorted(group_ids) for group_ids in members.values() if len(group_ids) > 1
            and confidence[group_ids].max() >= config.min_confidence]


def _close_pairs(points: list[np.ndarray], lo: np.ndarray, hi: np.ndarray,
                 predicted: np.ndarray, limits: np.ndarray) -> list[tuple[int, int]]:
    """
    Pairs ``(a, b)``, a < b, of one class that fit it together and come within ``JOIN_GAP``.

    ``points[i]`` (n_i, 2) float64: object i's points seen from above; ``lo``,
    ``hi`` (n, DIRECTIONS) float64 their projection extents (the first
    direction is x, the middle one y: bounding boxes screen the pairs);
    ``predicted`` (n,) int their classes; ``limits`` (n, 3) float64 their
    class's :data:`LIMITS`. Each object is paired with its
    :data:`MAX_PARTNERS` nearest by bounding box at most. Sorted by the
    points' closest distance.
    """
    n, half = len(points), lo.shape[1] // 2
    gap = np.zeros((n, n))
    for d in (0, half):  # x, then y: the larger of the two axis gaps, (n, n) at a time
        np.maximum(gap, np.maximum(lo[:, None, d] - hi[None, :, d],
                                   lo[None, :, d] - hi[:, None, d]), out=gap)
    gap[predicted[:, None] != predicted[None, :]] = np.inf
    np.fill_diagonal(gap, np.inf)
    partners = min(MAX_PARTNERS, n - 1)
    nearest = np.argpartition(gap, partners - 1, axis=1)[:, :partners]  # (n, partners)
    a_ids, b_ids = np.repeat(np.arange(n), partners), nearest.ravel()
    keep = gap[a_ids, b_ids] <= JOIN_GAP
    if not keep.any():
        return []
    pairs = np.unique(np.stack([np.minimum(a_ids, b_ids)[keep],
                                np.maximum(a_ids, b_ids)[keep]], axis=1), axis=0)
    a_ids, b_ids = pairs[:, 0], pairs[:, 1]
    # A pair too large for its class together never joins, whatever else is added.
    length, width = rectangles(np.minimum(lo[a_ids], lo[b_ids]),
                               np.maximum(hi[a_ids], hi[b_ids]))
    fits = (length <= limits[a_ids, 0]) & (width <= limits[a_ids, 1])
    box_lo, box_hi = lo[:, [0, half]], hi[:, [0, half]]
    close = []
    for a, b in zip(a_ids[fits].tolist(), b_ids[fits].tolist()):
        # Only the points within reach of the other's bounding box can be the closest pair:
        # a small tree per pair, O(n_a + n_b) to cut out (a tree over a whole car, built once,
        # measured slower on HDL-64E scans).
        near_a = _within(points[a], box_lo[b] - JOIN_GAP, box_hi[b] + JOIN_GAP)
        near_b = _within(points[b], box_lo[a] - JOIN_GAP, box_hi[a] + JOIN_GAP)
        if len(near_a) == 0 or len(near_b) == 0:
            continue
        distance, _ = cKDTree(near_a).query(near_b, k=1, distance_upper_bound=JOIN_GAP)
        nearest_distance = float(distance.min())
        if nearest_distance <= JOIN_GAP:
            close.append((nearest_distance, a, b))
    return [(a, b) for _, a, b in sorted(close)]


def _within(xy: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Return the rows of ``xy`` (n, 2) inside the box ``low``..``high`` (2,): ``(m, 2)``."""
    return xy[((xy >= low) & (xy <= high)).all(axis=1)]


def _find(root: np.ndarray, i: int) -> int:
    """Union-find root of ``i`` (with path halving)."""
    while root[i] != i:
        root[i] = root[root[i]]
        i = int(root[i])
    return i


def _splice(batch: ObjectBatch, joined: ObjectBatch, unions: list[np.ndarray],
            groups: list[list[int]], kept: list[int]) -> ObjectBatch:
    """
    Write each kept union over its lowest id, drop its other ids, close up the ids.

    ``batch``: the K objects of F points; ``unions[j]`` (n_j,) int64: the
    rows (of the F points) of ``groups[j]``'s objects; ``joined`` their
    explained unions (row j each, saliency over the F points); ``kept`` the
    j whose union stands. Returns an :class:`ObjectBatch` of K' objects,
    ``labels`` (F,) int32 in 0..K'-1 or -1.
    """
    labels, saliency = batch.labels.copy(), batch.saliency.copy()
    columns = [a.copy() for a in batch.per_object()]
    dropped = []
    for members, j in zip(groups, kept):
        rows = unions[j]
        labels[rows] = members[0]
        saliency[rows] = joined.saliency[rows]
        for column, source in zip(columns, joined.row(j)):
            column[members[0]] = source
        dropped.extend(members[1:])
    keep = np.ones(len(batch), bool)
    keep[dropped] = False
    remap = np.full(len(batch) + 1, -1, np.int32)  # remap[-1] (last) keeps -1
    remap[:-1][keep] = np.arange(int(keep.sum()), dtype=np.int32)
    return ObjectBatch(remap[labels], saliency, *[column[keep] for column in columns])
