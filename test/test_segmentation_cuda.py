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
The CUDA segmentation and pipeline give the numpy results (skipped without a GPU).

The scene is built here with numpy (the GPU box has no open3d): ground, a
14 m wall with a person 0.35 m in front of it, two parked cars 0.4 m apart
seen as an L (the person and the wall, and the two cars, are one cluster
each at 0.5 m voxels, so the split pass runs), a pole. The same checks run
on the CPU in test_segmentation.py and test_pipeline.py. Where the simulated
scans of bench/record_scans.py were carried along (bench/data/scans.npz, as
bench/gpu_check.sh does), the pipeline is also compared on them.
"""

import importlib.util
from pathlib import Path

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.cloud_io import read_cloud
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.segmentation import segment_scene
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
BENCH = Path(__file__).resolve().parents[1] / 'bench'
RECORDED = BENCH / 'data' / 'scans.npz'


def _plane(rng, origin, u, v, count):
    """``count`` points on the parallelogram origin + a u + b v, a, b in [0, 1)."""
    a, b = rng.random((2, count, 1))
    return np.asarray(origin) + a * np.asarray(u) + b * np.asarray(v)


def street_scene(seed: int = 0) -> np.ndarray:
    """Return an ``(M, 3)`` float32 street: the sensor at the origin, 1.73 m above the ground."""
    rng = np.random.default_rng(seed)
    z0 = -1.73
    parts = [_plane(rng, (-30, -30, z0), (60, 0, 0), (0, 60, 0), 60_000)]
    parts += [_plane(rng, (2, 8, z0), (14, 0, 0), (0, 0, 3.0), 8_000)]  # wall
    parts += [_plane(rng, (9, 7.6, z0), (0.5, 0, 0), (0, 0, 1.7), 400)]  # person by it
    for x in (4.0, 8.9):  # two parked cars 0.4 m apart, seen as an L (side and rear)
        parts += [_plane(rng, (x, -4, z0 + 0.3), (4.5, 0, 0), (0, 0, 1.2), 1_500),
                  _plane(rng, (x, -4, z0 + 0.3), (0, -1.8, 0), (0, 0, 1.2), 600)]
    parts += [_plane(rng, (20, 3, z0), (0.1, 0, 0), (0, 0, 5.0), 300)]  # a pole
    xyz = np.concatenate(parts)
    xyz += rng.normal(0, 0.01, xyz.shape)
    return xyz.astype(np.float32)


def test_split_segmentation_on_cuda_gives_the_numpy_clusters():
    xyz = street_scene()
    config = PipelineConfig()
    expected = segment_scene(xyz, config)
    got = segment_scene(torch.from_numpy(xyz).cuda(), config)
    assert got.labels.is_cuda and got.num_objects == expected.num_objects >= 4
    np.testing.assert_array_equal(got.labels.cpu().numpy(), expected.labels)
    np.testing.assert_allclose(got.height.cpu().numpy(), expected.height, rtol=0, atol=1e-4)
    # The person stands apart from the wall (its feet are ground), each car is a cluster.
    person = expected.labels[68_000:68_400]
    wall = expected.labels[60_000:68_000]
    assert (person >= 0).mean() > 0.8 and not set(person[person >= 0]) & set(wall[wall >= 0])
    first, second = expected.labels[68_400:70_500], expected.labels[70_500:72_600]
    assert len(set(first)) == len(set(second)) == 1 and first[0] != second[0] >= 0


def test_pipeline_on_cuda_gives_the_numpy_objects_and_boxes():
    xyz = street_scene(1)
    numpy_backend = ScenePipeline(PipelineConfig(device='cpu'), backend='numpy')
    cuda_backend = ScenePipeline(PipelineConfig(device='cuda'), backend='torch')
    expected, out = numpy_backend.process(xyz), cuda_backend.process(xyz)
    np.testing.assert_array_equal(out.object_id, expected.object_id)
    assert len(out.objects) == len(expected.objects) >= 4
    for obj, ref in zip(out.objects, expected.objects):
        np.testing.assert_allclose(obj.size, ref.size, atol=1e-4)
        np.testing.assert_allclose(obj.center, ref.center, atol=1e-4)
        assert np.isclose(np.cos(2 * (obj.yaw - ref.yaw)), 1, atol=1e-6)
        if obj.target_class == ref.target_class:  # the same prediction (own samples)
            assert obj.rule.split(':')[0] == ref.rule.split(':')[0]


@pytest.mark.skipif(not RECORDED.exists(), reason='no recorded scans: bench/record_scans.py')
def test_cuda_is_the_default_backend_and_gives_the_cpu_objects_on_recorded_scans():
    """Simulated scans of every recorded entry (open and street): the CPU's objects."""
    spec = importlib.util.spec_from_file_location('record_scans', BENCH / 'record_scans.py')
    record_scans = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record_scans)
    cuda = ScenePipeline(PipelineConfig(device='cuda'))
    cpu = ScenePipeline(PipelineConfig(device='cpu'))
    assert cuda.backend == 'torch' and cpu.backend == 'numpy'
    for name, (_, clouds) in record_scans.load_scans(RECORDED).items():
        for cloud in clouds[:2]:
            points = read_cloud(cloud).xyz
            out, expected = cuda.process(points), cpu.process(points)
            assert out.device.startswith('cuda') and len(out.objects) > 3, name
            np.testing.assert_array_equal(out.object_id, expected.object_id, err_msg=name)
            for obj, ref in zip(out.objects, expected.objects):
                np.testing.assert_allclose(obj.size, ref.size, atol=1e-3, err_msg=name)
                if obj.target_class == ref.target_class:  # the same prediction (own samples)
                    assert obj.rule.split(':')[0] == ref.rule.split(':')[0], name
