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

"""The LiDAR simulator: beam geometry, labels, occlusion, sparsity, determinism."""

import numpy as np
from pointcam_ros.formats.cloud_io import read_cloud
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import (
    _box, CLASS_NAMES, GROUND_ID, random_scene, scan, Scene, SceneObject, SENSORS)
import pytest


@pytest.mark.parametrize('name, beams, columns', [
    ('vlp16', 16, 1800), ('hdl32', 32, 2170), ('hdl64', 64, 2083), ('os1_64', 64, 1024),
    ('os1_128', 128, 2048)])
def test_presets_have_the_real_beam_geometry(name, beams, columns):
    sensor = SENSORS[name]
    assert sensor.beams == beams and sensor.columns == columns
    result = scan(random_scene(1), sensor, 1, range_noise=0.0, dropout=0.0)
    assert result.xyz.shape == (beams, columns, 3)
    elevation = np.degrees(np.arctan2(result.xyz[..., 2],
                                      np.hypot(result.xyz[..., 0], result.xyz[..., 1])))
    for row in range(beams):
        measured = elevation[row][np.isfinite(elevation[row])]
        if len(measured):
            assert np.allclose(measured, sensor.vertical_deg[row], atol=1e-3)
    rng = np.linalg.norm(result.xyz.reshape(-1, 3), axis=1)
    assert np.nanmax(rng) <= sensor.max_range


def test_vertical_angles_of_the_datasheets():
    assert SENSORS['vlp16'].vertical_deg[0] == 15 and SENSORS['vlp16'].vertical_deg[-1] == -15
    hdl64 = SENSORS['hdl64'].vertical_deg
    assert hdl64[0] == pytest.approx(2.0) and hdl64[-1] == pytest.approx(-24.33)
    assert np.ptp(SENSORS['os1_128'].vertical_deg) == pytest.approx(45.0)


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = scan(random_scene(7), SENSORS['hdl32'], 3)
    b = scan(random_scene(7), SENSORS['hdl32'], 3)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.object_id, b.object_id)
    c = scan(random_scene(8), SENSORS['hdl32'], 3)
    assert not np.array_equal(np.isnan(a.xyz), np.isnan(c.xyz))


def test_labels_cover_all_classes_and_ground():
    seen = set()
    for seed in range(12):
        scene = random_scene(seed)
        result = scan(scene, SENSORS['hdl64'], seed)
        _, object_id, class_id = result.flat()
        assert (class_id[object_id == GROUND_ID] == -1).all()
        for obj in scene.objects:
            assert (class_id[object_id == obj.object_id] == obj.class_id).all()
        seen |= set(class_id[class_id >= 0].tolist())
    assert seen == set(range(len(CLASS_NAMES)))


def test_objects_occlude_each_other_and_far_objects_are_sparse():
    def single(x, size=(1.0, 4.0, 2.0)):
        return SceneObject(0, 6, _box(size, (x, 0, 1.0)), np.array([x, 0.0, 0.0]), 0.0)

    sensor = SENSORS['hdl64']
    near_alone = Scene(ground=random_scene(0).ground, objects=[single(10.0)])
    counts = {}
    for x in (10.0, 20.0, 40.0):
        scene = Scene(ground=near_alone.ground, objects=[single(x)])
        _, ids, _ = scan(scene, sensor, 0, dropout=0.0).flat()
        counts[x] = int((ids == 0).sum())
    assert counts[10.0] > 2.5 * counts[20.0] > 0 and counts[20.0] > 2 * counts[40.0] > 0
    blocker = SceneObject(1, 6, _box((1.0, 6.0, 4.0), (5, 0, 2.0)), np.array([5.0, 0, 0]), 0.0)
    hidden = Scene(ground=near_alone.ground, objects=[single(10.0), blocker])
    _, ids, _ = scan(hidden, sensor, 0, dropout=0.0).flat()
    assert (ids == 0).sum() < 0.2 * counts[10.0]


def test_range_noise_and_dropout():
    scene = random_scene(3)
    clean = scan(scene, SENSORS['hdl32'], 1, range_noise=0.0, dropout=0.0)
    dropped = scan(scene, SENSORS['hdl32'], 1, range_noise=0.0, dropout=0.2)
    valid_clean = np.isfinite(clean.xyz[..., 0]).sum()
    valid_drop = np.isfinite(dropped.xyz[..., 0]).sum()
    assert 0.75 < valid_drop / valid_clean < 0.85
    noisy = scan(scene, SENSORS['hdl32'], 1, range_noise=0.05, dropout=0.0)
    both = np.isfinite(clean.xyz[..., 0]) & np.isfinite(noisy.xyz[..., 0])
    diff = np.linalg.norm(noisy.xyz[both], axis=1) - np.linalg.norm(clean.xyz[both], axis=1)
    assert 0.04 < diff.std() < 0.06


@pytest.mark.parametrize('sensor, point_step', [('vlp16', 22), ('os1_64', 48)])
def test_scans_are_published_in_the_driver_layout(sensor, point_step):
    result = scan(random_scene(2), SENSORS[sensor], 2)
    cloud = scan_to_cloud(result)
    assert cloud.point_step == point_step and cloud.height == SENSORS[sensor].beams
    points = read_cloud(cloud, ['ring', 'intensity'])
    valid = np.isfinite(result.xyz.reshape(-1, 3)).all(axis=1)
    np.testing.assert_array_equal(points.xyz, result.xyz.reshape(-1, 3)[valid])
    np.testing.assert_array_equal(points.extras['ring'], result.ring.reshape(-1)[valid])
