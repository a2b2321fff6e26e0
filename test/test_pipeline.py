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

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.geometry import oriented_box
from pointcam_ros.explain.gradcam import EXPLAINERS, GradCAM
from pointcam_ros.model.preprocess import normalize_object
from pointcam_ros.perception.pipeline import ScanError, ScenePipeline
from pointcam_ros.perception.segmentation import segment_scene
from pointcam_ros.sim.simulator import CLASS_NAMES, random_scene, scan, SENSORS
import pytest
import torch


@pytest.fixture(scope='module')
def sim_scan():
    scene = random_scene(2_000_017)
    return scene, scan(scene, SENSORS['hdl32'], 5)


def test_segmentation_finds_the_simulated_objects():
    """Objects within 40 m with >= 30 points: >= 95 % come out as one matching cluster."""
    config = PipelineConfig()
    found, total = 0, 0
    for seed in range(2_000_000, 2_000_012):
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
    assert total > 150
    assert found / total >= 0.95, f'{found}/{total} objects segmented'


def test_scene_mode_outputs_every_point(tiny_model, sim_scan):
    _, result = sim_scan
    points = result.xyz.reshape(-1, 3)  # organized, with NaN
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'))
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
        assert (out.class_id[members] == obj.class_id).all()
        assert out.saliency[members].max() == pytest.approx(1.0) or \
            out.saliency[members].max() == 0
        assert 0 < obj.confidence <= 1 and obj.class_name == CLASS_NAMES[obj.class_id]
        inside = points[members]
        assert np.all(np.abs(inside[:, 2] - obj.center[2]) <= obj.size[2] / 2 + 1e-4)
    outside = out.object_id == -1
    assert (out.saliency[outside] == 0).all() and (out.class_id[outside] == -1).all()
    assert set(out.timings) == {'segment', 'sample', 'model', 'map_back'}


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
