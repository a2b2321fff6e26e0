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

"""The classifier-guided split: a person at a car's corner, the shipped model, a real scan."""

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception import split
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.stages import ObjectBatch, Segments
import pytest
import torch


def _car_and_person(sensor: str) -> tuple[np.ndarray, np.ndarray]:
    """Scan a car 12 m ahead, rear to the sensor, and a person at its corner: points, ids."""
    pytest.importorskip('open3d')  # the simulator ray-casts with open3d
    from pointcam_ros.sim import objects, surfaces
    from pointcam_ros.sim.scenes import Scene, SceneObject
    from pointcam_ros.sim.simulator import CLASS_NAMES, scan, SENSORS
    rng = np.random.default_rng(4)
    car, person = objects.car(rng), objects.person(rng)
    placed = [(car, (12.0, 0.0), 'car'), (person, (10.2, 1.35), 'pedestrian')]
    scene = Scene(ground=surfaces.box((80, 80, 0.1), (0, 0, -0.05)), kind='street', objects=[
        SceneObject(i, CLASS_NAMES.index(name), surface.moved(0.0, (x, y, 0.0)),
                    np.array([x, y, 0.0]), 0.0, name)
        for i, (surface, (x, y), name) in enumerate(placed)])
    xyz, object_id, _ = scan(scene, SENSORS[sensor], 7).flat()
    return xyz, object_id


def _person_in_a_gateway() -> tuple[np.ndarray, np.ndarray]:
    """
    Scan (HDL-64E) a person in the 1.2 m gateway of a 20.4 m wall, 5 m aside: points, ids.

    Ids: 0 and 1 the wall's two parts, 2 the person. The gaps each side of
    the person are narrower than the voxels and at the person's range: one
    cluster, longer than ``max_object_size`` (15 m).
    """
    pytest.importorskip('open3d')
    from pointcam_ros.sim import objects, surfaces
    from pointcam_ros.sim.scenes import Scene, SceneObject
    from pointcam_ros.sim.simulator import CLASS_NAMES, scan, SENSORS
    person = objects.person(np.random.default_rng(3))
    wall = surfaces.box((9.0, 0.25, 1.8), (0.0, 0.0, 0.9), 0.4)
    placed = [(wall, 6.9, 'background'), (wall, 17.1, 'background'), (person, 12.0, 'pedestrian')]
    scene = Scene(ground=surfaces.box((80, 80, 0.1), (0, 0, -0.05)), kind='street', objects=[
        SceneObject(i, CLASS_NAMES.index(name), surface.moved(0.0, (x, 5.0, 0.0)),
                    np.array([x, 5.0, 0.0]), 0.0, name)
        for i, (surface, x, name) in enumerate(placed)])
    xyz, object_id, _ = scan(scene, SENSORS['hdl64'], 7).flat()
    return xyz, object_id


def _shown(out, rows: np.ndarray) -> tuple[str, float]:
    """Return the class most of ``rows`` are shown as, and that share."""
    ids, counts = np.unique(out.object_id[rows], return_counts=True)
    best = int(ids[np.argmax(counts)])
    name = 'none' if best < 0 else out.objects[best].class_name
    return name, counts.max() / len(rows)


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
def test_a_person_at_a_cars_corner_is_split_off_and_both_are_explained_alone(backend):
    xyz, object_id = _car_and_person('hdl32')
    pipeline = ScenePipeline(PipelineConfig(device='cpu'), backend=backend)
    out = pipeline.process(xyz)
    car, person = object_id == 0, object_id == 1
    assert _shown(out, np.flatnonzero(person)) == ('pedestrian', pytest.approx(1.0, abs=0.1))
    assert _shown(out, np.flatnonzero(car)) == ('car', pytest.approx(1.0, abs=0.02))
    # Ids are the objects' indices, their points are theirs, and each object's saliency is
    # its own Grad-CAM: normalised to a maximum of 1 on its points.
    assert [obj.object_id for obj in out.objects] == list(range(len(out.objects)))
    for obj in out.objects:
        assert (out.object_id == obj.object_id).sum() == obj.num_points
    for k in set(out.object_id[person | car]) - {-1}:
        assert out.saliency[out.object_id == k].max() == pytest.approx(1.0)
    shown_car = out.objects[int(np.bincount(out.object_id[car]).argmax())]
    assert shown_car.num_points <= car.sum() + 5  # the rest, without the person
    # Without the split the pair is one "car" wider than any car: the case it is for.
    stages = pipeline._stages
    segments = stages.segment(xyz)
    samples = stages.sample(segments)
    batch = stages.map_back(segments, samples, stages.explain(samples))
    labels = batch.labels
    merged = int(np.bincount(labels[person & (labels >= 0)]).argmax())
    assert pipeline.class_names[batch.predicted[merged]] == 'car'
    assert merged in split.car_candidates(batch, pipeline.class_names)
    assert (labels[car] == merged).mean() > 0.98


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
def test_a_person_in_a_cluster_too_long_to_be_an_object_is_found_in_it(backend):
    xyz, object_id = _person_in_a_gateway()
    person, wall = np.flatnonzero(object_id == 2), np.flatnonzero(np.isin(object_id, [0, 1]))
    assert len(person) >= 100
    pipeline = ScenePipeline(PipelineConfig(device='cpu'), backend=backend)
    out = pipeline.process(xyz)
    assert _shown(out, person) == ('pedestrian', pytest.approx(1.0, abs=0.05))
    ids = out.object_id[person]
    found = out.objects[int(np.bincount(ids[ids >= 0]).argmax())]
    assert found.num_points <= len(person) + 3  # the person, not a piece of the wall
    assert out.saliency[out.object_id == found.object_id].max() == pytest.approx(1.0)
    assert (out.object_id[wall] < 0).mean() > 0.9  # the rest of it stays dropped
    # The case it is for: segmented, the person is in an oversize cluster, no object.
    segments = pipeline._stages.segment(xyz)
    labels, oversize = (np.asarray(a) for a in (segments.labels, segments.oversize))
    over = oversize[person]  # the feet's returns are ground
    home = int(np.bincount(over[over >= 0]).argmax())
    assert (labels[person] < 0).all() and (over == home).mean() > 0.9
    assert (oversize[wall] == home).mean() > 0.9


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
def test_a_person_in_an_oversize_cluster_is_found_in_a_scan_with_no_object(backend):
    xyz, object_id = _person_in_a_gateway()
    pipeline = ScenePipeline(PipelineConfig(device='cpu'), backend=backend)
    labels = np.asarray(pipeline._stages.segment(xyz).labels)
    alone = labels < 0  # without the objects of the scan (a piece of the wall's end)
    xyz, object_id = xyz[alone], object_id[alone]
    assert pipeline._stages.segment(xyz).count == 0
    out = pipeline.process(xyz)
    assert [obj.class_name for obj in out.objects] == ['pedestrian']
    assert _shown(out, np.flatnonzero(object_id == 2)) == ('pedestrian',
                                                           pytest.approx(1.0, abs=0.05))


def test_a_split_stands_only_if_its_rest_is_still_a_car():
    xyz, _ = _car_and_person('hdl32')
    pipeline = ScenePipeline(PipelineConfig(device='cpu'))
    stages = pipeline._stages
    segments = stages.segment(xyz)
    samples = stages.sample(segments)
    batch = stages.map_back(segments, samples, stages.explain(samples))
    explain = split.explain_with(stages)
    args = (segments, batch, pipeline.class_names, pipeline.config, stages.limit)
    assert len(split.split_people(explain, *args)) == len(batch) + 1  # the real model splits
    calls = []

    def rest_called_truck(objects):
        """Answer as the model does, but call every rest of the second pass truck."""
        calls.append(objects)
        out = explain(objects)
        if len(calls) == 2:
            truck = pipeline.class_names.index('truck')
            probs = out.probs.copy()
            probs[:, truck] = probs.max(axis=1) + 1.0
            out = ObjectBatch(out.labels, out.saliency, probs, np.full(len(out), truck),
                              out.targets, out.counts, out.boxes, out.cores)
        return out

    assert split.split_people(rest_called_truck, *args) is batch and len(calls) == 2


def test_a_scan_whose_cars_shed_no_person_shaped_piece_is_left_exactly_as_it_was():
    xyz, object_id = _car_and_person('vlp16')  # VLP-16: the two come out apart already
    pipeline = ScenePipeline(PipelineConfig(device='cpu'))
    stages = pipeline._stages
    segments = stages.segment(xyz)
    samples = stages.sample(segments)
    batch = stages.map_back(segments, samples, stages.explain(samples))
    candidates = split.car_candidates(batch, pipeline.class_names)
    assert len(candidates) == 1  # the car alone, 1.82 m wide: a candidate...
    assert split.person_pieces(segments, [np.flatnonzero(batch.labels == candidates[0])],
                               pipeline.config.min_cluster_points) == []  # ...with no person
    calls = []

    def explain(segments):
        calls.append(segments)
        return split.explain_with(stages)(segments)

    assert split.split_people(explain, segments, batch, pipeline.class_names,
                              pipeline.config, stages.limit) is batch
    assert calls == []  # no model pass at all


def test_candidates_follow_the_largest_car():
    names = ['car', 'truck', 'pedestrian']

    def batch(cores, predicted):
        k = len(cores)
        return ObjectBatch(np.zeros(0, np.int32), np.zeros(0, np.float32), np.ones((k, 3)),
                           np.array(predicted), np.array(predicted), np.ones(k, np.int64),
                           np.zeros((k, 7)), np.array(cores, float))

    cores = [(4.4, 1.8, 1.5), (5.8, 1.8, 1.5), (4.4, 2.4, 1.5), (1.9, 2.4, 1.5),
             (2.6, 2.5, 1.5), (12.0, 2.5, 3.5), (0.5, 0.5, 1.7), (9.8, 2.0, 1.9)]
    found = split.car_candidates(batch(cores, [0, 0, 0, 0, 0, 1, 2, 0]), names)
    # called car and longer than 4.4 m or wider than 1.8 m (the smaller side: 1.9 x 2.4 m
    # is wider than a car either way round), but not longer than the long rule's 7 m
    assert found.tolist() == [1, 2, 3, 4]


def _segments(*clusters: np.ndarray) -> tuple[Segments, list[np.ndarray]]:
    """Segments of ``(n, 3)`` clusters standing on z = 0 (heights = z), and their rows."""
    points = np.concatenate(clusters).astype(np.float32)
    labels = np.concatenate([np.full(len(c), k, np.int32) for k, c in enumerate(clusters)])
    rows = [np.flatnonzero(labels == k) for k in range(len(clusters))]
    return Segments(points, labels, len(clusters), points[:, 2].copy()), rows


def _grid(x: tuple, y: tuple, z: tuple, step: float = 0.05) -> np.ndarray:
    """``(n, 3)`` points filling the box ``x`` x ``y`` x ``z`` (lo, hi) at ``step``."""
    axes = [np.arange(lo, hi + 1e-6, step) for lo, hi in (x, y, z)]
    return np.stack(np.meshgrid(*axes, indexing='ij'), -1).reshape(-1, 3)


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
def test_only_person_shaped_pieces_are_put_to_the_model(backend):
    body = _grid((10.0, 14.4), (0.0, 0.05), (0.3, 1.0), 0.1)  # a car's side, 0.3-1.0 m up
    wheel = _grid((10.6, 10.9), (-0.35, -0.3), (0.0, 0.6))  # 0.3 m off the body: its own piece
    person = _grid((15.0, 15.4), (0.0, 0.3), (0.0, 1.7))  # 0.6 m off the car's end
    lone = _grid((20.0, 20.3), (5.0, 5.3), (0.0, 1.7))  # person-shaped, but never cut
    segments, rows = _segments(np.concatenate([body, wheel, person]), lone)
    if backend == 'torch':
        segments = Segments(torch.from_numpy(segments.points), torch.from_numpy(
            segments.labels.astype(np.int64)), segments.count, torch.from_numpy(segments.height))
    found = split.person_pieces(segments, rows, 15)
    assert len(found) == 1
    owner, piece = found[0]
    assert owner == 0
    assert sorted(piece.tolist()) == list(range(len(body) + len(wheel), len(rows[0])))
    # A rider's footprint (2 x 1 m, 1.4 m up) is person-shaped too; a band 0.6-1.05 m up (a
    # piece of a car's side, its top as high as a child's), a box up to 0.6 m or a person
    # of fewer than min_points points is not.
    rider = _grid((15.0, 16.9), (0.0, 0.6), (0.0, 1.5), 0.1)
    band = _grid((15.0, 15.5), (0.0, 0.3), (0.6, 1.05), 0.05)
    low = _grid((15.0, 16.0), (0.0, 0.6), (0.0, 0.6), 0.1)
    few = _grid((15.0, 15.1), (0.0, 0.1), (0.0, 1.7), 0.2)
    for part, expected in ((rider, 1), (band, 0), (low, 0), (few, 0)):
        segments, rows = _segments(np.concatenate([body, part]))
        assert len(split.person_pieces(segments, rows, 15)) == expected


def test_person_pieces_never_join_two_clusters():
    left = _grid((10.0, 10.4), (0.0, 0.3), (0.0, 1.7))
    right = _grid((10.45, 10.85), (0.0, 0.3), (0.0, 1.7))  # within one fine cell of left
    segments, rows = _segments(np.concatenate([left, _grid((12.0, 14.0), (0, 0.1), (0, 0.5))]),
                               right)
    found = split.person_pieces(segments, rows, 15)
    assert [(owner, len(piece)) for owner, piece in found] == [(0, len(left))]


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
def test_explain_groups_equals_a_pass_over_the_whole_scan(backend):
    # Groups whose rows interleave in the scan (pieces of one cluster, the rests of
    # several cars): the draws follow the scan's row order on both backends.
    xyz, _ = _car_and_person('hdl32')
    pipeline = ScenePipeline(PipelineConfig(device='cpu'), backend=backend)
    stages = pipeline._stages
    segments = stages.segment(xyz)
    labels = segments.labels.cpu().numpy() if torch.is_tensor(segments.labels) \
        else segments.labels
    rows = np.flatnonzero(labels == np.bincount(labels[labels >= 0]).argmax())
    left = xyz[rows, 1] < np.median(xyz[rows, 1])
    groups = [rows[left], rows[~left]]
    assert groups[0].max() > groups[1].min() and groups[1].max() > groups[0].min()
    whole = np.full(len(labels), -1, np.int64)
    for k, group in enumerate(groups):
        whole[group] = k
    whole = (torch.as_tensor(whole, dtype=segments.labels.dtype)
             if torch.is_tensor(segments.labels) else whole.astype(segments.labels.dtype))
    explain = split.explain_with(stages)
    expected = explain(Segments(segments.points, whole, len(groups), segments.height))
    got = split.explain_groups(explain, segments, groups)
    assert got.labels.dtype == np.int32 and got.saliency.dtype == np.float32
    np.testing.assert_array_equal(got.labels, expected.labels)
    np.testing.assert_array_equal(got.saliency, expected.saliency)
    for field in ('probs', 'predicted', 'counts', 'boxes', 'cores'):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))


def _answer_by_shape(wall_confidence: float = 0.9) -> split.Explain:
    """
    Answer as a model might, from the shape: pedestrian, car (over 3 m long) or background.

    What these tests check is the split's bookkeeping (which pieces are asked, in what
    order, within what budget, the ids), not the classifier, whose answers the tests above
    use. People beyond y = 10 m (by the wall of ``_car_and_wall``) get ``wall_confidence``.
    """
    def explain(segments: Segments) -> ObjectBatch:
        points, labels = np.asarray(segments.points), np.asarray(segments.labels, np.int32)
        count = segments.count
        probs, cores = np.full((count, 3), 0.05), np.zeros((count, 3))
        for k in range(count):
            part = points[labels == k]
            cores[k] = part.max(axis=0) - part.min(axis=0)
            person = cores[k, 2] >= 1.2 and cores[k, :2].max() < 1.0
            kind = 1 if person else (0 if cores[k, :2].max() > 3.0 else 2)
            wall_side = person and part[:, 1].mean() > 10.0
            probs[k, kind] = wall_confidence if wall_side else 0.9
        predicted = probs.argmax(axis=1)
        return ObjectBatch(labels, (labels >= 0).astype(np.float32), probs, predicted,
                           predicted.copy(), np.bincount(labels[labels >= 0], minlength=count),
                           np.zeros((count, 7)), cores)
    return explain


def _person(x: float, y: float, points: int = 36) -> np.ndarray:
    """
    Build a thin standing "person" of ``points`` (24-36) points at (x, y), 1.5 m tall.

    Six rings 0.3 m apart of 3 x 2 points 0.1 m apart (0.2 x 0.1 m), one piece on the
    split's fine grid; for fewer points, each ring loses points off its back row end, the
    top rings first.
    """
    rings = [_grid((x, x + 0.2), (y, y + 0.1), (z, z), 0.1) for z in np.arange(1.5, -0.01, -0.3)]
    cut = 36 - points
    return np.concatenate([ring[:len(ring) - cut // 6 - int(k < cut % 6)]
                           for k, ring in enumerate(rings)])


def _scene(car_people: list[np.ndarray], wall_people: list[np.ndarray]
           ) -> tuple[Segments, list[np.ndarray], list[np.ndarray]]:
    """
    Build a car (object 0, if it has people) with ``car_people`` at its end, and an oversize wall.

    ``wall_people`` stand by the 20 m wall, 20 m aside (one oversize cluster with it).
    Returns the segments, the car people's rows and the wall people's rows.
    """
    car = [_grid((0.0, 4.6), (0.0, 1.9), (0.3, 1.4), 0.1)] if car_people else []
    wall = _grid((0.0, 20.0), (20.0, 20.1), (0.0, 1.0), 0.1)
    parts = car + list(car_people) + [wall] + list(wall_people)
    points = np.concatenate(parts).astype(np.float32)
    sizes = np.cumsum([0] + [len(p) for p in parts])
    rows = [np.arange(lo, hi) for lo, hi in zip(sizes[:-1], sizes[1:])]
    on_car = len(car) + len(car_people)
    labels = np.full(len(points), -1, np.int32)
    labels[:sizes[on_car]] = 0
    oversize = np.full(len(points), -1, np.int32)
    oversize[sizes[on_car]:] = 0
    segments = Segments(points, labels, int(on_car > 0), points[:, 2].copy(), oversize=oversize)
    return segments, rows[len(car):on_car], rows[on_car + 1:]


def _car_and_wall(with_car: bool = True) -> tuple[Segments, np.ndarray, list[np.ndarray]]:
    """
    Build a car (object 0) with a person at its end, and an oversize wall with three people.

    The wall's people have more points than the car's. Returns the segments, the car
    person's rows and the wall people's rows.
    """
    person = [_grid((5.0, 5.4), (0.0, 0.3), (0.0, 1.7), 0.1)] if with_car else []
    people = [_grid((21.0 + 0.8 * i, 21.4 + 0.8 * i), (20.0, 20.3), (0.0, 1.7), 0.08)
              for i in range(3)]
    segments, car_people, wall_people = _scene(person, people)
    return segments, (car_people[0] if with_car else None), wall_people


def _asking(explain: split.Explain) -> tuple[split.Explain, list[int]]:
    """Wrap ``explain``; the list gets the number of objects of every pass."""
    passes: list[int] = []

    def run(segments: Segments) -> ObjectBatch:
        passes.append(segments.count)
        return explain(segments)
    return run, passes


def test_one_pass_asks_at_most_limit_pieces_the_cars_first_then_the_largest_by_walls():
    names, config = ['car', 'pedestrian', 'background'], PipelineConfig(min_cluster_points=5)
    # three people off a car fill a limit of 3 alone: none of the wall's is asked
    segments, car_people, wall_people = _scene(
        [_person(5.0 + 0.5 * i, 0.0) for i in range(3)], [_person(21.0, 20.0)])
    explain, passes = _asking(_answer_by_shape())
    batch = _answer_by_shape()(segments)
    split.split_people(explain, segments, batch, names, config, 3)
    assert passes[0] == 3
    # no car: of the wall's people of 30, 36 and 33 points, room for one: the largest
    segments, _, wall_people = _scene([], [_person(21.0 + 0.5 * i, 20.0, points)
                                           for i, points in enumerate((30, 36, 33))])
    explain, passes = _asking(_answer_by_shape())
    empty = ObjectBatch.empty(len(segments.points), 3)
    out = split.split_people(explain, segments, empty, names, config, 1)
    assert passes == [1] and out.counts.tolist() == [36]
    assert (out.labels[wall_people[1]] == 0).all()


def test_the_points_floor_is_for_pieces_of_oversize_clusters_only():
    names, config = ['car', 'pedestrian', 'background'], PipelineConfig(min_cluster_points=5)
    assert split.LOOSE_MIN_POINTS == 30
    # by the wall: 30 points are asked, 29 are not
    for points, asked in ((29, False), (30, True)):
        segments, _, wall_people = _scene([], [_person(21.0, 20.0, points)])
        assert len(wall_people[0]) == points
        empty = ObjectBatch.empty(len(segments.points), 3)
        out = split.split_people(_answer_by_shape(), segments, empty, names, config, 10)
        assert len(out) == int(asked)
    # nor more than max_cluster_points: no object may have more
    segments, _, wall_people = _scene([], [_person(21.0, 20.0, 36), _person(22.0, 20.0, 30)])
    empty = ObjectBatch.empty(len(segments.points), 3)
    out = split.split_people(_answer_by_shape(), segments, empty, names,
                             config.replace(max_cluster_points=35), 10)
    assert out.counts.tolist() == [30] and (out.labels[wall_people[1]] == 0).all()
    # off a car, 24 points are enough (min_cluster_points): the car's rest confirms it
    segments, car_people, _ = _scene([_person(5.0, 0.0, 24)], [])
    batch = _answer_by_shape()(segments)
    out = split.split_people(_answer_by_shape(), segments, batch, names, config, 10)
    assert len(out) == 2 and out.counts[1] == 24 and (out.labels[car_people[0]] == 1).all()


@pytest.mark.parametrize('limit, wall_people', [(3, 1), (2, 0), (10, 3)])
def test_people_off_cars_come_first_and_the_oversize_ones_fill_the_room_left(
        limit, wall_people):
    segments, car_person, people = _car_and_wall()
    explain = _answer_by_shape()
    config = PipelineConfig(min_cluster_points=5)
    batch = explain(segments)
    out = split.split_people(explain, segments, batch, ['car', 'pedestrian', 'background'],
                             config, limit)
    assert len(out) == 2 + wall_people <= limit
    assert out.counts.sum() == (out.labels >= 0).sum()  # ids 0..K-1, each with its points
    assert (out.labels[car_person] == 1).all()  # the car's person first, as object 1
    assert out.counts[0] == batch.counts[0] - len(car_person) and out.predicted[0] == 0
    found = [np.unique(out.labels[rows]) for rows in people]
    assert sorted(int(ids[0]) for ids in found if ids[0] >= 0) == list(range(2, 2 + wall_people))
    assert all(len(ids) == 1 for ids in found)  # a person whole, or not at all
    assert (out.predicted[1:] == 1).all()


def test_people_in_oversize_clusters_need_min_confidence_and_no_object_to_start_from():
    config = PipelineConfig(min_cluster_points=5)
    names = ['car', 'pedestrian', 'background']
    segments, _, people = _car_and_wall(with_car=False)
    empty = ObjectBatch.empty(len(segments.points), 3)
    unsure = _answer_by_shape(wall_confidence=config.min_confidence - 0.01)
    assert split.split_people(unsure, segments, empty, names, config, 10) is empty
    out = split.split_people(_answer_by_shape(), segments, empty, names, config, 10)
    assert [np.unique(out.labels[rows]).tolist() for rows in people] == [[0], [1], [2]]
    assert out.counts.tolist() == [len(rows) for rows in people]


def test_a_rejected_car_split_leaves_its_room_to_the_people_in_oversize_clusters():
    segments, car_person, people = _car_and_wall()
    answer, calls = _answer_by_shape(), []

    def rest_called_background(objects: Segments) -> ObjectBatch:
        """Answer by shape, but call the rests (the third pass) background."""
        calls.append(objects)
        out = answer(objects)
        if len(calls) == 3:
            probs = np.zeros_like(out.probs)
            probs[:, 2] = 1.0
            out = ObjectBatch(out.labels, out.saliency, probs, np.full(len(out), 2),
                              out.targets, out.counts, out.boxes, out.cores)
        return out

    batch = rest_called_background(segments)
    out = split.split_people(rest_called_background, segments, batch,
                             ['car', 'pedestrian', 'background'],
                             PipelineConfig(min_cluster_points=5), 3)
    assert len(calls) == 3 and len(out) == 3  # the car whole, and two of the wall's people
    assert (out.labels[car_person] == 0).all() and out.counts[0] == batch.counts[0]
    assert sorted(int(out.labels[rows][0]) for rows in people) == [-1, 1, 2]
