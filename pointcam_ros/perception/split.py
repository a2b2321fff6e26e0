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
Split people off the car they touch, and out of clusters too large to be objects.

A person at a car door or a cyclist beside a parked car touch it within any
reach that keeps a sparse car whole, and the pair comes out as one cluster
that the model calls "car". Such a cluster (predicted ``car``, core extents
longer than :data:`CAR_LENGTH` or wider than :data:`CAR_WIDTH`: ALPINE's
car, 4.4 x 1.8 m, without its 1.3 margin, since a car seen in part beside
the person it hides often fits a car's size) is cut again on a fine voxel
grid, :data:`SPLIT_VOXEL` wide and :data:`SPLIT_VOXEL_HEIGHT` high: on
sensors of 0.1-0.2 degree columns one surface's returns lie at most 0.1 m
apart out to 30 m, a person at a door stands 0.2-0.5 m off the body (two
cells: a gap of 0.24 m parts them), and rings lie farther apart vertically
than columns. Only its person-shaped pieces go through the model, in one
batch: at least ``min_cluster_points`` points and :data:`PERSON_MIN_HEIGHT`
tall, with a person's or a rider's footprint and top
(:func:`~pointcam_ros.perception.range_image.looks_like_person`), so a
wheel, a mirror or a low band of a car's side is not asked. A piece the
model calls a person class (:data:`PERSON_CLASSES`) with at least
``min_confidence`` becomes an object of its own. The rest of the cluster
stays one object (its id is kept) and is classified and explained again
without them, in one more batch for all split clusters, so every object's
saliency explains exactly the points it is shown with. The split is kept
only when the rest is still a car to the model (at least
``min_confidence``): a fence or a hedge called car does not shed "people".
A cluster with no such piece is left as it was.

A cluster too large to be an object (longer than ``max_object_size`` or
with more than ``max_cluster_points`` points: a hedge, a wall, a facade) is
dropped, and a person in it with it: one at a gateway in a wall, or seen
from the hips up over a hedge she stands in, touches it within any reach
that keeps a sparse car whole (Autoware re-clusters a merged cluster finer
for the same reason). Such clusters (``Segments.oversize``) are cut on the
same fine grid in the same pass, also in a scan with no object, and their
person-shaped pieces of :data:`LOOSE_MIN_POINTS` to ``max_cluster_points``
points go through the model in the same batch, after the cars' pieces and no more
than the scan has room for; a piece it calls a person class with at least
``min_confidence`` becomes an object. The rest stays dropped, so there is
no rest to check.

The shape decides which pieces are asked, the model which are people; the
cost is the fine cut of the candidates and two small batches on the scans
that have a person-shaped piece.
"""

from typing import Callable, Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.range_image import looks_like_person
from pointcam_ros.perception.rules import CLASS_MAX_LENGTH
from pointcam_ros.perception.scatter import group_rows
from pointcam_ros.perception.segmentation import (
    array_namespace, cluster_voxels, pieces_by_cluster)
from pointcam_ros.perception.stages import largest_first, ObjectBatch, Segments, Stages

#: m; a cluster called car whose core is longer (or wider) than this is a candidate.
CAR_LENGTH = 4.4
CAR_WIDTH = 1.8
#: m; the fine grid a candidate is cut on (see the module docstring).
SPLIT_VOXEL = 0.12
SPLIT_VOXEL_HEIGHT = 0.4
#: Classes a piece may be split off as.
PERSON_CLASSES = frozenset({'pedestrian', 'person', 'cyclist'})
#: m; a piece shorter than this (a band of a car's side, a wheel) is never split off.
PERSON_MIN_HEIGHT = 0.5
#: Fewest points a person-shaped piece of an oversize cluster needs to be asked (and at
#: least ``min_cluster_points``). No rest confirms such a piece, as the rest of a car does,
#: so only pieces in the model's surer range are asked: on the simulated test objects it is
#: right on 78 % of those of 15-29 points and 86 % of those of 30-59 (docs/model.md), and the
#: issue's road users count from 30 points. A whole standing person gives 30 points out to
#: about 11 m on a VLP-16, 16 m on an HDL-32E and 33 m on an HDL-64E (docs/method.md).
LOOSE_MIN_POINTS = 30

#: ``stages.map_back(segments, samples, explained)`` after ``sample`` and ``explain``.
Explain = Callable[[Segments], ObjectBatch]


def car_candidates(batch: ObjectBatch, class_names: Sequence[str]) -> np.ndarray:
    """
    Objects ``(J,)`` int64 of ``batch`` called car whose core exceeds ALPINE's car.

    Longer than :data:`CAR_LENGTH` or wider than :data:`CAR_WIDTH`, but not
    longer than the ``long`` rule's limit (``rules.CLASS_MAX_LENGTH``): a
    longer "car" is a fence or cars run together, shown as unknown anyway.
    """
    names = np.asarray(class_names, dtype=object)[batch.predicted]
    length = np.maximum(batch.cores[:, 0], batch.cores[:, 1])
    width = np.minimum(batch.cores[:, 0], batch.cores[:, 1])
    large = (length > CAR_LENGTH) | (width > CAR_WIDTH)
    return np.flatnonzero((names == 'car') & large & (length <= CLASS_MAX_LENGTH['car']))


def oversize_clusters(segments: Segments) -> list[np.ndarray]:
    """
    Rows ``(n_j,)`` int64 of each cluster dropped for being too large to be an object.

    In the order of their ids (``segments.oversize``); none without them.
    Only the rows of such points cross from the device to the host.
    """
    if segments.oversize is None:
        return []
    xp = array_namespace(segments.oversize)
    rows = xp.flatnonzero(segments.oversize >= 0)
    ids = xp.to_numpy(xp.take(segments.oversize, rows))
    rows = xp.to_numpy(rows).astype(np.int64)
    order, bounds = group_rows(ids, int(ids.max()) + 1 if len(ids) else 0)
    return [rows[order[lo:hi]] for lo, hi in zip(bounds[:-1], bounds[1:])]


def person_pieces(segments: Segments, clusters: Sequence[np.ndarray], min_points: int
                  ) -> list[tuple[int, np.ndarray]]:
    """
    Cut clusters on the fine grid, all in one pass: their person-shaped pieces.

    ``clusters``: each one's finite-point rows ``(n_j,)`` int64. Returns
    ``(j, rows)`` per person-shaped piece of cluster ``j``, its rows ``(n,)``
    int64, in the order of the fine components (the cut's, not the
    clusters'); none from a cluster that the cut leaves whole.
    Person-shaped: at least ``min_points`` points and
    :data:`PERSON_MIN_HEIGHT` tall, with a person's or a rider's footprint
    (axis-aligned) and top above the ground (``looks_like_person``). A fine
    component that spans two clusters (they touch) counts as one piece of
    each: the cut never joins clusters.
    """
    if not clusters:
        return []
    rows = np.concatenate(clusters)
    owner = np.repeat(np.arange(len(clusters)), [len(c) for c in clusters])
    xp = array_namespace(segments.points)
    where = xp.asarray(rows, device=xp.device(segments.points))
    points = xp.take(segments.points, where)
    piece, count = cluster_voxels(points, SPLIT_VOXEL, SPLIT_VOXEL_HEIGHT)
    points, height = xp.to_numpy(points), xp.to_numpy(xp.take(segments.height, where))
    piece, piece_owner = pieces_by_cluster(xp.to_numpy(piece), count, owner)
    order, bounds = group_rows(piece, len(piece_owner))  # each piece's points in their order
    starts, size = bounds[:-1], np.diff(bounds)
    low = np.minimum.reduceat(points[order], starts, axis=0)
    extent = np.maximum.reduceat(points[order], starts, axis=0) - low
    top = np.maximum.reduceat(height[order], starts)
    whole = np.bincount(piece_owner, minlength=len(clusters)) < 2
    shaped = ((size >= min_points) & (extent[:, 2] >= PERSON_MIN_HEIGHT) & ~whole[piece_owner]
              & looks_like_person(extent[:, :2].max(axis=1), extent[:, :2].min(axis=1), top))
    return [(int(piece_owner[k]), rows[order[starts[k]:starts[k] + size[k]]])
            for k in np.flatnonzero(shaped)]


def explain_groups(explain: Explain, segments: Segments, groups: Sequence[np.ndarray]
                   ) -> ObjectBatch:
    """
    Classify and explain ``groups`` (finite-point rows) as objects ``0..len-1``.

    ``explain`` (:func:`explain_with`) sees a :class:`Segments` of the
    groups' points only (disjoint ``(n_i,)`` int64 rows, at least one
    group), in the scan's row order, so the draws, the model's answers and
    the saliency are those of a pass over the whole scan with only these
    objects, on both backends, and the per-point work is that of their
    points, not of the scan's F. The result's ``labels`` (F,) int32 and
    ``saliency`` (F,) float32 cover all F points (-1 and 0 outside the
    groups).
    """
    rows = np.concatenate(groups)
    labels = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    # All rows in the scan's ascending order: the numpy backend draws object by object
    # over each object's points in that order, the torch one by position among all
    # labelled points, so both see what a pass over the whole scan would.
    order = np.argsort(rows, kind='stable')
    rows, labels = rows[order], labels[order]
    xp = array_namespace(segments.points)
    where = xp.asarray(rows, device=xp.device(segments.points))
    labels = xp.asarray(labels, dtype=segments.labels.dtype, device=xp.device(segments.labels))
    out = explain(Segments(xp.take(segments.points, where), labels, len(groups),
                           xp.take(segments.height, where)))
    full_labels = np.full(len(segments.labels), -1, np.int32)
    full_labels[rows] = out.labels
    saliency = np.zeros(len(segments.labels), np.float32)
    saliency[rows] = out.saliency
    return ObjectBatch(full_labels, saliency, *out.per_object())


def explain_with(stages: Stages) -> Explain:
    """Sample, explain and map back the objects of a :class:`Segments` with ``stages``."""
    def run(segments: Segments) -> ObjectBatch:
        samples = stages.sample(segments)
        return stages.map_back(segments, samples, stages.explain(samples))
    return run


def split_people(explain: Explain, segments: Segments, batch: ObjectBatch,
                 class_names: Sequence[str], config: PipelineConfig,
                 limit: int) -> ObjectBatch:
    """
    Return ``batch`` with the people split off its too-large "cars" and out of oversize clusters.

    ``explain`` classifies and explains the objects of a :class:`Segments`
    (:func:`explain_with`); ``segments`` are the scan's, ``batch`` their
    explained objects; ``limit`` the most objects a scan may have, and the
    most pieces one pass classifies: the largest pieces off cars first,
    then the largest of the oversize clusters' up to the room the scan has
    left. Split people get ids after the batch's (those off cars first),
    while the scan stays within ``limit``; each split car keeps its id and
    gets the result of its rest, which must keep at least
    ``min_cluster_points`` points. The rest of an oversize cluster stays
    dropped. ``batch`` itself when nothing is split.
    """
    room = limit - len(batch)
    if room <= 0:
        return batch
    candidates = car_candidates(batch, class_names)
    oversize = oversize_clusters(segments)
    if len(candidates) == 0 and not oversize:
        return batch
    clusters = [np.flatnonzero(batch.labels == k) for k in candidates] + oversize
    found = person_pieces(segments, clusters, config.min_cluster_points)
    # One pass classifies at most `limit` pieces: the cars' first, then of the oversize
    # clusters' at most what the scan has room for; the largest of each, in their order.
    off_cars = _largest([piece for piece in found if piece[0] < len(candidates)], limit)
    fewest, most = max(LOOSE_MIN_POINTS, config.min_cluster_points), config.max_cluster_points
    loose = _largest([piece for piece in found
                      if piece[0] >= len(candidates) and fewest <= len(piece[1]) <= most],
                     min(room, limit - len(off_cars)))
    if not off_cars and not loose:
        return batch
    owners = [j for j, _ in off_cars + loose]
    groups = [rows for _, rows in off_cars + loose]
    pieces = explain_groups(explain, segments, groups)
    names = np.asarray(class_names, dtype=object)[pieces.predicted]
    confidence = pieces.probs[np.arange(len(groups)), pieces.predicted]
    person = np.isin(names, list(PERSON_CLASSES)) & (confidence >= config.min_confidence)
    split, rests = [], []
    for j, k in enumerate(candidates):
        mine = [i for i, owner in enumerate(owners) if owner == j]
        people = [i for i in mine if person[i]][:room - sum(len(p) for _, p in split)]
        if not people:
            continue
        rest = np.setdiff1d(clusters[j], np.concatenate([groups[i] for i in people]))
        if len(rest) < config.min_cluster_points:
            continue
        split.append((int(k), people))
        rests.append(rest)
    kept, explained_rests = [], None
    if split:
        explained_rests = explain_groups(explain, segments, rests)
        rest_names = np.asarray(class_names, dtype=object)[explained_rests.predicted]
        rest_confidence = explained_rests.probs[np.arange(len(rests)),
                                                explained_rests.predicted]
        kept = [j for j in range(len(split))
                if rest_names[j] == 'car' and rest_confidence[j] >= config.min_confidence]
    used = sum(len(split[j][1]) for j in kept)
    loose_people = [i for i, owner in enumerate(owners)
                    if owner >= len(candidates) and person[i]][:max(0, room - used)]
    if not kept and not loose_people:
        return batch
    return _splice(batch, pieces, groups, explained_rests, rests,
                   [(j, *split[j]) for j in kept], loose_people)


def _largest(pieces: list[tuple[int, np.ndarray]], limit: int) -> list[tuple[int, np.ndarray]]:
    """Return the ``limit`` (or fewer) largest ``(owner, rows)`` pieces, in their order."""
    if len(pieces) <= limit:
        return pieces
    return [pieces[i] for i in largest_first([len(rows) for _, rows in pieces], max(0, limit))]


def _splice(batch: ObjectBatch, pieces: ObjectBatch, groups: list[np.ndarray],
            rest: Optional[ObjectBatch], rests: list[np.ndarray],
            split: list[tuple[int, int, list[int]]], loose: list[int]) -> ObjectBatch:
    """
    Write the rests over their cars and append the people, points and per-object rows.

    ``split``: (rest index j, car k, person piece indices) per split car;
    ``loose``: the person pieces of oversize clusters, appended after them.
    """
    labels, saliency = batch.labels.copy(), batch.saliency.copy()
    per_object = [a.copy() for a in batch.per_object()]
    added: list[list[np.ndarray]] = [[] for _ in per_object]
    people = []
    for j, k, mine in split:
        rows = rests[j]
        saliency[rows] = rest.saliency[rows]
        for column, source in zip(per_object, rest.row(j)):
            column[k] = source
        people.extend(mine)
    next_id = len(batch)
    for i in people + loose:
        labels[groups[i]] = next_id
        saliency[groups[i]] = pieces.saliency[groups[i]]
        for extra, source in zip(added, pieces.row(i)):
            extra.append(source)
        next_id += 1
    columns = [np.concatenate([column, np.stack(extra)])
               for column, extra in zip(per_object, added)]
    return ObjectBatch(labels, saliency, *columns)
