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

"""Per-object normalisation: the sensor-view frame, its range channel, the torch twin."""

import numpy as np
from pointcam_ros.learn.batching import Augmentation, make_batch
from pointcam_ros.learn.dataset import ObjectDataset
from pointcam_ros.learn.train import train
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig, with_input_channels
from pointcam_ros.model.preprocess import (
    HEIGHT_SCALE, NORMALIZATIONS, normalize_batch, normalize_object, normalize_objects,
    normalized_channels, RANGE_SCALE)
import pytest
import torch


def _turn(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate ``(N, 3)`` points about the sensor's up axis by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    return (points @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T).astype(np.float32)


def _car_corner(rng: np.random.Generator) -> np.ndarray:
    """Return an L of returns, a car's near side and rear 12 m ahead: ``(300, 3)`` float32."""
    side = np.c_[rng.uniform(10, 14.5, 200), np.full(200, -1.0), rng.uniform(-1.6, -0.3, 200)]
    rear = np.c_[np.full(100, 10.0), rng.uniform(-1.0, 0.8, 100), rng.uniform(-1.6, -0.3, 100)]
    return np.concatenate([side, rear]).astype(np.float32)


def test_view_frame_is_the_same_wherever_the_object_stands_around_the_sensor():
    """Seen from the same side, an object gets the same input at every azimuth."""
    obj = _car_corner(np.random.default_rng(0))
    ref = normalize_object(obj, 'view')
    for angle in (0.7, 2.0, -2.9, np.pi):
        np.testing.assert_allclose(normalize_object(_turn(obj, angle), 'view'), ref, atol=2e-5)
    # The plain centred frame keeps the azimuth: the same object gives another input.
    assert not np.allclose(normalize_object(_turn(obj, 2.0), 'center'),
                           normalize_object(obj, 'center'), atol=0.1)


def test_view_frame_x_points_from_the_sensor_to_the_object():
    """A wall across the line of sight is thin along x, long along y, and z is kept."""
    rng = np.random.default_rng(1)
    wall = np.c_[np.linspace(-3, 3, 200), np.full(200, 20.0), rng.uniform(-1.5, 1.5, 200)]
    for angle in (0.0, 1.1, -2.4):
        out = normalize_object(_turn(wall.astype(np.float32), angle), 'view')
        assert np.ptp(out[:, 0]) < 1e-4 and np.ptp(out[:, 1]) > 5.5
        np.testing.assert_allclose(out[:, 2], wall[:, 2] - wall[:, 2].mean(), atol=1e-5)
    # The rear, which faces the sensor, comes before the side that runs away from it.
    corner = normalize_object(_turn(_car_corner(rng), 0.4), 'view')
    assert corner[200:, 0].mean() < corner[:200, 0].mean() - 1.5


def test_view_range_adds_the_range_channel():
    obj = _turn(_car_corner(np.random.default_rng(2)), 1.3)
    out = normalize_object(obj, 'view_range')
    assert out.shape == (300, 4) and normalized_channels('view_range') == 4
    np.testing.assert_array_equal(out[:, :3], normalize_object(obj, 'view'))
    expected = np.hypot(*obj.mean(axis=0)[:2]) / RANGE_SCALE
    np.testing.assert_allclose(out[:, 3], expected, rtol=1e-6)
    assert normalize_object(obj[:0], 'view_range').shape == (0, 4)
    with pytest.raises(ValueError, match='normalization must be one of'):
        normalize_object(obj, 'view-range')


def _with_height(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 4)`` float32: ``points`` plus a height above the ground per point."""
    height = points[:, 2] + 1.8 + rng.normal(0, 0.05, len(points))
    return np.c_[points, height].astype(np.float32)


def test_view_ground_adds_each_points_height_above_the_ground():
    rng = np.random.default_rng(6)
    obj = _with_height(_turn(_car_corner(rng), -0.8), rng)
    out = normalize_object(obj, 'view_ground')
    assert out.shape == (300, 5) and normalized_channels('view_ground') == 5
    np.testing.assert_array_equal(out[:, :4], normalize_object(obj[:, :3], 'view_range'))
    np.testing.assert_allclose(out[:, 4], obj[:, 3] / HEIGHT_SCALE, rtol=1e-6)
    # x, y, z are the same whatever the ground; only the fifth channel reads it
    lifted = obj.copy()
    lifted[:, 3] += 1.0
    np.testing.assert_allclose(normalize_object(lifted, 'view_ground')[:, 4] - out[:, 4],
                               1.0 / HEIGHT_SCALE, atol=1e-6)
    # the other modes read the first three columns of a 4-column object
    np.testing.assert_array_equal(normalize_object(obj, 'center'),
                                  normalize_object(obj[:, :3], 'center'))
    with pytest.raises(ValueError, match=r'needs objects of shape \(n, 4\).*pointcam_dataset'):
        normalize_object(obj[:, :3], 'view_ground')
    with pytest.raises(ValueError, match=r'got \(300, 5\)'):
        normalize_object(np.c_[obj, obj[:, :1]], 'view_ground')
    # a missing height is not "on the ground": refused, in both twins
    hole = obj.copy()
    hole[7, 3] = np.nan
    with pytest.raises(ValueError, match='without a height above the ground'):
        normalize_object(hole, 'view_ground')
    batch = torch.from_numpy(hole[None])
    with pytest.raises(ValueError, match='without NaN'):
        normalize_batch(batch[..., :3].contiguous(), 'view_ground', batch[..., 3])
    with pytest.raises(ValueError, match='height above the ground'):
        normalize_batch(torch.from_numpy(obj[None, :, :3]), 'view_ground')


@pytest.mark.parametrize('mode', NORMALIZATIONS)
def test_torch_twin_equals_numpy(mode):
    rng = np.random.default_rng(3)
    objects = [_with_height(_turn(_car_corner(rng), a), rng) for a in (0.0, 1.0, -2.5)]
    objects.append(np.zeros((300, 4), np.float32))  # at the sensor: no direction to turn to
    stacked = torch.from_numpy(np.stack(objects))
    twin = normalize_batch(stacked[..., :3].contiguous(), mode, stacked[..., 3]).numpy()
    expected = np.stack([normalize_object(o, mode) for o in objects])
    assert twin.shape == expected.shape == (4, 300, normalized_channels(mode))
    np.testing.assert_allclose(twin, expected, atol=2e-5)


def test_augmentation_moves_xyz_and_keeps_the_range_channel():
    obj = _car_corner(np.random.default_rng(4))
    plain = make_batch([obj], 64, 'view_range', np.random.default_rng(5))
    scaled = make_batch([obj], 64, 'view_range', np.random.default_rng(5),
                        Augmentation(point_dropout=0.0, rotate=False, scale=(2.0, 2.0),
                                     jitter=0.0))
    assert plain.shape == (1, 4, 64)
    torch.testing.assert_close(scaled[:, :3], 2 * plain[:, :3])
    torch.testing.assert_close(scaled[:, 3], plain[:, 3])
    # the height above the ground is a fact of the scene: mirroring and scaling keep it
    grounded = _with_height(obj, np.random.default_rng(7))
    plain = make_batch([grounded], 64, 'view_ground', np.random.default_rng(5))
    moved = make_batch([grounded], 64, 'view_ground', np.random.default_rng(5),
                       Augmentation(point_dropout=0.0, rotate=False, scale=(2.0, 2.0),
                                    jitter=0.0, mirror=True))
    assert plain.shape == (1, 5, 64)
    torch.testing.assert_close(moved[:, 2], 2 * plain[:, 2])
    torch.testing.assert_close(moved[:, 3:], plain[:, 3:])


def test_training_a_view_model_refuses_random_rotation(tmp_path):
    empty = ObjectDataset(points=[], labels=np.zeros(0, np.int64),
                          distance=np.zeros(0, np.float32), seeds=np.zeros(0, np.int64),
                          class_names=['car'])
    with pytest.raises(ValueError, match='--no-rotate'):
        train(empty, empty, tmp_path / 'm.pt', epochs=1, num_points=64,
              normalization='view', batch_size=8, lr=1e-3, seed=0,
              device=torch.device('cpu'), augmentation=Augmentation(rotate=True))
    assert not (tmp_path / 'm.pt').exists()


@pytest.mark.parametrize('transforms', [(True, False), (True, True), (False, False)])
def test_a_widened_model_computes_what_the_trained_one_did(transforms):
    """--init of a 3-channel model for view_range: the added channel starts with no weight."""
    torch.manual_seed(0)
    model = PointNetClassifier(PointNetConfig(
        num_classes=7, mlp1=(16,), mlp2=(32, 64), head=(32, 16), tnet_conv=(16, 32, 64),
        tnet_fc=(32, 16), input_transform=transforms[0],
        feature_transform=transforms[1])).eval()
    for tnet in (model.input_tnet, model.feature_tnet):
        if tnet is not None:  # make the T-Nets do something, so their input weights matter
            with torch.no_grad():
                tnet.out.bias.normal_(0, 0.2)
    wider = with_input_channels(model, 4)
    assert wider.config.in_channels == 4 and not wider.training
    xyz = torch.randn(5, 3, 40)
    extra = torch.rand(5, 1, 40) * 3
    torch.testing.assert_close(wider(torch.cat([xyz, extra], dim=1)), model(xyz))
    with torch.no_grad():
        wider.mlp1[0].conv.weight[:, 3] = 1.0  # once trained, the channel does change things
    assert not torch.allclose(wider(torch.cat([xyz, extra], dim=1)), model(xyz))
    with pytest.raises(ValueError, match='cannot drop input channels'):
        with_input_channels(wider, 3)


def test_mirror_augmentation_reflects_about_the_line_of_sight_for_half_the_objects():
    obj = _turn(_car_corner(np.random.default_rng(6)), 0.8)
    still = Augmentation(point_dropout=0.0, rotate=False, scale=(1.0, 1.0), jitter=0.0)
    mirrored = Augmentation(point_dropout=0.0, rotate=False, scale=(1.0, 1.0), jitter=0.0,
                            mirror=True)
    flips = []
    for seed in range(40):
        batch = make_batch([obj], 64, 'view_range', np.random.default_rng(seed), mirrored)[0]
        same = make_batch([obj], 64, 'view_range', np.random.default_rng(seed), still)[0]
        torch.testing.assert_close(batch[[0, 2, 3]], same[[0, 2, 3]])
        flipped = bool(torch.allclose(batch[1], -same[1]))
        assert flipped or torch.equal(batch, same)
        flips.append(flipped)
    assert 10 <= sum(flips) <= 30


def test_training_with_heights_refuses_a_data_set_without_them(tmp_path):
    """A data set of an older version has x, y, z only: say so before any epoch runs."""
    old = ObjectDataset(points=[_car_corner(np.random.default_rng(8))],
                        labels=np.zeros(1, np.int64), distance=np.ones(1, np.float32),
                        seeds=np.zeros(1, np.int64), class_names=['car'])
    with pytest.raises(ValueError, match=r'training set: .*\(n, 4\).*rebuild them'):
        train(old, old, tmp_path / 'm.pt', epochs=1, num_points=64,
              normalization='view_ground', batch_size=8, lr=1e-3, seed=0,
              device=torch.device('cpu'), augmentation=Augmentation(rotate=False))
    assert not (tmp_path / 'm.pt').exists()


@pytest.mark.parametrize('mode', NORMALIZATIONS)
def test_the_numpy_batch_normalises_each_object_bit_for_bit(mode):
    """An object's bits do not depend on the batch it is in (one object: normalize_object)."""
    rng = np.random.default_rng(11)
    for num in (1, 7, 64, 256):
        objects = (rng.normal(size=(9, num, 4)) * 3 + [25.0, -8.0, -1.0, 0.5]).astype(np.float32)
        objects[0, :, :2] = 0.0  # centroid on the sensor's axis
        points = objects if mode == 'view_ground' else objects[..., :3]
        batch = normalize_objects(points, mode)
        assert batch.dtype == np.float32 and batch.shape == (9, num, normalized_channels(mode))
        for k in range(len(points)):
            np.testing.assert_array_equal(batch[k].view(np.int32),
                                          normalize_object(points[k], mode).view(np.int32))
    assert normalize_objects(np.zeros((2, 0, 4), np.float32), mode).shape == (
        2, 0, normalized_channels(mode))
