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

"""The ROS-free scene pipeline on simulated scans."""

import dataclasses
import math
from pathlib import Path
import threading
import warnings

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.geometry import oriented_box, oriented_boxes
from pointcam_ros.common.results import DetectedObject, SceneResult
from pointcam_ros.explain.gradcam import EXPLAINERS, GradCAM
from pointcam_ros.formats.markers import CLASS_COLORS, object_markers
from pointcam_ros.model.checkpoint import (CheckpointError, load_checkpoint, save_checkpoint,
                                           TemperatureBands)
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
from pointcam_ros.model.preprocess import (
    GROUND_NORMALIZATIONS, HEIGHT_SCALE, normalize_object, normalized_channels, resample_indices)
from pointcam_ros.perception import rules
from pointcam_ros.perception.pipeline import ScanError, ScenePipeline
from pointcam_ros.perception.rules import core_size, core_sizes, core_sizes_torch, shape_rule
from pointcam_ros.perception.segmentation import segment_scene
from pointcam_ros.perception.stages import hull_outline, map_back_objects, sample_sizes
from pointcam_ros.sim.simulator import CLASS_NAMES, random_scene, scan, Scene, SENSORS
import pytest
import torch

#: Shape rules that leave a cluster unclassified (shown as unknown).
UNKNOWN_KINDS = ('sliver', 'low', 'raised', 'fragment', 'long', 'tall', 'few')


@pytest.fixture(scope='module')
def sim_scan():
    scene = random_scene(2_000_017)
    return scene, scan(scene, SENSORS['hdl32'], 5)


def test_segmentation_finds_the_simulated_objects():
    """Objects within 40 m with >= 30 points: >= 95 % come out as one matching cluster."""
    config = PipelineConfig()
    found, total = 0, 0
    for seed in range(2_000_000, 2_000_013):
        scene = random_scene(seed)
        result = scan(scene, SENSORS[('hdl64', 'os1_64', 'hdl32')[seed % 3]], seed)
        xyz, object_id, _ = result.flat()
        labels = segment_scene(xyz, config).labels
        for obj in scene.objects:
            truth = object_id == obj.object_id
            if truth.sum() < 30 or np.hypot(*obj.center[:2]) > 40:
                continue
            total += 1
            ids = labels[truth]
            ids = ids[ids >= 0]
            if len(ids) == 0:
                continue
            cluster = labels == np.bincount(ids).argmax()
            iou = (cluster & truth).sum() / (cluster | truth).sum()
            found += iou >= 0.7
    # 95 % held on the clean simulator before street/campus realism; with see-through
    # vehicle glass, sensor noise and fences beside people and trucks it measures 94.8 %
    # (146/154: two split trucks, a pedestrian merged with a pole, a truck with a fence);
    # with shrub rows and billboards among the open scenes' clutter, 155/160 (13 scenes).
    assert total > 150
    assert found / total >= 0.93, f'{found}/{total} objects segmented'


def test_scene_mode_outputs_every_point(tiny_model, sim_scan):
    _, result = sim_scan
    points = result.xyz.reshape(-1, 3)  # organized, with NaN
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu',
                                            min_confidence=0.0))
    out = pipeline.process(points)
    assert out.saliency.shape == out.class_id.shape == out.object_id.shape == (len(points),)
    assert out.saliency.dtype == np.float32
    assert 0 <= out.saliency.min() and out.saliency.max() <= 1
    invalid = ~np.isfinite(points).all(axis=1)
    assert (out.saliency[invalid] == 0).all() and (out.object_id[invalid] == -1).all()
    assert len(out.objects) > 3
    for obj in out.objects:
        members = out.object_id == obj.object_id
        assert members.sum() == obj.num_points
        assert (out.class_id[members] == (-2 if obj.unknown else obj.class_id)).all()
        # min_confidence is 0 here: only the rules that do not classify leave it unknown
        assert obj.unknown == obj.rule.startswith(UNKNOWN_KINDS)
        assert out.saliency[members].max() == pytest.approx(1.0) or \
            out.saliency[members].max() == 0
        assert 0 < obj.confidence <= 1 and obj.class_name == CLASS_NAMES[obj.class_id]
        inside = points[members]
        assert np.all(np.abs(inside[:, 2] - obj.center[2]) <= obj.size[2] / 2 + 1e-4)
    outside = out.object_id == -1
    assert (out.saliency[outside] == 0).all() and (out.class_id[outside] == -1).all()
    assert set(out.timings) == {'segment', 'sample', 'model', 'map_back'}
    # With a threshold, exactly the objects below it (or slivers) become unknown (-2).
    strict = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu',
                                          min_confidence=0.5)).process(points)
    for obj in strict.objects:
        expected = (obj.rule.startswith(UNKNOWN_KINDS)
                    or (not obj.rule and obj.confidence < 0.5))
        assert obj.unknown == expected
        assert (strict.class_id[strict.object_id == obj.object_id] == -2).all() == expected


def test_saliency_equals_gradcam_of_the_sampled_object(tiny_model):
    """Object mode: the sampled points carry exactly the engine's Grad-CAM values."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(40, 3)).astype(np.float32)  # fewer than N = 64
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu',
                                            mode='object'))
    out = pipeline.process(points)
    assert (out.object_id == 0).all() and len(out.objects) == 1
    # Rebuild the batch the way the pipeline does and compare per point.
    from pointcam_ros.model.preprocess import resample_indices
    pick = resample_indices(40, 64, np.random.default_rng(0))
    batch = torch.from_numpy(normalize_object(points[pick], 'center').T[None].copy())
    expected = GradCAM(pipeline.loaded.model)(batch).saliency[0].numpy()
    for j, p in enumerate(pick):
        assert out.saliency[p] == pytest.approx(expected[j], abs=1e-6)


def test_results_are_reproducible(tiny_model, sim_scan):
    _, result = sim_scan
    points = result.xyz.reshape(-1, 3)
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'))
    first, second = pipeline.process(points), pipeline.process(points)
    np.testing.assert_array_equal(first.saliency, second.saliency)
    np.testing.assert_array_equal(first.object_id, second.object_id)


@pytest.mark.parametrize('points', [
    np.zeros((0, 3), np.float32),
    np.full((500, 3), np.nan, np.float32),
    np.array([[5.0, 1.0, 0.0]], np.float32),
    np.c_[np.random.default_rng(0).uniform(-30, 30, (3000, 2)),
          np.full(3000, -1.8)].astype(np.float32),  # flat ground only
])
def test_degenerate_scans_give_empty_results(tiny_model, points):
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'))
    out = pipeline.process(points)
    assert out.objects == [] and len(out.saliency) == len(points)
    assert (out.saliency == 0).all() and (out.object_id == -1).all()


def test_bad_scans_raise_scan_error(tiny_model):
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu',
                                            max_input_points=100))
    with pytest.raises(ScanError, match=r'must be \(M, 3\)'):
        pipeline.process(np.zeros((10, 4), np.float32))
    with pytest.raises(ScanError, match='more than max_input_points'):
        pipeline.process(np.zeros((101, 3), np.float32))
    for bad in (np.array([[1, 2, None]] * 3, object), np.full((3, 3), 'x'),
                np.ones((3, 3), np.complex64), np.ones((3, 3), bool)):
        with pytest.raises(ScanError, match='must be real numbers'):
            pipeline.process(bad)


def test_coordinates_near_the_float32_limit_are_out_of_range_quietly(tiny_model):
    points = np.array([[3e38, 0.0, 0.0], [0.0, -3e38, 1.0], [5.0, 1.0, -1.0]], np.float32)
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # numpy's overflow warning would fail the test
        out = pipeline.process(points)
    assert out.objects == [] and (out.object_id == -1).all()


@pytest.mark.parametrize('mode', ['scene', 'object'])
def test_float64_rows_beyond_float32_are_left_out_like_nan(tiny_model, sim_scan, mode):
    # A float64 row that float32 cannot hold becomes Inf: it is left out as a NaN row
    # is, instead of reaching the k-d trees and eigen solvers as Inf.
    _, result = sim_scan
    points = result.xyz.reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)][:4000].astype(np.float64)
    if mode == 'object':
        points = points[np.linalg.norm(points - points[0], axis=1) < 2.0]
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu', mode=mode))
    plain = pipeline.process(points)
    for garbage in (1e300, np.nan):
        out = pipeline.process(np.vstack([points, [[garbage, 0.0, 0.0]]]))
        assert out.object_id[-1] == -1 and out.saliency[-1] == 0
        np.testing.assert_array_equal(out.object_id[:-1], plain.object_id)
        np.testing.assert_allclose(out.saliency[:-1], plain.saliency, atol=1e-6)


def test_reconfigure_changes_target_and_method(tiny_model, sim_scan):
    _, result = sim_scan
    points = result.xyz.reshape(-1, 3)
    config = PipelineConfig(model_path=tiny_model, device='cpu')
    pipeline = ScenePipeline(config)
    pipeline.reconfigure(config.replace(target_class='pedestrian', method='xgradcam'))
    out = pipeline.process(points)
    assert out.objects and all(o.target_class == 'pedestrian' for o in out.objects)
    with pytest.raises(ValueError, match="'bus' is not a class"):
        pipeline.reconfigure(config.replace(target_class='bus'))
    with pytest.raises(ValueError, match='cannot change at run time'):
        pipeline.reconfigure(config.replace(device='auto'))


def test_every_explainer_runs_in_the_pipeline(tiny_model, sim_scan):
    _, result = sim_scan
    points = result.xyz.reshape(-1, 3)
    config = PipelineConfig(model_path=tiny_model, device='cpu')
    pipeline = ScenePipeline(config)
    for method in EXPLAINERS:
        pipeline.reconfigure(config.replace(method=method))
        out = pipeline.process(points)
        assert out.objects, method
        assert 0.0 <= float(out.saliency.min()) and float(out.saliency.max()) <= 1.0
        assert float(out.saliency.max()) > 0.0, f'{method} gave no saliency at all'


@pytest.mark.parametrize('changes, message', [
    ({'mode': 'scan'}, 'mode: must be one of'),
    ({'method': 'lime'}, 'method: must be one of'),
    ({'device': 'tpu'}, 'device: must be'),
    ({'min_range': 10.0, 'max_range': 5.0}, 'min_range < max_range'),
    ({'cluster_tolerance': 0.0}, 'cluster_tolerance: must be in'),
    ({'min_cluster_points': 50, 'max_cluster_points': 10}, 'min_cluster_points'),
    ({'min_z': 2.0, 'max_z': 1.0}, 'min_z < max_z'),
])
def test_absurd_configs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig(**changes)


def test_config_yaml_round_trip_and_the_shipped_file(tmp_path):
    from pathlib import Path
    config = PipelineConfig(method='hirescam', max_range=80.0, min_cluster_points=12)
    config.to_yaml(tmp_path / 'p.yaml')
    assert PipelineConfig.from_yaml(tmp_path / 'p.yaml') == config
    shipped = Path(__file__).resolve().parents[1] / 'config' / 'pointcam.yaml'
    assert PipelineConfig.from_yaml(shipped) == PipelineConfig()
    with pytest.raises(ValueError, match='unknown pipeline parameters'):
        PipelineConfig.from_dict({'max_rnage': 3})
    with pytest.raises(ValueError, match='min_cluster_points: must be an integer'):
        PipelineConfig.from_dict({'min_cluster_points': 2.5})


def test_oriented_box_of_a_rotated_rectangle():
    rng = np.random.default_rng(1)
    local = np.c_[rng.uniform(-2, 2, 500), rng.uniform(-0.5, 0.5, 500), rng.uniform(0, 1.5, 500)]
    local[:4, :2] = [[-2, -0.5], [2, 0.5], [-2, 0.5], [2, -0.5]]
    yaw = 0.6
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    world = local.copy()
    world[:, :2] = local[:, :2] @ rot.T + [10, -3]
    center, size, est = oriented_box(world.astype(np.float32))
    assert np.allclose(center[:2], [10, -3], atol=0.05)
    assert np.allclose(size[:2], [4, 1], atol=0.05)
    assert np.isclose(np.cos(2 * (est - yaw)), 1, atol=1e-3)  # yaw up to 180 degrees


def test_torch_backend_on_the_cpu_gives_the_numpy_clusters(tiny_model):
    """The GPU code path run on the CPU: same objects, points, boxes; its own samples."""
    config = PipelineConfig(model_path=tiny_model, device='cpu')
    numpy_backend = ScenePipeline(config, backend='numpy')
    torch_backend = ScenePipeline(config, backend='torch')
    assert numpy_backend.backend == 'numpy' and torch_backend.backend == 'torch'
    for seed, sensor in ((2_000_100, 'hdl64'), (2_000_101, 'vlp16'), (2_000_102, 'os1_64')):
        points = scan(random_scene(seed), SENSORS[sensor], seed).xyz.reshape(-1, 3)
        expected, out = numpy_backend.process(points), torch_backend.process(points)
        assert len(out.objects) == len(expected.objects) > 3
        np.testing.assert_array_equal(out.object_id, expected.object_id)
        assert set(out.timings) == {'segment', 'sample', 'model', 'map_back'}
        for obj, ref in zip(out.objects, expected.objects):
            members = out.object_id == obj.object_id
            assert obj.num_points == ref.num_points == members.sum()
            np.testing.assert_allclose(obj.center, ref.center, atol=1e-4)
            np.testing.assert_allclose(obj.size, ref.size, atol=1e-4)
            assert np.isclose(np.cos(2 * (obj.yaw - ref.yaw)), 1, atol=1e-6)
            peak = out.saliency[members].max()
            assert peak == pytest.approx(1.0) or peak == 0
            shown = -2 if obj.unknown else obj.class_id
            assert (out.class_id[members] == shown).all()
        assert (out.saliency[out.object_id == -1] == 0).all()


def test_both_backends_calibrate_each_object_by_its_points(tiny_model, tmp_path):
    # Each model pass gets every object's number of points (not its samples), and the
    # confidences are the softmax of the logits over that band's temperature.
    tiny = load_checkpoint(tiny_model)
    path = tmp_path / 'bands.pt'
    save_checkpoint(path, tiny.model, tiny.class_names, tiny.num_points, tiny.normalization,
                    temperature_bands=TemperatureBands((1, 60), (0.3, 5.0)))
    points = scan(random_scene(2_000_101), SENSORS['vlp16'], 2_000_101).xyz.reshape(-1, 3)
    passes = {}
    for backend in ('numpy', 'torch'):
        pipeline = ScenePipeline(PipelineConfig(model_path=str(path), device='cpu'),
                                 backend=backend)
        pipeline.process(points)  # builds the stages
        stages, model = pipeline._stages, pipeline._stages.model
        calls = []

        def checked(batch, counts, model=model, pipeline=pipeline, calls=calls):
            out = model(batch, counts)
            logits = pipeline.explainer(batch).logits
            expected = torch.softmax(logits / pipeline.loaded.temperatures(counts)[:, None], 1)
            torch.testing.assert_close(out[1], expected, rtol=1e-5, atol=1e-6)
            calls.append(torch.as_tensor(counts).clone())
            return out

        stages.model = checked
        pipeline.process(points)
        passes[backend] = torch.cat(calls)
    numpy_counts, torch_counts = passes['numpy'], passes['torch']
    assert (numpy_counts < 60).any() and (numpy_counts >= 60).any()  # both bands in use
    assert sorted(torch_counts.tolist()) == sorted(numpy_counts.tolist())


def test_torch_backend_object_mode_samples_every_point_of_a_small_object(tiny_model):
    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 3)).astype(np.float32)  # fewer than N = 64: cycled
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu',
                                            mode='object'), backend='torch')
    out = pipeline.process(points)
    assert len(out.objects) == 1 and (out.object_id == 0).all()
    assert out.saliency.max() == pytest.approx(1.0) or out.saliency.max() == 0
    with pytest.raises(ValueError, match='backend must be one of'):
        ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'), backend='jax')


def _car_scene(seed: int, distance: float, bearing: float, curvature: float) -> Scene:
    """One car ``distance`` m away on ground bent by ``curvature`` * r^2 (a sag if > 0)."""
    scene = random_scene(seed, num_objects=1, class_weights=[1, 0, 0, 0, 0, 0, 0])
    vertices = np.asarray(scene.ground.vertices).copy()
    slope = np.linalg.lstsq(np.c_[vertices[:, :2], np.ones(len(vertices))], vertices[:, 2],
                            rcond=None)[0]
    vertices[:, 2] += curvature * (vertices[:, 0] ** 2 + vertices[:, 1] ** 2)
    scene.ground = dataclasses.replace(scene.ground, vertices=vertices)
    car = scene.objects[0]
    x, y = distance * math.cos(bearing), distance * math.sin(bearing)
    z = slope[0] * x + slope[1] * y + slope[2] + curvature * distance ** 2
    step = np.array([x, y, z]) - car.center
    car.surface = car.surface.moved(0.0, step)
    car.center = car.center + step
    return scene


@pytest.fixture(scope='module')
def default_pipeline():
    return ScenePipeline(PipelineConfig(device='cpu'))


@pytest.mark.parametrize('curvature', [0.0, 0.0005, -0.0005],
                         ids=['flat', 'sag 0.6 m at 35 m', 'crest'])
def test_a_car_at_35_m_on_hdl64_is_found_also_on_bent_ground(default_pipeline, curvature):
    """Issue 13.2: a car at 35 m with 30-160 points (40 % dropout) is one object (a car)."""
    found = cars = 0
    for k in range(3):
        scene = _car_scene(2_000_200 + k, 35.0, 0.8 + 2.1 * k, curvature)
        xyz, truth_id, _ = scan(scene, SENSORS['hdl64'], k, dropout=0.4).flat()
        truth = truth_id == 0
        assert 30 <= truth.sum() <= 160  # the field case: 87 points
        out = default_pipeline.process(xyz)
        ids = out.object_id[truth]
        ids = ids[ids >= 0]
        if len(ids) == 0:
            continue
        cluster = out.object_id == np.bincount(ids).argmax()
        iou = (cluster & truth).sum() / (cluster | truth).sum()
        obj = out.objects[np.bincount(ids).argmax()]
        found += iou >= 0.7 and not obj.rule
        cars += obj.class_name == 'car'
    assert found == 3 and cars >= 2


@pytest.mark.parametrize('size,name,kind', [
    ((4.0, 0.1, 0.05), 'car', 'sliver'),  # one ring of a wall
    ((2.5, 0.3, 0.29), 'tree', 'sliver'),
    ((1.2, 0.4, 0.05), 'background', ''),  # a kerb piece called background stays background
    ((7.0, 5.0, 4.0), 'truck', 'oversize'),  # tree crowns merged with bushes
    ((9.0, 0.4, 5.0), 'truck', 'oversize'),  # a facade piece
    ((25.0, 2.5, 3.5), 'truck', 'oversize'),
    ((7.0, 5.0, 8.0), 'tree', ''),  # a big tree is a tree
    ((18.0, 2.55, 4.4), 'truck', ''),  # the largest road users pass
    ((5.2, 3.8, 2.06), 'truck', ''),  # a simulated truck's cluster, seen at 7.8 m
    ((4.5, 1.8, 1.5), 'car', ''),
    ((0.5, 0.4, 1.0), 'pedestrian', ''),
])
def test_shape_rules_follow_road_user_sizes(size, name, kind):
    found, reason = shape_rule(np.array(size), name)
    assert found == kind
    assert bool(reason) == bool(kind)


@pytest.mark.parametrize('size,name,top,kind', [
    ((12.9, 2.1, 0.8), 'truck', 1.0, 'low'),  # a hedge 1 m tall called truck
    ((0.3, 0.3, 0.5), 'pedestrian', 0.6, ''),  # legs cut off from their person: not judged
    ((8.0, 2.5, 3.0), 'truck', 3.2, ''),  # a box truck
    ((4.0, 2.5, 1.2), 'truck', 3.2, ''),  # its upper part above a car in front: top is high
    ((8.0, 2.5, 1.0), 'truck', None, ''),  # top cut by the field of view: not judged
    ((4.5, 1.8, 0.6), 'car', 0.8, ''),  # a car's top is often its waistline (glass)
    ((0.5, 0.4, 1.0), 'pedestrian', 1.1, ''),  # a child
    ((0.8, 0.5, 0.9), 'car', 1.3, 'fragment'),  # a piece of something, called car
    ((1.2, 0.5, 1.4), 'car', 1.4, ''),  # a car's rear, partly seen
    ((1.5, 0.9, 1.7), 'truck', 2.6, 'fragment'),  # a bush 2.6 m tall, called truck
    ((2.3, 1.0, 2.0), 'truck', 3.0, ''),  # a truck's rear
    ((0.4, 0.3, 1.7), 'pedestrian', 1.7, ''),  # fragments are judged for vehicles only
    ((10.4, 0.3, 1.5), 'car', 1.7, 'long'),  # a fence called car
    ((9.5, 1.9, 1.5), 'car', 1.6, 'long'),  # two parked cars run together
    ((5.6, 2.0, 2.1), 'car', 2.3, ''),  # a van
    ((6.9, 2.1, 2.0), 'car', 2.2, ''),  # a long-wheelbase van
    ((10.4, 2.5, 3.5), 'truck', 3.6, ''),  # lengths are judged for cars only
    ((0.9, 0.4, 2.6), 'pedestrian', 3.6, 'tall'),  # a trunk and the branch above it
    ((0.8, 0.5, 2.1), 'pedestrian', 2.1, ''),  # a tall person
    ((1.9, 0.6, 2.0), 'cyclist', 2.0, ''),  # a rider standing on the pedals
    ((2.3, 1.0, 2.6), 'truck', 2.6, ''),  # heights are judged for people only
])
def test_low_fragment_long_and_tall_rules(size, name, top, kind):
    found, reason = shape_rule(np.array(size), name, top=top)
    assert found == kind
    assert bool(reason) == bool(kind)
    if kind == 'low':
        assert f'nothing above {top:.2f} m' in reason
    # The background rules come first: a 25 m hedge called truck is background, not low.
    assert shape_rule(np.array([25.0, 2.0, 1.0]), 'truck', top=1.1)[0] == 'oversize'


@pytest.mark.parametrize('size,name,bottom,kind', [
    ((4.4, 1.5, 2.3), 'truck', 1.03, 'raised'),  # a facade band over a parked car, 55 m out
    ((2.9, 2.0, 1.6), 'bus', 2.76, 'raised'),  # a tree crown
    ((8.0, 2.5, 3.4), 'truck', 0.25, ''),  # a box truck seen down to its wheels
    ((8.0, 2.5, 3.4), 'truck', 0.8, ''),  # down to its side guards (the limit itself)
    ((8.0, 2.5, 2.6), 'truck', 0.85, 'raised'),  # just above it
    ((8.0, 2.5, 3.4), 'truck', None, ''),  # object mode: no ground, not judged
    ((4.4, 1.8, 0.7), 'car', 0.9, ''),  # a car's roof over the car in front: left to the model
    ((0.5, 0.4, 0.9), 'pedestrian', 1.0, ''),  # a person's upper body over a parked car
])
def test_raised_rule(size, name, bottom, kind):
    found, reason = shape_rule(np.array(size), name, bottom=bottom)
    assert found == kind
    if kind:
        assert f'nothing below {bottom:.2f} m' in reason


def test_raised_rule_order():
    # After the background rules and `low`, before `fragment`.
    assert shape_rule(np.array([25.0, 2.0, 3.0]), 'truck', bottom=1.5)[0] == 'oversize'
    assert shape_rule(np.array([1.5, 0.1, 2.0]), 'truck', plane=(0.02, 0.0),
                      bottom=1.5)[0] == 'plane'
    assert shape_rule(np.array([6.0, 0.5, 1.0]), 'truck', top=1.2, bottom=1.5)[0] == 'low'
    assert shape_rule(np.array([1.5, 0.9, 1.7]), 'truck', bottom=1.5)[0] == 'raised'


def _beam_face(distance: float, elevations_deg: np.ndarray, sensor: float = 1.8
               ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(n, 3)`` returns of beams at ``elevations_deg`` off a face, and their heights."""
    y = np.linspace(-1.0, 1.0, 20)
    z = distance * np.tan(np.radians(elevations_deg))
    pts = np.stack(np.broadcast_arrays(distance, y[None, :], z[:, None]), -1).reshape(-1, 3)
    return pts.astype(np.float32), (pts[:, 2] + sensor).astype(np.float32)


def test_judged_bottom_needs_a_beam_that_crossed_below():
    sensor = 1.8

    def rows(distance, lowest, steps):
        """Rows of a face ``distance`` ahead, the lowest ``lowest`` m up, ``steps`` deg apart."""
        first = np.degrees(np.arctan((lowest - sensor) / distance))
        elevations = first + np.concatenate([[0.0], np.cumsum(steps)])
        return _beam_face(distance, elevations, sensor)

    # HDL-64E-like beams (0.4 deg) on a band 1.5 m up at 20 m: the beams below cross it
    # down to the ground, one of them 0.3-0.8 m up, and met nothing of it: judged.
    band, band_height = rows(20.0, 1.5, [0.4] * 4)
    assert rules.judged_bottom(band, band_height, 0.8) == pytest.approx(
        rules.cluster_bottom(band_height))
    # A VLP-16 (2 deg beams) on a truck 33 m away whose lowest return is 0.91 m up: the next
    # beam down crosses 1.15 m lower, under the ground: nothing was seen below.
    sparse, sparse_height = rows(33.0, 0.91, [2.0] * 2)
    assert rules.judged_bottom(sparse, sparse_height, 0.8) is None
    # The same beams on a band 1.1 m up at 20 m: the beam below crosses 0.4 m up.
    near, near_height = rows(20.0, 1.1, [2.0] * 2)
    assert rules.judged_bottom(near, near_height, 0.8) == pytest.approx(1.1, abs=0.01)
    assert rules.judged_bottom(near[:20], near_height[:20], 0.8) is None  # one beam: no step
    # 0.95 m up: the beam below crosses 0.25 m up, where a return would be cut as ground.
    cut, cut_height = rows(20.0, 0.95, [2.0] * 2)
    assert rules.judged_bottom(cut, cut_height, 0.8) is None
    # 1.55 m up: the beams below cross about 0.85 and 0.15 m up, both outside 0.3-0.8 m.
    edge, edge_height = rows(20.0, 1.55, [2.0] * 2)
    assert rules.judged_bottom(edge, edge_height, 0.8) is None
    low, low_height = rows(20.0, 0.5, [0.4] * 4)
    assert rules.judged_bottom(low, low_height, 0.8) is None  # nothing to judge: 0.5 m up
    # The step is the median of the cluster's own: three 0.4 deg steps and one of 2 deg are
    # dense beams; three of 2 deg and one of 0.3 deg are sparse ones.
    uneven, uneven_height = rows(20.0, 1.6, [0.4, 0.4, 0.4, 2.0])
    assert rules.judged_bottom(uneven, uneven_height, 0.8) is not None
    uneven, uneven_height = rows(33.0, 0.91, [2.0, 2.0, 2.0, 0.3])
    assert rules.judged_bottom(uneven, uneven_height, 0.8) is None
    # The reference is the lowest row (33 m, 0.91 m up), not a higher row nearer by.
    lower, lower_height = rows(33.0, 0.91, [])
    upper, upper_height = _beam_face(15.0, np.degrees(np.arctan((0.91 - sensor) / 33)) + [2.0],
                                     sensor)  # 1.92 m up: from it, a beam 3 rows down would
    assert rules.judged_bottom(np.concatenate([lower, upper]),  # cross 0.34 m up at 15 m
                               np.concatenate([lower_height, upper_height]), 0.8) is None
    # A VLP-16's lowest beam (-15 deg) meets a truck's rear 3 m ahead 1.0 m up: no beam lower.
    rear, rear_height = _beam_face(3.0, np.array([-15.0, -13.0, -11.0]), sensor)
    assert rules.judged_bottom(rear, rear_height, 0.8) is not None  # beams assumed below
    assert rules.judged_bottom(rear, rear_height, 0.8, np.radians(-15.0)) is None
    # A stray return under a small far cluster does not pick the reference: the rows are
    # 1.2-1.66 m up at 40 m (0.33 deg), the stray 0.5 m up; the beams below cross 0.97,
    # 0.74 m ...: judged.
    far, far_height = rows(40.0, 1.2, [0.33] * 2)
    stray, stray_height = rows(40.0, 0.5, [0.33])
    with_stray = np.concatenate([far[:39], stray[:1]])
    with_stray_height = np.concatenate([far_height[:39], stray_height[:1]])
    assert rules.judged_bottom(with_stray, with_stray_height, 0.8) == pytest.approx(
        rules.cluster_bottom(with_stray_height))


def _grid(x: float, y: tuple, z: tuple, step: float = 0.1) -> np.ndarray:
    """``(n, 3)`` float32 points of a vertical panel at ``x``, over ``y`` and ``z`` ranges."""
    ys, zs = np.meshgrid(np.arange(*y, step), np.arange(*z, step))
    return np.stack([np.full(ys.size, x), ys.ravel(), zs.ravel()], 1).astype(np.float32)


def _truck_only_model(folder) -> Path:
    """Save a small checkpoint that calls every object truck (0.96) in ``folder``."""
    torch.manual_seed(0)
    model = PointNetClassifier(PointNetConfig(
        num_classes=len(CLASS_NAMES), mlp1=(16,), mlp2=(32, 64), head=(32, 16),
        tnet_conv=(16, 32, 64), tnet_fc=(32, 16))).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[CLASS_NAMES.index('truck')] = 5.0
    path = folder / 'truck.pt'
    save_checkpoint(path, model, CLASS_NAMES, 64, 'center')
    return path


def test_raised_rule_in_the_pipeline(tmp_path):
    """A truck-named band with nothing below 0.8 m is unknown; one down to its wheels is not."""
    path = _truck_only_model(tmp_path)
    sensor = 1.8  # the ground lies 1.8 m below the sensor
    gx, gy = np.meshgrid(np.arange(3.0, 30.0, 0.3), np.arange(-15.0, 15.0, 0.3))
    ground = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, -sensor)], 1)
    band = _grid(20.0, (-2.0, 2.0), (1.5 - sensor, 3.2 - sensor))  # 1.5-3.2 m up
    stray = np.array([[20.0, 0.0, 0.6 - sensor], [20.0, 0.1, 0.6 - sensor]], np.float32)
    band = np.concatenate([band, stray])  # two stray returns 0.6 m up are not its bottom
    truck = _grid(20.0, (6.0, 12.0), (0.3 - sensor, 3.2 - sensor))  # 0.3-3.2 m up
    points = np.concatenate([ground.astype(np.float32), band, truck])
    for backend in ('numpy', 'torch'):
        pipeline = ScenePipeline(PipelineConfig(model_path=str(path), device='cpu'),
                                 backend=backend)
        out = pipeline.process(points)
        by_place = {}
        for obj in out.objects:
            by_place[round(float(obj.center[1]))] = obj
        raised, grounded = by_place[0], by_place[9]
        assert raised.class_name == grounded.class_name == 'truck'
        assert raised.rule.startswith('raised: ') and raised.unknown
        assert (out.class_id[out.object_id == raised.object_id] == -2).all()
        assert not grounded.rule and not grounded.unknown
        assert (out.class_id[out.object_id == grounded.object_id]
                == CLASS_NAMES.index('truck')).all()
        assert raised.num_points == len(band)  # the strays are the band's
    # Object mode has no ground: the band is not judged.
    alone = ScenePipeline(PipelineConfig(model_path=str(path), device='cpu', mode='object'))
    assert not alone.process(band).objects[0].rule


def _vlp16_face(distance: float, half_width: float, azimuths_deg: float,
                sensor: float = 1.8) -> np.ndarray:
    """
    Scan a face 3.2 m tall and flat ground with a VLP-16 (16 beams, -15 to +15 deg).

    The face is ``distance`` ahead and ``half_width`` to each side; the scan
    spans +-``azimuths_deg``. Returns ``(M, 3)`` float32 points.
    """
    points = []
    for azimuth in np.radians(np.arange(-azimuths_deg, azimuths_deg, 0.2)):
        for elevation in np.radians(np.arange(-15.0, 15.1, 2.0)):
            direction = np.array([math.cos(azimuth) * math.cos(elevation),
                                  math.sin(azimuth) * math.cos(elevation), math.sin(elevation)])
            hits = []
            t = distance / direction[0]
            if abs(t * direction[1]) <= half_width and 0.0 <= sensor + t * direction[2] <= 3.2:
                hits.append(t)
            if direction[2] < 0:
                hits.append(-sensor / direction[2])
            if hits:
                points.append(min(hits) * direction)
    return np.array(points, np.float32)


@pytest.mark.parametrize('distance, half_width, azimuths', [
    # A truck's side 33 m ahead: the -3 deg beam meets it 0.07 m up (cut as ground), the
    # -1 deg one 1.22 m up; the beam below the lowest return met the ground first.
    (33.0, 4.0, 12.0),
    # A truck's rear 3 m ahead: the lowest beam (-15 deg) meets it 1.0 m up; none is lower.
    (3.0, 1.25, 60.0),
])
def test_raised_rule_leaves_a_truck_that_no_beam_could_see_below(tmp_path, distance,
                                                                 half_width, azimuths):
    out = ScenePipeline(PipelineConfig(model_path=str(_truck_only_model(tmp_path)),
                                       device='cpu')).process(
        _vlp16_face(distance, half_width, azimuths))
    truck = [obj for obj in out.objects if abs(obj.center[0] - distance) < 1.0]
    assert len(truck) == 1 and truck[0].class_name == 'truck'
    assert truck[0].center[2] + 1.8 - truck[0].size[2] / 2 > 0.8  # nothing lower seen
    assert not truck[0].rule and not truck[0].unknown


def test_cluster_bottom_ignores_stray_low_returns():
    big = np.concatenate([np.linspace(1.2, 3.4, 200), [0.16, 0.2, 0.3]]).astype(np.float32)
    assert rules.cluster_bottom(big) == pytest.approx(1.2 + 1 * 2.2 / 199)  # 2 %: 4 set aside
    with_nan = np.concatenate([big, [np.nan]]).astype(np.float32)
    assert rules.cluster_bottom(with_nan) == rules.cluster_bottom(big)
    # A small cluster: one stray under a band 1.2 m up is set aside ...
    small = np.concatenate([np.full(39, 1.2), [0.5]]).astype(np.float32)
    assert rules.cluster_bottom(small) == pytest.approx(1.2)
    # ... but two returns 0.55-0.63 m up (a far truck's wheels on a VLP-16's lowest beam
    # that hit it) are not strays: the second is the bottom, measured, not interpolated.
    wheels = np.concatenate([np.full(71, 1.62), [0.55, 0.63]]).astype(np.float32)
    assert rules.cluster_bottom(wheels) == pytest.approx(0.63)
    assert rules.cluster_bottom(np.array([0.9], np.float32)) == pytest.approx(0.9)
    assert math.isnan(rules.cluster_bottom(np.array([np.nan], np.float32)))


def _beams(distance: float, elevations_deg: np.ndarray, width: float,
           rng: np.random.Generator) -> np.ndarray:
    """Return ``(n, 3)`` returns of beams at ``elevations_deg`` off a face ``distance`` ahead."""
    y = rng.uniform(-width / 2, width / 2, (len(elevations_deg), 40))
    x = np.full_like(y, distance)
    z = distance * np.tan(np.radians(elevations_deg))[:, None] + 0 * y
    return np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(np.float32)


def test_cluster_top_is_bounded_by_the_beam_above():
    """The true top lies under the next beam up; unbounded at the view's top or max_z."""
    rng = np.random.default_rng(3)
    sensor = 1.73  # m above the ground, HDL-64E-like upper block: beams 0.4 deg apart
    top_ring = np.radians(2.0)
    # a hedge 20 m ahead, hit by the beams from the ground up to 1 m
    lowest, highest = np.degrees(np.arctan(-sensor / 20)), np.degrees(np.arctan((1 - sensor) / 20))
    beams = np.arange(lowest, highest, 0.4)
    hedge = _beams(20.0, beams, 6.0, rng)
    height = hedge[:, 2] + sensor
    bound = rules.cluster_top(hedge, height, top_ring)
    expected = 20.0 * np.tan(np.radians(beams[-1] + 0.4)) + sensor
    assert bound == pytest.approx(expected, abs=0.03) and bound < 1.2  # 6 m wide: ranges vary
    assert shape_rule(np.array([6.0, 0.5, 1.0]), 'truck', top=bound)[0] == 'low'
    # a truck's side 6 m away reaches the top beam (1.73 + 6 tan 2 deg = 1.94 m): unbounded
    near = _beams(6.0, np.arange(-15.0, 2.01, 0.4), 6.0, rng)
    assert rules.cluster_top(near, near[:, 2] + sensor, top_ring) is None
    # the same hedge under a max_z of -0.7 m (sensor frame): cut, unbounded
    assert rules.cluster_top(hedge, height, top_ring, max_z=-0.7) is None
    # one beam: no spacing to read
    assert rules.cluster_top(hedge[:40], height[:40], top_ring) is None
    # a VLP-16 (2 deg beams) sees a 2.8 m box truck 60 m away up to 0.75 m: the beam above
    # passes 2.8 m over its ground, so the truck is not judged low
    truck = _beams(60.0, np.array([-3.0, -1.0]), 6.0, rng)
    bound = rules.cluster_top(truck, truck[:, 2] + 1.8, top_ring + np.radians(13.0))
    assert bound > 2.0
    assert shape_rule(np.array([6.0, 0.3, 2.0]), 'truck', top=bound)[0] == ''
    assert rules.view_limits(np.zeros((0, 3), np.float32)) == (-np.inf, np.inf)
    lowest, top = rules.view_limits(_vlp16_face(3.0, 20.0, 30.0))  # every beam hits
    assert np.degrees([lowest, top]) == pytest.approx([-15.0, 15.0], abs=1e-3)


def test_oversize_is_judged_on_the_core_of_the_points():
    """A car with a few mixed pixels 2 m off its side: the full box is 4.1 m wide."""
    rng = np.random.default_rng(6)
    car = np.c_[rng.uniform(-2.25, 2.25, 2000), rng.uniform(-0.9, 0.9, 2000),
                rng.uniform(0.0, 1.5, 2000)]
    stray = np.c_[rng.uniform(-1, 1, 30), rng.uniform(2.5, 3.2, 30), rng.uniform(0, 1, 30)]
    xyz = np.concatenate([car, stray]).astype(np.float32)
    center, size, yaw = oriented_box(xyz)
    core = core_size(xyz, yaw)
    assert size[1] > 4.0 and core[1] < 1.9 and 4.2 < core[0] < 4.5
    assert shape_rule(size, 'car')[0] == 'oversize'  # what the full box would say
    kind, reason = shape_rule(size, 'car', core=core)
    assert kind == '' and reason == ''
    # Merged crowns are oversize in their core too.
    crown = rng.uniform((0, 0, 0), (7, 5, 4), (3000, 3)).astype(np.float32)
    center, size, yaw = oriented_box(crown)
    core = core_size(crown, yaw)
    assert shape_rule(size, 'truck', core=core)[0] == 'oversize'
    assert 'middle 96 % of the points' in shape_rule(size, 'truck', core=core)[1]


def test_core_sizes_on_the_device_equal_the_numpy_loop():
    """The torch twin sorts all objects at once; sizes 1 to 400 points, odd and even."""
    rng = np.random.default_rng(8)
    counts = np.array([1, 2, 3, 4, 5, 17, 30, 31, 200, 400])
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    xyz = (rng.normal(0, 2, (len(labels), 3)) * [3, 1, 0.5]).astype(np.float32)
    boxes = np.zeros((len(counts), 7))
    boxes[:, 6] = rng.uniform(-np.pi, np.pi, len(counts))
    expected = np.stack([core_size(xyz[labels == k], boxes[k, 6]) for k in range(len(counts))])
    shuffle = rng.permutation(len(labels))  # sorted by object, any order within
    order = shuffle[np.argsort(labels[shuffle], kind='stable')]
    got = core_sizes_torch(torch.from_numpy(xyz[order]), torch.from_numpy(labels[order]).long(),
                           torch.from_numpy(counts), torch.from_numpy(boxes[:, 6]))
    assert got.dtype == torch.float64 and got.shape == (len(counts), 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    assert (expected[5:] > 0).all() and (expected[0] == 0).all()


def test_boxes_and_core_sizes_of_all_objects_equal_the_numpy_loop_bit_for_bit():
    """The batched numpy boxes and core sizes: 1 to 3,000 points, hulls, a line, a point."""
    rng = np.random.default_rng(10)
    objects = [rng.normal(0, 1, (n, 3)) * [4, 1, 1] + rng.uniform(-40, 40, 3)
               for n in (1, 2, 3, 4, 17, 128, 129, 500, 3000)]
    objects.append(np.c_[np.linspace(0, 9, 300), np.linspace(0, 3, 300), np.zeros(300)])
    objects.append(np.ones((200, 3)))  # coincident: no hull
    objects = [o.astype(np.float32) for o in objects]
    counts = np.array([len(o) for o in objects])
    points = np.concatenate(objects)
    outlines = [hull_outline(o) for o in objects]
    assert sum(o is not None for o in outlines) == 4
    boxes = oriented_boxes(points, counts, outlines)
    for k, obj in enumerate(objects):
        center, size, yaw = oriented_box(obj, outlines[k])
        assert np.array_equal(boxes[k], [*center, *size, yaw])
    expected = np.stack([core_size(o, boxes[k, 6]) for k, o in enumerate(objects)])
    assert np.array_equal(core_sizes(points, counts, boxes[:, 6]), expected)


def test_map_back_gives_each_point_its_own_objects_nearest_sample():
    """Two objects 0.1 m apart: no point takes the other object's samples; samples keep theirs."""
    rng = np.random.default_rng(11)
    xyz = rng.uniform(0, 1, (600, 3)).astype(np.float32)
    xyz[300:, 0] += 1.1
    members = [np.arange(300), np.arange(300, 600)]
    sampled = [rng.permutation(300)[:40], np.arange(300)]
    values = [rng.uniform(0, 1, 40).astype(np.float32), np.full(300, 2.0, np.float32)]
    out = map_back_objects(xyz, members, sampled, values)
    assert out.dtype == np.float32 and (out[300:] == 2.0).all()
    assert np.array_equal(out[sampled[0]], values[0])
    near = np.argmin(((xyz[:300, None] - xyz[sampled[0]][None]) ** 2).sum(axis=2), axis=1)
    assert np.array_equal(out[:300], values[0][near])


def test_sample_sizes_halve_down_to_a_sixteenth():
    counts = np.array([1, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 10_000])
    assert sample_sizes(counts, 256).tolist() == [16, 16, 32, 32, 64, 64, 128, 128, 256,
                                                  256, 256, 256]
    assert sample_sizes(np.array([1, 30, 100, 101]), 100).tolist() == [25, 50, 100, 100]
    assert sample_sizes(np.array([1, 9]), 1).tolist() == [1, 1]


@pytest.fixture(scope='module')
def tiny_view_models(tmp_path_factory) -> dict[str, str]:
    """
    Untrained small checkpoints of the sensor-view inputs, by normalization.

    ``view_range``: view frame plus range (4 channels); ``view_ground``: plus
    each point's height above the ground (5).
    """
    paths = {}
    for mode in ('view_range', 'view_ground'):
        torch.manual_seed(1)
        model = PointNetClassifier(PointNetConfig(
            num_classes=len(CLASS_NAMES), in_channels=normalized_channels(mode), mlp1=(16,),
            mlp2=(32, 64), head=(32, 16), tnet_conv=(16, 32, 64), tnet_fc=(32, 16))).eval()
        paths[mode] = str(tmp_path_factory.mktemp('model') / f'tiny_{mode}.pt')
        save_checkpoint(paths[mode], model, CLASS_NAMES, 64, mode)
    return paths


def _model_points(points: np.ndarray, normalization: str) -> np.ndarray:
    """``(M, 3|4)``: a scan's points, plus their height above the ground if the model reads it."""
    if normalization not in GROUND_NORMALIZATIONS:
        return points
    finite = np.isfinite(points).all(axis=1)
    height = np.full(len(points), np.nan, np.float32)
    height[finite] = segment_scene(points[finite], PipelineConfig()).height
    return np.c_[points, height]


@pytest.mark.parametrize('model', ['tiny', 'tiny_bands', 'shipped', 'view_range',
                                   'view_ground'])
def test_small_objects_at_fewer_samples_give_the_full_samples_results(
        tiny_model, tiny_view_models, model, tmp_path):
    """
    Grad-CAM's output does not change with repeated points, so small objects run smaller.

    The oracle is the pipeline before that change: every object at N samples
    (the same random draws), one batch, the same map back. The view models
    check that the pipeline feeds exactly what training feeds, the heights
    above the ground included; ``tiny_bands`` that each object's confidence
    takes the temperature of its number of points.
    """
    path = {'tiny': tiny_model, 'shipped': '', **tiny_view_models}.get(model)
    if model == 'tiny_bands':
        tiny = load_checkpoint(tiny_model)
        path = str(tmp_path / 'bands.pt')
        save_checkpoint(path, tiny.model, tiny.class_names, tiny.num_points, tiny.normalization,
                        temperature_bands=TemperatureBands((1, 60), (0.3, 5.0)))
    config = PipelineConfig(model_path=path, device='cpu')
    pipeline = ScenePipeline(config, backend='numpy')
    assert pipeline.explainer.duplicate_invariant
    points = scan(random_scene(2_000_200, kind='street'), SENSORS['vlp16'], 0).xyz.reshape(-1, 3)
    out = pipeline.process(points)
    n = pipeline.loaded.num_points
    members = [np.flatnonzero(out.object_id == obj.object_id) for obj in out.objects]
    sizes = sample_sizes(np.array([len(m) for m in members]), n)
    assert (sizes < n).sum() >= 3 and (sizes == n).sum() >= 1
    rng = np.random.default_rng(config.seed)
    locals_ = [resample_indices(len(m), n, rng) for m in members]
    model_points = _model_points(points, pipeline.loaded.normalization)
    batch = np.stack([normalize_object(model_points[m][local], pipeline.loaded.normalization).T
                      for m, local in zip(members, locals_)])
    explained = pipeline.explainer(torch.from_numpy(batch))
    counts = torch.tensor([len(m) for m in members])
    probs = torch.softmax(explained.logits / pipeline.loaded.temperatures(counts)[:, None],
                          dim=1).numpy()
    expected = map_back_objects(points, members, locals_, list(explained.saliency.numpy()))
    for k, obj in enumerate(out.objects):
        assert obj.target_class == pipeline.class_names[int(explained.predicted[k])]
        assert obj.confidence == pytest.approx(
            probs[k, pipeline.class_names.index(obj.class_name)], abs=1e-5)
        # float32 sums over 16-256 samples in another order: 3e-5 seen on a saliency of 0.6.
        np.testing.assert_allclose(out.saliency[members[k]], expected[members[k]],
                                   atol=1e-4)


def test_boxes_from_the_hull_outline_equal_boxes_from_every_point():
    rng = np.random.default_rng(9)
    shapes = [rng.normal(0, 1, (n, 3)) * [4, 1, 1] for n in (129, 500, 3000)]
    shapes.append(np.c_[np.linspace(0, 9, 300), np.linspace(0, 3, 300), np.zeros(300)])
    shapes.append(np.ones((200, 3)))  # coincident: no hull, every point projected
    shapes.append(np.c_[rng.uniform(0, 4.5, 400), np.zeros(400), rng.uniform(0, 1.5, 400)])
    for points in shapes:
        points = points.astype(np.float32)
        outline = hull_outline(points)
        assert outline is None or len(outline) < len(points)
        (c1, s1, y1), (c2, s2, y2) = oriented_box(points), oriented_box(points, outline)
        assert y1 == y2 and np.array_equal(c1, c2) and np.array_equal(s1, s2)
    assert hull_outline(shapes[0][:100].astype(np.float32)) is None  # small: all points
    assert hull_outline(shapes[4].astype(np.float32)) is None


def test_the_box_of_an_l_shaped_car_follows_its_sides():
    """A LiDAR sees two sides of a car: the principal axis runs diagonally, the box must not."""
    side = np.c_[np.linspace(0, 4.5, 300), np.zeros(300), np.full(300, 0.5)]
    rear = np.c_[np.zeros(120), np.linspace(0, 1.8, 120), np.full(120, 0.5)]
    yaw = 0.3
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    points = np.concatenate([side, rear])
    points[:, :2] = points[:, :2] @ rot.T + [15.0, 4.0]
    _, size, est = oriented_box(points.astype(np.float32))
    assert np.allclose(size[:2], [4.5, 1.8], atol=0.1)  # principal axis: 11 deg off, 4.8 long
    assert np.cos(2 * (est - yaw)) > np.cos(2 * np.deg2rad(1.0))


def test_a_one_ring_wall_piece_is_not_shown_as_a_road_user(tiny_model):
    """A 4 m line of 25 points, 3 cm tall, at 30 m: unknown with its sliver rule."""
    rng = np.random.default_rng(4)
    ground = np.c_[rng.uniform(-40, 40, (30_000, 2)), rng.normal(-1.8, 0.02, 30_000)]
    wall = np.c_[np.full(25, 30.0), np.linspace(-2, 2, 25), rng.uniform(-1.0, -0.97, 25)]
    points = np.concatenate([ground, wall]).astype(np.float32)
    out = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu')).process(points)
    assert len(out.objects) == 1
    obj = out.objects[0]
    assert obj.num_points == 25 and obj.unknown and obj.rule.startswith('sliver: 4.0 x')
    assert (out.class_id[-25:] == -2).all()
    [_, _, text] = object_markers(out.objects)  # DELETEALL, box, label
    assert text.text.endswith(') [sliver]') and text.text.startswith('unknown (')
    assert text.color[:3] == CLASS_COLORS['unknown']


def _person_scan(distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Scan one simulated pedestrian ``distance`` m away on a VLP-16: points, its mask."""
    scene = random_scene(2_000_302, num_objects=1, class_weights=[0, 0, 1, 0, 0, 0, 0])
    person = scene.objects[0]
    step = np.array([distance * math.cos(0.5), distance * math.sin(0.5), person.center[2]])
    step -= person.center
    person.surface = person.surface.moved(0.0, step)
    person.center = person.center + step
    xyz, truth_id, _ = scan(scene, SENSORS['vlp16'], 1).flat()
    return xyz, truth_id == 0


def _shown(out: SceneResult, truth: np.ndarray) -> DetectedObject:
    """Return the object that holds most of ``truth``'s points."""
    ids = out.object_id[truth]
    return out.objects[np.bincount(ids[ids >= 0]).argmax()]


def test_a_road_user_of_min_label_points_or_more_is_named(default_pipeline):
    """A pedestrian 8 m from a VLP-16: 57 points, named."""
    xyz, truth = _person_scan(8.0)
    obj = _shown(default_pipeline.process(xyz), truth)
    assert obj.num_points >= 30 and obj.class_name == 'pedestrian' and obj.confidence >= 0.9
    assert not obj.unknown and not obj.rule


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
def test_a_road_user_of_fewer_than_min_label_points_is_shown_as_unknown_in_scene_mode(
        backend):
    """The same pedestrian at 12 m: 26 points, unknown (few); named at 1 and in object mode."""
    xyz, truth = _person_scan(12.0)
    config = PipelineConfig(device='cpu')
    out = ScenePipeline(config, backend=backend).process(xyz)
    obj = _shown(out, truth)
    assert obj.num_points == 26 and obj.class_name == 'pedestrian' and obj.confidence >= 0.9
    assert obj.unknown
    assert obj.rule.startswith('few: 26 points, fewer than min_label_points (30): too few to '
                               'name a pedestrian')
    [_, _, text] = object_markers([obj])
    assert text.text.startswith('unknown (pedestrian 0.9') and text.text.endswith('[few]')
    # 1 names every cluster: the same scan, the same object, now a pedestrian.
    named = dataclasses.replace(config, min_label_points=1)
    again = _shown(ScenePipeline(named, backend=backend).process(xyz), truth)
    assert again.class_name == 'pedestrian' and not again.unknown and not again.rule
    assert again.confidence == obj.confidence
    # Object mode: the cloud is the object the user asked about, not a cluster of a scan.
    crop = ScenePipeline(dataclasses.replace(config, mode='object'), backend=backend)
    [whole] = crop.process(xyz[out.object_id == obj.object_id]).objects
    assert whole.num_points == 26 and not whole.rule


@pytest.mark.parametrize('points, name, kind', [
    (29, 'pedestrian', 'few'), (29, 'car', 'few'), (29, 'truck', 'few'),
    (30, 'pedestrian', ''),  # enough points
    (15, 'pole', ''), (15, 'tree', ''), (15, 'background', ''),  # not road users
])
def test_points_rule_checks_road_users_only(points, name, kind):
    assert rules.points_rule(points, name, 30)[0] == kind
    assert rules.points_rule(points, name, 1) == ('', '')


def test_an_oversize_road_user_is_shown_as_background_and_says_what_the_model_said(
        tiny_model):
    """A 7 x 5 x 4 m block (merged crowns and bushes): never a car or truck."""
    rng = np.random.default_rng(5)
    ground = np.c_[rng.uniform(-40, 40, (30_000, 2)), rng.normal(-1.8, 0.02, 30_000)]
    crown = rng.uniform((12.0, -2.5, -1.5), (19.0, 2.5, 2.5), (3000, 3))
    points = np.concatenate([ground, crown]).astype(np.float32)
    # One cluster, as voxels make it (the range design would cut this random cloud up).
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu',
                                            segmentation='voxel'))
    out = pipeline.process(points)
    assert len(out.objects) == 1
    obj = out.objects[0]
    if obj.rule:  # the untrained model may or may not call it a road user
        assert obj.class_name == 'background' and obj.rule.startswith('oversize: the model said ')
        assert object_markers(out.objects)[2].text.endswith('[oversize]')
    else:
        assert obj.class_name not in ('car', 'truck', 'pedestrian', 'cyclist')


def _run(pipeline: ScenePipeline, points: np.ndarray, into: list) -> None:
    into.append(pipeline.process(points))


def test_same_scan_same_clusters_and_labels_under_load(default_pipeline, sim_scan):
    """Issue 13.2: two threads at once, torch busy elsewhere, 1 or 2 torch threads."""
    _, result = sim_scan
    points = result.xyz.reshape(-1, 3)
    reference = default_pipeline.process(points)
    outputs = []
    stop = threading.Event()

    def busy():
        a = torch.randn(256, 256)
        while not stop.is_set():
            a = torch.tanh(a @ a)

    threads = [threading.Thread(target=busy)] + [
        threading.Thread(target=_run, args=(default_pipeline, points, outputs))
        for _ in range(2)]
    threads_before = torch.get_num_threads()
    try:
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            thread.join()
        stop.set()
        threads[0].join()
        for count in (1, 2):
            torch.set_num_threads(count)
            outputs.append(default_pipeline.process(points))
    finally:
        torch.set_num_threads(threads_before)
    assert len(outputs) == 4 and len(reference.objects) > 3
    for out in outputs:
        np.testing.assert_array_equal(out.object_id, reference.object_id)
        np.testing.assert_array_equal(out.class_id, reference.class_id)
        assert [o.class_name for o in out.objects] == [o.class_name for o in reference.objects]
        np.testing.assert_allclose(out.saliency, reference.saliency, atol=1e-5)
        np.testing.assert_allclose([o.novelty for o in out.objects],  # each its own features
                                   [o.novelty for o in reference.objects], rtol=1e-4, atol=1e-3)


def test_at_most_max_objects_are_classified_the_largest_first(tiny_model):
    """A scan of 1100 pillars: the 1024 largest are classified (32 with occlusion), alike."""
    from pointcam_ros.perception.pipeline import MAX_OBJECTS, object_limit
    rng = np.random.default_rng(5)
    ground = np.c_[rng.uniform(-40, 40, (20_000, 2)), rng.normal(-1.8, 0.02, 20_000)]
    pillars, sizes = [], []
    for i in range(1100):
        size = 15 + (i * 7) % 31
        x, y = -30 + 2.0 * (i % 30), 3 + 2.0 * (i // 30)
        pillars.append(np.c_[rng.uniform(x, x + 0.2, size), rng.uniform(y, y + 0.2, size),
                             rng.uniform(-1.4, -0.4, size)])
        sizes.append(size)
    points = np.concatenate([ground] + pillars).astype(np.float32)
    config = PipelineConfig(model_path=tiny_model, device='cpu', max_range=100.0)
    out = ScenePipeline(config, backend='numpy').process(points)
    assert len(out.objects) == MAX_OBJECTS == out.object_id.max() + 1
    kept = np.array([o.num_points for o in out.objects])
    dropped = np.sort(sizes)[:1100 - MAX_OBJECTS]
    assert kept.min() >= dropped.max()
    assert np.sort(kept).tolist() == np.sort(sizes)[1100 - MAX_OBJECTS:].tolist()
    assert out.objects_capped == 1100 - MAX_OBJECTS
    twin = ScenePipeline(config, backend='torch').process(points)
    np.testing.assert_array_equal(twin.object_id, out.object_id)
    assert twin.objects_capped == 1100 - MAX_OBJECTS
    # Occlusion (17 forward passes per object) explains fewer, still the largest, and says so.
    occlusion_cap = object_limit('occlusion')
    assert occlusion_cap == 32 and object_limit('gradcam') == MAX_OBJECTS
    occlusion = config.replace(method='occlusion')
    for backend in ('numpy', 'torch'):
        capped = ScenePipeline(occlusion, backend=backend).process(points)
        assert len(capped.objects) == occlusion_cap < MAX_OBJECTS
        assert capped.objects_capped == 1100 - occlusion_cap
        counts = sorted(o.num_points for o in capped.objects)
        assert counts == np.sort(sizes)[1100 - occlusion_cap:].tolist()


@pytest.mark.parametrize('mode', ['view_range', 'view_ground'])
def test_torch_backend_feeds_a_view_model_its_channels(tiny_view_models, mode):
    """The GPU code path with a view model: same clusters, range per object, heights per point."""
    config = PipelineConfig(model_path=tiny_view_models[mode], device='cpu')
    pipeline = ScenePipeline(config, backend='torch')
    seen = []
    handle = pipeline.loaded.model.input_tnet.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone()))
    points = scan(random_scene(2_000_101), SENSORS['vlp16'], 1).xyz.reshape(-1, 3)
    out = pipeline.process(points)
    handle.remove()
    expected = ScenePipeline(config, backend='numpy').process(points)
    np.testing.assert_array_equal(out.object_id, expected.object_id)
    batch = torch.cat(seen)
    assert batch.shape == (len(out.objects), normalized_channels(mode),
                           pipeline.loaded.num_points)
    assert len(out.objects) > 3
    assert (batch[:, 3] == batch[:, 3, :1]).all()  # one value per object
    height = _model_points(points, mode)[:, -1]
    for k, obj in enumerate(out.objects):  # the range of the centroid of its N samples
        mine = out.object_id == obj.object_id
        centroid = points[mine].mean(axis=0)
        assert float(batch[k, 3, 0]) * 50.0 == pytest.approx(np.hypot(*centroid[:2]), abs=0.5)
        if mode == 'view_ground':  # every sample's height is one of its object's points'
            fed = batch[k, 4].numpy() * HEIGHT_SCALE
            gap = np.abs(fed[:, None] - height[mine][None, :]).min(axis=1)
            assert gap.max() < 1e-5 and fed.min() > config.ground_threshold


def test_pipeline_refuses_a_model_whose_channels_its_normalization_does_not_make(tmp_path):
    model = PointNetClassifier(PointNetConfig(num_classes=len(CLASS_NAMES), in_channels=4,
                                              mlp1=(8,), mlp2=(8, 16), head=(8,),
                                              tnet_conv=(8, 8, 16), tnet_fc=(8,)))
    save_checkpoint(tmp_path / 'm.pt', model, CLASS_NAMES, 32, 'center')
    with pytest.raises(CheckpointError, match="4 input channels, but its normalization 'center'"):
        ScenePipeline(PipelineConfig(model_path=str(tmp_path / 'm.pt'), device='cpu'))


@pytest.mark.parametrize('backend', ['numpy', 'torch'])
def test_object_mode_takes_the_lowest_point_as_the_ground(tiny_view_models, backend):
    """An object cloud has no ground around it: heights count from its lowest point."""
    config = PipelineConfig(model_path=tiny_view_models['view_ground'], device='cpu',
                            mode='object')
    pipeline = ScenePipeline(config, backend=backend)
    seen = []
    handle = pipeline.loaded.model.input_tnet.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone()))
    rng = np.random.default_rng(9)
    person = np.c_[rng.normal(8.0, 0.2, 50), rng.normal(3.0, 0.2, 50),
                   rng.uniform(-1.7, 0.0, 50)].astype(np.float32)  # 50 < N: all are fed
    out = pipeline.process(person)
    handle.remove()
    assert len(out.objects) == 1
    fed = seen[0][0, 4].numpy() * HEIGHT_SCALE
    np.testing.assert_allclose(np.unique(fed), np.unique(person[:, 2] - person[:, 2].min()),
                               atol=1e-6)
