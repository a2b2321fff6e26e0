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
Split people off the car they touch: a split the classifier confirms.

A person at a car door or a cyclist beside a parked car touch it within any
reach that keeps a sparse car whole, and the pair comes out as one cluster
that the model calls "car", larger than any car. Such a cluster (predicted
``car``, core extents longer than :data:`CAR_LENGTH` or wider than
:data:`CAR_WIDTH`: ALPINE's car, 4.4 x 1.8 m, with its 1.3 margin) is cut
again on a fine voxel grid, :data:`SPLIT_VOXEL` wide and
:data:`SPLIT_VOXEL_HEIGHT` high: on sensors of 0.1-0.2 degree columns one
surface's returns lie at most 0.1 m apart out to 30 m, a person at a door
stands 0.2-0.5 m off the body (two cells: a gap of 0.24 m parts them), and
rings lie farther apart vertically than columns. Its pieces go through the
model in one batch; a piece the model calls a person class
(:data:`PERSON_CLASSES`) with at least ``min_confidence``, at least
:data:`PERSON_MIN_HEIGHT` tall and of at least ``min_cluster_points``
points becomes an object of its own. The rest of the cluster stays one
object (its id is kept) and is classified and explained again without them,
in one more batch for all split clusters, so every object's saliency
explains exactly the points it is shown with. The split is kept only when
the rest is still a car to the model (at least ``min_confidence``): a fence
or a hedge called car does not shed "people". A cluster with no such piece
is left as it was.

The model decides: a car's own pieces (a wheel, a pillar, one ring of its
side) are not split off unless the model is confident they are a person,
and the cost is two small batches on the scans that have a candidate.
"""

from typing import Callable, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.rules import CLASS_MAX_LENGTH
from pointcam_ros.perception.segmentation import array_namespace, cluster_voxels
from pointcam_ros.perception.stages import largest_first, ObjectBatch, Segments, Stages

#: m; a cluster called car whose core is longer (or wider) than this is a candidate.
CAR_LENGTH = 1.3 * 4.4
CAR_WIDTH = 1.3 * 1.8
#: m; the fine grid a candidate is cut on (see the module docstring).
SPLIT_VOXEL = 0.12
SPLIT_VOXEL_HEIGHT = 0.4
#: Classes a piece may be split off as.
PERSON_CLASSES = frozenset({'pedestrian', 'person', 'cyclist'})
#: m; a piece shorter than this (one ring of a car's side, a wheel) is never split off.
PERSON_MIN_HEIGHT = 0.5

#: ``stages.map_back(segments, samples, explained)`` after ``sample`` and ``explain``.
Explain = Callable[[Segments], ObjectBatch]


def car_candidates(batch: ObjectBatch, class_names: Sequence[str]) -> np.ndarray:
    """
    Objects ``(J,)`` int64 of ``batch`` called car whose core exceeds any car.

    Longer than :data:`CAR_LENGTH` or wider than :data:`CAR_WIDTH`, but not
    longer than the ``long`` rule's limit (``rules.CLASS_MAX_LENGTH``): a
    longer "car" is a fence or cars run together, shown as unknown anyway.
    """
    names = np.asarray(class_names, dtype=object)[batch.predicted]
    length = np.maximum(batch.cores[:, 0], batch.cores[:, 1])
    width = np.minimum(batch.cores[:, 0], batch.cores[:, 1])
    large = (length > CAR_LENGTH) | (width > CAR_WIDTH)
    return np.flatnonzero((names == 'car') & large & (length <= CLASS_MAX_LENGTH['car']))


def _pieces(segments: Segments, rows: np.ndarray, min_points: int) -> list[np.ndarray]:
    """Cut one cluster (finite-point ``rows``) on the fine grid: pieces ``(n_i,)`` int64."""
    xp = array_namespace(segments.points)
    points = xp.take(segments.points, xp.asarray(rows, device=xp.device(segments.points)))
    piece, count = cluster_voxels(points, SPLIT_VOXEL, SPLIT_VOXEL_HEIGHT)
    piece = xp.to_numpy(piece)
    order = np.argsort(piece, kind='stable')
    bounds = np.searchsorted(piece[order], np.arange(count + 1))
    return [rows[order[lo:hi]] for lo, hi in zip(bounds[:-1], bounds[1:]) if hi - lo >= min_points]


def objects_of(segments: Segments, groups: list[np.ndarray]) -> Segments:
    """``segments`` with only ``groups`` (finite-point rows) as objects 0..len-1."""
    labels = np.full(len(segments.labels), -1, np.int64)
    for i, rows in enumerate(groups):
        labels[rows] = i
    xp = array_namespace(segments.labels)
    labels = xp.asarray(labels, dtype=segments.labels.dtype, device=xp.device(segments.labels))
    return Segments(segments.points, labels, len(groups), segments.height)


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
    Return ``batch`` with the people split off its too-large "cars" (or ``batch`` itself).

    ``explain`` classifies and explains the objects of a :class:`Segments`
    (:func:`explain_with`); ``segments`` are the scan's, ``batch`` their
    explained objects; ``limit`` the most objects a scan may have (and the
    most pieces one pass may classify: the largest are kept). Split people
    get ids after the batch's, while the scan stays within ``limit``; each
    split car keeps its id and gets the result of its rest, which must keep
    at least ``min_cluster_points`` points.
    """
    candidates = car_candidates(batch, class_names)
    room = limit - len(batch)
    if len(candidates) == 0 or room <= 0:
        return batch
    owners, groups = [], []
    for k in candidates:
        for rows in _pieces(segments, np.flatnonzero(batch.labels == k),
                            config.min_cluster_points):
            owners.append(int(k))
            groups.append(rows)
    if len(groups) < 2:
        return batch
    if len(groups) > limit:  # the largest pieces, in their order
        kept = largest_first([len(rows) for rows in groups], limit)
        owners, groups = [owners[i] for i in kept], [groups[i] for i in kept]
    pieces = explain(objects_of(segments, groups))
    names = np.asarray(class_names, dtype=object)[pieces.predicted]
    confidence = pieces.probs[np.arange(len(groups)), pieces.predicted]
    person = (np.isin(names, list(PERSON_CLASSES)) & (confidence >= config.min_confidence)
              & (pieces.boxes[:, 5] >= PERSON_MIN_HEIGHT))
    split, rests = [], []
    for k in candidates:
        mine = [i for i, owner in enumerate(owners) if owner == k]
        people = [i for i in mine if person[i]][:room - sum(len(p) for _, p in split)]
        if not people:
            continue
        rest = np.setdiff1d(np.flatnonzero(batch.labels == k),
                            np.concatenate([groups[i] for i in people]))
        if len(rest) < config.min_cluster_points:
            continue
        split.append((int(k), people))
        rests.append(rest)
    if not split:
        return batch
    rest = explain(objects_of(segments, rests))
    rest_names = np.asarray(class_names, dtype=object)[rest.predicted]
    rest_confidence = rest.probs[np.arange(len(rests)), rest.predicted]
    kept = [j for j in range(len(split))
            if rest_names[j] == 'car' and rest_confidence[j] >= config.min_confidence]
    if not kept:
        return batch
    return _splice(batch, pieces, groups, rest, rests, [(j, *split[j]) for j in kept])


def _splice(batch: ObjectBatch, pieces: ObjectBatch, groups: list[np.ndarray],
            rest: ObjectBatch, rests: list[np.ndarray],
            split: list[tuple[int, int, list[int]]]) -> ObjectBatch:
    """
    Write the rests over their cars and append the people, points and per-object rows.

    ``split``: (rest index j, car k, person piece indices) per split car.
    """
    labels, saliency = batch.labels.copy(), batch.saliency.copy()
    per_object = [a.copy() for a in batch.per_object()]
    added: list[list[np.ndarray]] = [[] for _ in per_object]
    next_id = len(batch)
    for j, k, people in split:
        rows = rests[j]
        saliency[rows] = rest.saliency[rows]
        for column, source in zip(per_object, rest.row(j)):
            column[k] = source
        for i in people:
            labels[groups[i]] = next_id
            saliency[groups[i]] = pieces.saliency[groups[i]]
            for extra, source in zip(added, pieces.row(i)):
                extra.append(source)
            next_id += 1
    columns = [np.concatenate([column, np.stack(extra)])
               for column, extra in zip(per_object, added)]
    return ObjectBatch(labels, saliency, *columns)
