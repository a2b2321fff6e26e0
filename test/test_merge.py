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
    alone = split.explain_with(pipeline._stages)(split.objects_of(segments, [rows]))
    np.testing.assert_allclose(out.saliency[rows], alone.saliency[rows], atol=1e-5)
    assert out.objects[shown].confidence == pytest.approx(
        float(alone.probs[0, alone.predicted[0]]), abs=1e-5)


def test_the_union_stays_apart_when_the_model_does_not_confirm_it():
    xyz, car = _one_car('vlp16', 0, np.pi / 2, 14.0)
    pipeline = ScenePipeline(PipelineConfig(device='cpu'))
    segments, batch = _unmerged(pipeline, xyz)
    explain = split.explain_with(pipeline._stages)
    joined = merge.merge_vehicles(explain, segments, batch, pipeline.class_names,
                                  pipeline.config)
    assert len(joined) < len(batch)  # the real model confirms the union

    def disagreeing(objects: Segments) -> ObjectBatch:
        """Answer as the model does for the unions, but call each truck."""
        out = explain(objects)
        truck = pipeline.class_names.index('truck')
        probs = out.probs.copy()
        probs[:, truck] = probs.max(axis=1) + 1.0
        return ObjectBatch(out.labels, out.saliency, probs, np.full(len(out), truck),
                           out.targets, out.counts, out.boxes, out.cores)

    assert merge.merge_vehicles(disagreeing, segments, batch, pipeline.class_names,
                                pipeline.config) is batch


def _pieces(boxes: list[tuple[float, float, float, float]], predicted: list[int],
            confidence: list[float]) -> tuple[Segments, ObjectBatch]:
    """Objects on a 0.1 m grid over the xy rectangles ``(x0, y0, x1, y1)``, 1 m tall."""
    points, labels = [], []
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        gx, gy, gz = np.meshgrid(np.arange(x0, x1 + 1e-6, 0.1), np.arange(y0, y1 + 1e-6, 0.1),
                                 np.arange(-1.0, 0.0, 0.2), indexing='ij')
        points.append(np.stack([gx.ravel(), gy.ravel(), gz.ravel()], 1))
        labels.append(np.full(gx.size, k, np.int32))
    xyz = np.concatenate(points).astype(np.float32)
    label = np.concatenate(labels)
    probs = np.full((len(boxes), len(NAMES)), 0.0)
    probs[np.arange(len(boxes)), predicted] = confidence
    k = len(boxes)
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
