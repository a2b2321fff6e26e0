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

"""Checkpoints: round trip, safe loading, clear errors, reference state dicts."""

import copy
import math
import os
from pathlib import Path
import pickle
import subprocess
import sys

from conftest import randomized_model
from pointcam_ros.explain.gradcam import GradCAM
from pointcam_ros.model.checkpoint import (
    CheckpointError, import_reference_state_dict, load_checkpoint, MAX_PARAMETERS,
    parameter_count, save_checkpoint)
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
import pytest
import torch
import torch.nn.functional as F

CONFIG = PointNetConfig(num_classes=3, mlp1=(8,), mlp2=(16, 32), head=(16, 8),
                        tnet_conv=(8, 16, 32), tnet_fc=(16, 8))
NAMES = ['car', 'pedestrian', 'pole']


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = randomized_model(CONFIG)
    path = tmp_path / 'm.pt'
    save_checkpoint(path, model, NAMES, 256, 'center_ground', info={'accuracy': 0.97})
    loaded = load_checkpoint(path)
    assert loaded.class_names == NAMES and loaded.num_points == 256
    assert loaded.normalization == 'center_ground' and loaded.info == {'accuracy': 0.97}
    assert loaded.model.config == CONFIG and not loaded.model.training
    points = torch.randn(2, 3, 64)
    torch.testing.assert_close(loaded.model(points), model(points))
    assert [p.name for p in tmp_path.iterdir()] == ['m.pt']  # no temporary file left


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist.*model_path'):
        load_checkpoint(tmp_path / 'nope.pt')


def test_truncated_file_is_reported_as_corrupt(tmp_path):
    path = tmp_path / 'm.pt'
    save_checkpoint(path, randomized_model(CONFIG), NAMES, 128, 'center')
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(path)
    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ('touch /tmp/pointcam_pwned',))


def test_a_file_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pt'
    torch.save({'format': 'pointcam_ros.checkpoint', 'x': _Exploit()}, path)
    if os.path.exists('/tmp/pointcam_pwned'):
        os.remove('/tmp/pointcam_pwned')
    with pytest.raises(CheckpointError, match='evil.pt holds code or objects other than '
                       'tensors.*could run code'):
        load_checkpoint(path)
    assert not os.path.exists('/tmp/pointcam_pwned')
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):  # raw pickles, not torch.save files
        path.write_bytes(pickle.dumps({'state_dict': _Exploit()}, protocol=protocol))
        with pytest.raises(CheckpointError, match='holds code or objects other than tensors'):
            load_checkpoint(path)
        assert not os.path.exists('/tmp/pointcam_pwned')


def test_a_plain_pickle_is_named_as_such(tmp_path):
    path = tmp_path / 'plain.pt'
    path.write_bytes(pickle.dumps({'format': 'pointcam_ros.checkpoint'}))
    with pytest.raises(CheckpointError, match='plain.pt is a plain Python pickle, not a '
                       'torch.save file') as info:
        load_checkpoint(path)
    assert 'truncated' not in str(info.value) and 'code' not in str(info.value)


def test_mismatched_weights_and_foreign_files(tmp_path):
    path = tmp_path / 'm.pt'
    save_checkpoint(path, randomized_model(CONFIG), NAMES, 128, 'center')
    payload = torch.load(path, weights_only=True)
    payload['architecture']['mlp2'] = [16, 64]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match='do not match the stored architecture'):
        load_checkpoint(path)
    payload['format_version'] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="m.pt: field 'format_version' is 99"):
        load_checkpoint(path)
    torch.save(randomized_model(CONFIG).state_dict(), path)
    with pytest.raises(CheckpointError, match='not a pointcam_ros checkpoint'):
        load_checkpoint(path)
    with pytest.raises(ValueError, match='2 class names'):
        save_checkpoint(path, randomized_model(CONFIG), NAMES[:2], 128, 'center')


def test_foreign_state_dict_message_names_the_import_function(tmp_path):
    path = tmp_path / 'sd.pt'
    torch.save(randomized_model(CONFIG).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert 'pointcam_ros.model.checkpoint.import_reference_state_dict' in message
    assert 'save_checkpoint' in message and 'pointcam_import_model' not in message


def test_directory_and_empty_file_have_their_own_messages(tmp_path):
    with pytest.raises(CheckpointError, match='is a directory, not a checkpoint file'):
        load_checkpoint(tmp_path)
    empty = tmp_path / 'empty.pt'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'empty.pt is empty \(0 bytes\)'):
        load_checkpoint(empty)


# --- every malformed field: CheckpointError naming the file and the field -----------------

def _payload(tmp_path):
    path = tmp_path / 'good.pt'
    save_checkpoint(path, randomized_model(CONFIG), NAMES, 128, 'center', temperature=1.5)
    return torch.load(path, weights_only=True)


def _set(payload, dotted, value):
    """Set ``a.b`` in the payload; ``value`` _DELETE removes the key."""
    *parents, last = dotted.split('.')
    target = payload
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value


_DELETE = object()
_NAN_WEIGHTS = 'nan-weights'
_INF_WEIGHTS = 'inf-weights'


@pytest.mark.parametrize('dotted, value, field, reason', [
    ('info', 5, 'info', 'must be a dict'),
    ('info', {1: 'a'}, 'info', 'must be a dict with str keys'),
    ('architecture', [1, 2], 'architecture', 'must be a dict'),
    ('architecture.head', [2 ** 40, 256], r'architecture.head\[0\]', r'outside 1..8192'),
    ('architecture.mlp2', [16, 0], r'architecture.mlp2\[1\]', r'is 0, outside 1..8192'),
    ('architecture.mlp2', [16, '32'], r'architecture.mlp2\[1\]', 'must be an int'),
    ('architecture.mlp2', [16, 32.0], r'architecture.mlp2\[1\]', 'must be an int'),
    ('architecture.mlp1', [], 'architecture.mlp1', 'has 0 layers'),
    ('architecture.tnet_fc', [8] * 17, 'architecture.tnet_fc', 'has 17 layers, outside 0..16'),
    ('architecture.head', 'wide', 'architecture.head', 'must be a list'),
    ('architecture.num_classes', True, 'architecture.num_classes', 'must be an int'),
    ('architecture.num_classes', 0, 'architecture.num_classes', 'outside 1..1000'),
    ('architecture.num_classes', 1001, 'architecture.num_classes', 'outside 1..1000'),
    ('architecture.num_classes', _DELETE, 'architecture.num_classes', 'is missing'),
    ('architecture.in_channels', 2, 'architecture.in_channels', 'outside 3..64'),
    ('architecture.in_channels', 10 ** 6, 'architecture.in_channels', 'outside 3..64'),
    ('architecture.dropout', 1.5, 'architecture.dropout', r'in \[0, 1\)'),
    ('architecture.dropout', math.nan, 'architecture.dropout', r'in \[0, 1\)'),
    ('architecture.input_transform', 'yes', 'architecture.input_transform', 'true or false'),
    ('architecture.wings', 2, 'architecture.wings', 'unknown to this pointcam_ros'),
    ('class_names', 'car', 'class_names', 'must be a list of str'),
    ('class_names', ['car', '', 'pole'], r'class_names\[1\]', 'non-empty str'),
    ('class_names', ['car', 7, 'pole'], r'class_names\[1\]', 'non-empty str'),
    ('class_names', ['car', 'car', 'pole'], 'class_names', 'must be unique'),
    ('class_names', ['car', 'pole'], 'class_names', 'has 2 names for a model with 3'),
    ('num_points', 10 ** 9, 'num_points', r'outside 16..8192 \(points sampled per object'),
    ('num_points', 0, 'num_points', 'outside 16..8192'),
    ('num_points', 128.0, 'num_points', 'must be an int'),
    ('num_points', _DELETE, 'num_points', 'is missing'),
    ('normalization', 'zscore', 'normalization', 'must be one of'),
    ('temperature', math.nan, 'temperature', 'finite number > 0'),
    ('temperature', -1.0, 'temperature', 'finite number > 0'),
    ('temperature', '1.0', 'temperature', 'finite number > 0'),
    ('state_dict', [1, 2], 'state_dict', 'must be a dict of tensors'),
    ('state_dict.classifier.bias', [0.0, 0.0, 0.0], 'state_dict.classifier.bias',
     'must be a dense tensor, got list'),
    ('state_dict.classifier.bias', torch.zeros(3).to_sparse(), 'state_dict.classifier.bias',
     'must be a dense tensor, got torch.sparse_coo'),
    (_NAN_WEIGHTS, None, 'state_dict.mlp2.1.conv.weight', '1 NaN/Inf values'),
    (_INF_WEIGHTS, None, 'state_dict.head.0.bn.running_var', '2 NaN/Inf values'),
])
def test_each_malformed_field_is_named(tmp_path, dotted, value, field, reason):
    payload = _payload(tmp_path)
    state = payload['state_dict']
    if dotted == _NAN_WEIGHTS:
        state['mlp2.1.conv.weight'][3, 5, 0] = math.nan
    elif dotted == _INF_WEIGHTS:
        state['head.0.bn.running_var'][:2] = math.inf
    elif dotted.startswith('state_dict.'):
        state[dotted[len('state_dict.'):]] = value
    else:
        _set(payload, dotted, value)
    path = tmp_path / 'bad.pt'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"bad.pt: field '{field}' .*{reason}"):
        load_checkpoint(path)


def test_huge_architecture_is_refused_before_any_allocation(tmp_path):
    payload = _payload(tmp_path)
    # 2 x 8192 x 8192 conv weights: within every per-layer bound, over the parameter bound.
    payload['architecture'].update(mlp2=[8192, 8192], head=[8192, 16])
    path = tmp_path / 'huge.pt'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"huge.pt: field 'architecture' describes a "
                       r'model with [\d,]+ parameters, more than the limit of 50,000,000'):
        load_checkpoint(path)


def test_num_points_times_width_is_bounded(tmp_path):
    payload = _payload(tmp_path)
    payload['architecture'].update(mlp2=[16, 4096])
    payload['num_points'] = 8192
    path = tmp_path / 'wide.pt'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="wide.pt: field 'num_points' 8192 x the widest "
                       'per-point layer 4096'):
        load_checkpoint(path)


def test_optional_fields_take_their_defaults(tmp_path):
    payload = _payload(tmp_path)
    for key in ('info', 'temperature'):
        del payload[key]
    for key in ('dropout', 'last_relu', 'feature_transform'):
        del payload['architecture'][key]
    path = tmp_path / 'old.pt'
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.temperature == 1.0 and loaded.info == {}
    assert loaded.model.config.last_relu and not loaded.model.config.feature_transform


@pytest.mark.parametrize('config', [
    CONFIG,
    PointNetConfig(num_classes=5, in_channels=6, head=(), tnet_fc=(), feature_transform=True),
    PointNetConfig(num_classes=2, mlp1=(4, 8), mlp2=(8,), input_transform=False,
                   last_relu=False),
])
def test_parameter_count_matches_the_built_model(config):
    built = sum(p.numel() for p in PointNetClassifier(config).parameters())
    assert parameter_count(config) == built
    assert parameter_count(config) < MAX_PARAMETERS


def test_save_refuses_what_load_would_refuse(tmp_path):
    model = randomized_model(CONFIG)
    with pytest.raises(ValueError, match="field 'num_points' is 100000"):
        save_checkpoint(tmp_path / 'a.pt', model, NAMES, 100_000, 'center')
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.classifier.weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="field 'state_dict.classifier.weight' holds 1 NaN"):
        save_checkpoint(tmp_path / 'b.pt', broken, NAMES, 128, 'center')
    with pytest.raises(ValueError, match="field 'class_names' repeats"):
        save_checkpoint(tmp_path / 'c.pt', model, ['car', 'car', 'pole'], 128, 'center')
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


@pytest.mark.ros
def test_node_with_a_bad_model_exits_cleanly_naming_file_and_field(tmp_path):
    path = tmp_path / 'nan.pt'
    payload = _payload(tmp_path)
    payload['state_dict']['classifier.weight'][0, 0] = math.nan
    torch.save(payload, path)
    node = Path(sys.executable).parent / 'pointcam_node'
    result = subprocess.run([str(node), '--ros-args', '-p', f'model_path:={path}'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}: field 'state_dict.classifier.weight' holds 1 NaN" in result.stderr
    assert 'cannot start' in result.stderr and 'Traceback' not in result.stderr


def test_shipped_default_model_loads():
    loaded = load_checkpoint()
    assert len(loaded.class_names) == loaded.model.config.num_classes >= 6
    assert os.path.getsize(loaded.path) <= 5 * 1024 * 1024


# --- fxia22 / yanx27 reference layouts ----------------------------------------------------

def _bn(sd, name, width, gen):
    sd[f'{name}.weight'] = 1 + 0.2 * torch.randn(width, generator=gen)
    sd[f'{name}.bias'] = 0.1 * torch.randn(width, generator=gen)
    sd[f'{name}.running_mean'] = 0.1 * torch.randn(width, generator=gen)
    sd[f'{name}.running_var'] = 0.5 + torch.rand(width, generator=gen)
    sd[f'{name}.num_batches_tracked'] = torch.tensor(10)


def _lin(sd, name, fan_in, fan_out, gen, conv=False):
    shape = (fan_out, fan_in, 1) if conv else (fan_out, fan_in)
    sd[f'{name}.weight'] = torch.randn(*shape, generator=gen) / fan_in ** 0.5
    sd[f'{name}.bias'] = 0.1 * torch.randn(fan_out, generator=gen)


def _stn(sd, prefix, channels, k, gen):
    for i, (a, b) in enumerate([(channels, 64), (64, 128), (128, 1024)], start=1):
        _lin(sd, f'{prefix}.conv{i}', a, b, gen, conv=True)
        _bn(sd, f'{prefix}.bn{i}', b, gen)
    _lin(sd, f'{prefix}.fc1', 1024, 512, gen)
    _lin(sd, f'{prefix}.fc2', 512, 256, gen)
    _lin(sd, f'{prefix}.fc3', 256, k * k, gen)
    sd[f'{prefix}.fc3.weight'] *= 0.01
    _bn(sd, f'{prefix}.bn4', 512, gen)
    _bn(sd, f'{prefix}.bn5', 256, gen)


def _reference_state_dict(channels, classes, feature_transform, seed=0):
    """Keys and shapes of fxia22 PointNetCls / yanx27 pointnet_cls.get_model."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    _stn(sd, 'feat.stn', channels, 3, gen)
    if feature_transform:
        _stn(sd, 'feat.fstn', 64, 64, gen)
    for i, (a, b) in enumerate([(channels, 64), (64, 128), (128, 1024)], start=1):
        _lin(sd, f'feat.conv{i}', a, b, gen, conv=True)
        _bn(sd, f'feat.bn{i}', b, gen)
    _lin(sd, 'fc1', 1024, 512, gen)
    _lin(sd, 'fc2', 512, 256, gen)
    _lin(sd, 'fc3', 256, classes, gen)
    _bn(sd, 'bn1', 512, gen)
    _bn(sd, 'bn2', 256, gen)
    return sd


def _reference_forward(sd, x):
    """Their forward pass, written from their source with functional ops (eval mode)."""
    def bn(t, name):
        return F.batch_norm(t, sd[f'{name}.running_mean'], sd[f'{name}.running_var'],
                            sd[f'{name}.weight'], sd[f'{name}.bias'], False, 0.0, 1e-5)

    def conv(t, name):
        return F.conv1d(t, sd[f'{name}.weight'], sd[f'{name}.bias'])

    def fc(t, name):
        return F.linear(t, sd[f'{name}.weight'], sd[f'{name}.bias'])

    def stn(t, p, k):
        for i in (1, 2, 3):
            t = F.relu(bn(conv(t, f'{p}.conv{i}'), f'{p}.bn{i}'))
        t = t.max(dim=2).values
        t = F.relu(bn(fc(t, f'{p}.fc1'), f'{p}.bn4'))
        t = F.relu(bn(fc(t, f'{p}.fc2'), f'{p}.bn5'))
        return (fc(t, f'{p}.fc3') + torch.eye(k).flatten()).view(-1, k, k)

    trans = stn(x, 'feat.stn', 3)
    xyz = torch.bmm(x[:, :3].transpose(2, 1), trans).transpose(2, 1)
    x = torch.cat([xyz, x[:, 3:]], dim=1)
    x = F.relu(bn(conv(x, 'feat.conv1'), 'feat.bn1'))
    if 'feat.fstn.conv1.weight' in sd:
        trans_feat = stn(x, 'feat.fstn', 64)
        x = torch.bmm(x.transpose(2, 1), trans_feat).transpose(2, 1)
    x = F.relu(bn(conv(x, 'feat.conv2'), 'feat.bn2'))
    x = bn(conv(x, 'feat.conv3'), 'feat.bn3')  # no ReLU before the max-pool
    x = x.max(dim=2).values
    x = F.relu(bn(fc(x, 'fc1'), 'bn1'))
    x = F.relu(bn(fc(x, 'fc2'), 'bn2'))  # dropout is identity in eval
    return F.log_softmax(fc(x, 'fc3'), dim=1)


@pytest.mark.parametrize('channels, feature_transform, wrapped', [
    (3, False, False),  # fxia22 PointNetCls(k=4)
    (3, True, False),  # fxia22 PointNetCls(k=4, feature_transform=True)
    (6, True, True),  # yanx27 get_model(4, normal_channel=True), training checkpoint
])
def test_reference_state_dicts_give_their_predictions(channels, feature_transform, wrapped):
    names = ['a', 'b', 'c', 'd']
    sd = _reference_state_dict(channels, 4, feature_transform)
    source = {'epoch': 3, 'model_state_dict': sd} if wrapped else sd
    model = import_reference_state_dict(source, names)
    assert model.config.in_channels == channels
    assert model.config.feature_transform == feature_transform
    assert not model.config.last_relu
    x = torch.randn(3, channels, 128, generator=torch.Generator().manual_seed(1))
    expected = _reference_forward(sd, x)
    torch.testing.assert_close(torch.log_softmax(model(x), dim=1), expected,
                               rtol=1e-4, atol=1e-4)
    cam = GradCAM(model, names)(x)  # A may be negative here (no ReLU): still well defined
    assert cam.saliency.shape == (3, 128)


def test_reference_import_errors():
    sd = _reference_state_dict(3, 4, False)
    with pytest.raises(CheckpointError, match='4 classes but 2 class names'):
        import_reference_state_dict(sd, ['a', 'b'])
    with pytest.raises(CheckpointError, match="unexpected key 'extra.weight'"):
        import_reference_state_dict({**sd, 'extra.weight': torch.zeros(1)}, list('abcd'))
    with pytest.raises(CheckpointError, match='missing'):
        import_reference_state_dict({'fc3.weight': torch.zeros(4, 2)}, list('abcd'))
