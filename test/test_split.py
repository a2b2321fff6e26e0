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
from pointcam_ros.perception.stages import ObjectBatch
import pytest


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


def test_a_scan_without_too_large_cars_is_left_exactly_as_it_was():
    xyz, object_id = _car_and_person('vlp16')  # VLP-16: the two come out apart already
    pipeline = ScenePipeline(PipelineConfig(device='cpu'))
    stages = pipeline._stages
    segments = stages.segment(xyz)
    samples = stages.sample(segments)
    batch = stages.map_back(segments, samples, stages.explain(samples))
    assert len(split.car_candidates(batch, pipeline.class_names)) == 0
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
    # called car and longer than 5.72 m or wider than 2.34 m (the smaller side: 1.9 x 2.4 m
    # is a car's footprint either way round), but not longer than the long rule's 7 m
    assert found.tolist() == [1, 2, 4]
