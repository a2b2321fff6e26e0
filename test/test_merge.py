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

"""The classifier-guided merge: a car cut in pieces, the shipped model, a simulated scan."""

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception import merge, split
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.stages import ObjectBatch, Segments
import pytest
import torch

NAMES = ['car', 'truck', 'pedestrian']


def _one_car(sensor: str, seed: int, yaw: float, distance: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Scan one simulated car ``distance`` m ahead, turned by ``yaw``: points, car mask."""
    pytest.importorskip('open3d')  # the simulator ray-casts with open3d
    from pointcam_ros.sim import objects, surfaces
    from pointcam_ros.sim.scenes import Scene, SceneObject
    from pointcam_ros.sim.simulator import CLASS_NAMES, scan, SENSORS
    car = objects.car(np.random.default_rng(seed))
    scene = Scene(ground=surfaces.box((80, 80, 0.1), (0, 0, -0.05)), kind='street', objects=[
        SceneObject(0, CLASS_NAMES.index('car'), car.moved(yaw, (distance, 0.0, 0.0)),
                    np.array([distance, 0.0, 0.0]), yaw, 'car')])
    xyz, object_id, _ = scan(scene, SENSORS[sensor], 7).flat()
    return xyz, object_id == 0


def _unmerged(pipeline: ScenePipeline, xyz: np.ndarray) -> tuple[Segments, ObjectBatch]:
    """Return the scan's segments and explained objects, before the split and the merge."""
    stages = pipeline._stages
    segments = stages.segment(xyz)
    samples = stages.sample(segments)
    return segments, stages.map_back(segments, samples, stages.explain(samples))


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
@pytest.mark.parametrize('case', [('vlp16', 0, np.pi / 2, 14.0), ('hdl32', 3, 0.5, 8.0)])
def test_a_car_cut_in_pieces_is_shown_and_explained_as_one(backend, case):
    xyz, car = _one_car(*case)
    pipeline = ScenePipeline(PipelineConfig(device='cpu'), backend=backend)
    segments, batch = _unmerged(pipeline, xyz)
    pieces = sorted(set(batch.labels[car]) - {-1})
    assert len(pieces) >= 2  # the case the merge is for: the segmentation cut the car
    assert {pipeline.class_names[batch.predicted[k]] for k in pieces} == {'car'}

    out = pipeline.process(xyz)
    ids, counts = np.unique(out.object_id[car], return_counts=True)
    shown = int(ids[np.argmax(counts)])
    assert shown >= 0 and counts.max() >= 0.9 * car.sum()
    assert out.objects[shown].class_name == 'car' and not out.objects[shown].unknown
    assert len(out.objects) == len(batch) - len(pieces) + 1
    # Ids close up, every object holds its points, and the union's saliency is its own
    # Grad-CAM: the model run on exactly its points gives the same values.
    assert [obj.object_id for obj in out.objects] == list(range(len(out.objects)))
    for obj in out.objects:
        assert (out.object_id == obj.object_id).sum() == obj.num_points
    rows = np.flatnonzero(out.object_id == shown)
    only = np.full(len(segments.labels), -1, np.int32)  # the whole scan, ...
    only[rows] = 0  # ... with the union as its one object
    if torch.is_tensor(segments.labels):
        only = torch.as_tensor(only, dtype=segments.labels.dtype, device=segments.labels.device)
    alone = split.explain_with(pipeline._stages)(
        Segments(segments.points, only, 1, segments.height))
    np.testing.assert_allclose(out.saliency[rows], alone.saliency[rows], atol=1e-5)
    assert out.objects[shown].confidence == pytest.approx(
        float(alone.probs[0, alone.predicted[0]]), abs=1e-5)


def test_the_union_stays_apart_when_the_model_does_not_confirm_it():
    xyz, car = _one_car('vlp16', 0, np.pi / 2, 14.0)
    pipeline = ScenePipeline(PipelineConfig(device='cpu'))
    segments, batch = _unmerged(pipeline, xyz)
    explain = split.explain_with(pipeline._stages)
    args = (segments, batch, pipeline.class_names, pipeline.config, pipeline._stages.limit)
    joined = merge.merge_vehicles(explain, *args)
    assert len(joined) < len(batch)  # the real model confirms the union

    def disagreeing(objects: Segments) -> ObjectBatch:
        """Answer as the model does for the unions, but call each truck."""
        out = explain(objects)
        truck = pipeline.class_names.index('truck')
        probs = out.probs.copy()
        probs[:, truck] = probs.max(axis=1) + 1.0
        return ObjectBatch(out.labels, out.saliency, probs, np.full(len(out), truck),
                           out.targets, out.counts, out.boxes, out.cores)

    def unsure(objects: Segments) -> ObjectBatch:
        """Answer as the model does for the unions, with car at 0.5 (under min_confidence)."""
        out = explain(objects)
        probs = np.full_like(out.probs, 0.5 / (out.probs.shape[1] - 1))
        probs[:, 0] = 0.5
        return ObjectBatch(out.labels, out.saliency, probs, np.zeros(len(out), np.int64),
                           out.targets, out.counts, out.boxes, out.cores)

    assert pipeline.class_names[0] == 'car' and pipeline.config.min_confidence > 0.5
    assert merge.merge_vehicles(disagreeing, *args) is batch
    assert merge.merge_vehicles(unsure, *args) is batch
    # No more unions per pass than the limit: with no room, nothing is explained at all.
    calls = []

    def counted(objects: Segments) -> ObjectBatch:
        calls.append(objects.count)
        return explain(objects)

    assert merge.merge_vehicles(counted, *args[:-1], 0) is batch and calls == []


Rectangle = tuple[float, float, float, float]


def _pieces(objects: list, predicted: list[int], confidence: list[float]
            ) -> tuple[Segments, ObjectBatch]:
    """
    Objects on a 0.1 m grid, 1 m tall, over xy rectangles ``(x0, y0, x1, y1)``.

    ``objects[k]`` is one rectangle or a list of them; the probabilities are 0
    but for each object's ``predicted`` class.
    """
    points, labels = [], []
    for k, rectangles in enumerate(objects):
        for x0, y0, x1, y1 in (rectangles if isinstance(rectangles, list) else [rectangles]):
            gx, gy, gz = np.meshgrid(np.arange(x0, x1 + 1e-6, 0.1),
                                     np.arange(y0, y1 + 1e-6, 0.1),
                                     np.arange(-1.0, 0.0, 0.2), indexing='ij')
            points.append(np.stack([gx.ravel(), gy.ravel(), gz.ravel()], 1))
            labels.append(np.full(gx.size, k, np.int32))
    xyz = np.concatenate(points).astype(np.float32)
    label = np.concatenate(labels)
    k = len(objects)
    probs = np.zeros((k, len(NAMES)))
    probs[np.arange(k), predicted] = confidence
    batch = ObjectBatch(label, np.zeros(len(label), np.float32), probs, np.array(predicted),
                        np.array(predicted), np.bincount(label), np.zeros((k, 7)),
                        np.ones((k, 3)))
    return Segments(xyz, label, k, np.zeros(len(label), np.float32)), batch


def test_groups_join_the_pieces_of_one_vehicle_and_nothing_else():
    config = PipelineConfig(min_confidence=0.6)
    groups = merge.vehicle_groups
    # Front and rear of one car, 0.3 m apart: one group (ids ascending).
    assert groups(*_pieces([(0, 0, 2, 1.8), (2.3, 0, 4.4, 1.8)], [0, 0], [0.9, 0.9]),
                  NAMES, config) == [[0, 1]]
    # One confident piece is enough; none is not.
    assert groups(*_pieces([(0, 0, 2, 1.8), (2.3, 0, 4.4, 1.8)], [0, 0], [0.9, 0.3]),
                  NAMES, config) == [[0, 1]]
    assert groups(*_pieces([(0, 0, 2, 1.8), (2.3, 0, 4.4, 1.8)], [0, 0], [0.5, 0.3]),
                  NAMES, config) == []
    # Farther apart than JOIN_GAP; two cars nose to tail (9.1 m: longer than any car); a
    # person beside a car; a car and a truck: none is joined.
    assert groups(*_pieces([(0, 0, 2, 1.8), (2.6, 0, 4.4, 1.8)], [0, 0], [0.9, 0.9]),
                  NAMES, config) == []
    assert groups(*_pieces([(0, 0, 4.4, 1.8), (4.7, 0, 9.1, 1.8)], [0, 0], [0.9, 0.9]),
                  NAMES, config) == []
    assert groups(*_pieces([(0, 0, 4.4, 1.8), (1.0, 2.0, 1.5, 2.4)], [0, 2], [0.9, 0.9]),
                  NAMES, config) == []
    assert groups(*_pieces([(0, 0, 2, 1.8), (2.3, 0, 4.4, 1.8)], [0, 1], [0.9, 0.9]),
                  NAMES, config) == []
    # A chain joins while its union fits: three pieces of a 5 m van; a fourth piece that
    # would make it 6.5 m long stays apart (closest pairs first).
    found = groups(*_pieces([(0, 0, 1.5, 2), (1.8, 0, 3.3, 2), (3.6, 0, 5.0, 2),
                             (5.3, 0, 6.5, 2)], [0, 0, 0, 0], [0.9] * 4), NAMES, config)
    assert len(found) == 1 and len(found[0]) == 3 and set(found[0]) < {0, 1, 2, 3}
    # A truck's pieces join up to a rigid truck's length.
    assert groups(*_pieces([(0, 0, 5, 2.5), (5.3, 0, 11, 2.5)], [1, 1], [0.9, 0.9]),
                  NAMES, config) == [[0, 1]]
    # Closest pairs first: gaps of 0.1, 0.4 and 0.2 m give two cars, not one car of the
    # first three pieces (5 m) and a fourth alone.
    assert groups(*_pieces([(0, 0, 1.5, 1.8), (1.6, 0, 3.1, 1.8), (3.5, 0, 5.0, 1.8),
                            (5.2, 0, 6.2, 1.8)], [0] * 4, [0.9] * 4), NAMES, config) == [
        [0, 1], [2, 3]]
    # Bounding boxes 0.1 m apart are not enough: the points must come within 0.5 m (two
    # blobs on a diagonal and one beside the box they span).
    assert groups(*_pieces([[(0, 0, 0.2, 0.2), (2.0, 2.0, 2.2, 2.2)], (2.3, 0, 2.5, 0.2)],
                           [0, 0], [0.9, 0.9]), NAMES, config) == []
    # Nor is a union taller than the class (a car piece and one 3 m above it), or one of
    # more points than max_cluster_points.
    tall_segments, tall_batch = _pieces([(0, 0, 2, 1.8), (2.3, 0, 4.4, 1.8)], [0, 0],
                                        [0.9, 0.9])
    tall_segments.points[tall_batch.labels == 1, 2] += 3.0
    assert groups(tall_segments, tall_batch, NAMES, config) == []
    few = PipelineConfig(min_confidence=0.6, max_cluster_points=500)
    assert groups(*_pieces([(0, 0, 2, 1.8), (2.3, 0, 4.4, 1.8)], [0, 0], [0.9, 0.9]),
                  NAMES, few) == []


def test_a_union_takes_its_lowest_id_and_the_ids_after_close_up():
    # 0: a car far off, 1 and 3: two pieces of one car, 2: a person beside it, 4: a car.
    segments, batch = _pieces([(-20, 0, -16, 1.8), (0, 0, 2, 1.8), (1.0, 2.0, 1.5, 2.4),
                               (2.3, 0, 4.4, 1.8), (20, 0, 24, 1.8)], [0, 0, 2, 0, 0],
                              [0.9, 0.9, 0.9, 0.4, 0.9])
    config = PipelineConfig(min_confidence=0.6)
    assert merge.vehicle_groups(segments, batch, NAMES, config) == [[1, 3]]

    def answer(objects: Segments) -> ObjectBatch:
        """Call every union car at 0.95, saliency 0.7 on its points (a stand-in model)."""
        probs = np.zeros((objects.count, len(NAMES)))
        probs[:, 0] = 0.95
        inside = objects.labels >= 0
        saliency = np.where(inside, 0.7, 0.0).astype(np.float32)
        return ObjectBatch(objects.labels, saliency, probs, np.zeros(objects.count, np.int64),
                           np.zeros(objects.count, np.int64),
                           np.bincount(objects.labels[inside], minlength=objects.count),
                           np.full((objects.count, 7), 5.0), np.full((objects.count, 3), 4.0))

    out = merge.merge_vehicles(answer, segments, batch, NAMES, config, limit=1024)
    old = batch.labels
    assert out.labels.dtype == np.int32 and len(out) == 4
    assert (out.labels[(old == 1) | (old == 3)] == 1).all()
    assert (out.labels[old == 0] == 0).all() and (out.labels[old == 2] == 2).all()
    assert (out.labels[old == 4] == 3).all()
    assert out.counts.tolist() == [(old == 0).sum(), ((old == 1) | (old == 3)).sum(),
                                   (old == 2).sum(), (old == 4).sum()]
    assert out.probs[1, 0] == 0.95 and out.boxes[1, 0] == 5.0 and out.cores[1, 0] == 4.0
    assert out.predicted.tolist() == [0, 0, 2, 0]
    np.testing.assert_array_equal(out.saliency[(old == 1) | (old == 3)], np.float32(0.7))
    np.testing.assert_array_equal(out.saliency[(old != 1) & (old != 3)], 0.0)
