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
import resource
import subprocess
import sys
import time
import zipfile

from conftest import randomized_model
import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.explain.gradcam import GradCAM
from pointcam_ros.formats.markers import label_text
from pointcam_ros.learn.calibration import T_RANGE
from pointcam_ros.model.checkpoint import (
    CheckpointError, import_reference_state_dict, load_checkpoint, MAX_FILE_BYTES,
    MAX_PARAMETERS, MAX_PICKLE_BYTES, MAX_RECORDS, parameter_count, save_checkpoint,
    TEMPERATURE_RANGE, TemperatureBands)
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.sim.raycast import scan
from pointcam_ros.sim.scenes import random_scene
from pointcam_ros.sim.sensors import SENSORS
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


def test_damaged_legacy_files_are_reported_as_corrupt(tmp_path):
    # Files in torch's legacy (non-zip) format reach its unpickler, which fails with
    # KeyError, IndexError, TypeError or AssertionError on damaged bytes; each is a
    # CheckpointError here, never a raw traceback.
    path = tmp_path / 'm.pt'
    path.write_bytes(b'hello\n')  # KeyError: 101 inside torch
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(path)
    torch.save({'format': 'x', 'w': torch.zeros(4), 'l': [1, 2, 'a']}, path,
               _use_new_zipfile_serialization=False)
    base = path.read_bytes()
    rng = np.random.default_rng(1)
    outcomes = set()
    for _ in range(150):
        data = bytearray(base)
        for _ in range(int(rng.integers(1, 5))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        path.write_bytes(bytes(data))
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(path)
        outcomes.add(type(caught.value.__cause__).__name__ if caught.value.__cause__ else '')
    assert len(outcomes) >= 3  # several of torch's failure kinds were met


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


def test_temperature_bands_calibrate_by_point_count(tmp_path):
    path = tmp_path / 'm.pt'
    bands = TemperatureBands((1, 30, 300), (2.0, 1.0, 0.5))
    save_checkpoint(path, randomized_model(CONFIG), NAMES, 128, 'center', temperature=1.5,
                    temperature_bands=bands)
    loaded = load_checkpoint(path)
    assert loaded.temperature == 1.5 and loaded.temperature_bands == bands
    counts = torch.tensor([0, 15, 29, 30, 299, 300, 10 ** 6])
    assert loaded.temperatures(counts).tolist() == [2.0, 2.0, 2.0, 1.0, 1.0, 0.5, 0.5]
    save_checkpoint(path, randomized_model(CONFIG), NAMES, 128, 'center', temperature=1.5)
    plain = load_checkpoint(path)  # no bands: one temperature for every object
    assert plain.temperature_bands is None and plain.temperatures(counts).tolist() == [1.5] * 7
    with pytest.raises(ValueError, match='ascending'):
        save_checkpoint(path, randomized_model(CONFIG), NAMES, 128, 'center',
                        temperature_bands=TemperatureBands((30, 1), (1.0, 1.0)))


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
_T_RANGE = r'must be a finite number in \[0.05, 20.0\]'
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
    ('temperature', math.nan, 'temperature', _T_RANGE),
    ('temperature', math.inf, 'temperature', _T_RANGE),
    ('temperature', -1.0, 'temperature', _T_RANGE),
    ('temperature', '1.0', 'temperature', _T_RANGE),
    ('temperature', 1e-300, 'temperature', _T_RANGE + r'.*got 1e-300: calibrate .* or set'),
    ('temperature', 1e6, 'temperature', _T_RANGE + '.*got 1000000.0'),
    ('temperature', 0.049, 'temperature', _T_RANGE),
    ('temperature_bands', [1.0], 'temperature_bands', 'must be a mapping'),
    ('temperature_bands', {'min_points': [1, 30]}, 'temperature_bands', 'must be a mapping'),
    ('temperature_bands', {'min_points': [30, 1], 'temperatures': [1.0, 1.0]},
     'temperature_bands', 'ascending'),
    ('temperature_bands', {'min_points': [1, 30], 'temperatures': [1.0]},
     'temperature_bands', 'one each'),
    ('temperature_bands', {'min_points': [0], 'temperatures': [1.0]}, 'temperature_bands',
     '>= 1'),
    ('temperature_bands', {'min_points': list(range(1, 18)), 'temperatures': [1.0] * 17},
     'temperature_bands', 'at most 16 bands'),
    ('temperature_bands', {'min_points': [1, 30], 'temperatures': [1.0, math.nan]},
     'temperature_bands', _T_RANGE),
    ('state_dict', [1, 2], 'state_dict', 'must be a dict of tensors'),
    ('state_dict.classifier.bias', [0.0, 0.0, 0.0], 'state_dict.classifier.bias',
     'must be a dense tensor, got list'),
    ('state_dict.classifier.bias', torch.zeros(3).to_sparse(), 'state_dict.classifier.bias',
     'must be a dense tensor, got torch.sparse_coo'),
    ('state_dict.classifier.weight', torch.full((3, 8), complex(math.nan, 0)),
     'state_dict.classifier.weight', r'must be a real floating-point tensor \(float16, '
     r'bfloat16, float32, float64\), got complex64: the weights are broken'),
    ('state_dict.classifier.weight', torch.ones(3, 8, dtype=torch.int32),
     'state_dict.classifier.weight', 'must be a real floating-point tensor .*got int32'),
    ('state_dict.classifier.bias', torch.ones(3, dtype=torch.bool),
     'state_dict.classifier.bias', 'must be a real floating-point tensor .*got bool'),
    ('state_dict.head.0.bn.num_batches_tracked', torch.tensor(3.0),
     'state_dict.head.0.bn.num_batches_tracked', 'must have dtype int64, got float32'),
    ('state_dict.classifier.weight', torch.zeros(3, 7), 'state_dict.classifier.weight',
     r'has shape \(3, 7\) \(21 values\), the stored architecture needs \(3, 8\): the '
     "weights do not match the stored architecture \\(field 'architecture'\\): re-save"),
    ('state_dict.classifier.bias', torch.zeros(3, 1), 'state_dict.classifier.bias',
     r'has shape \(3, 1\).*needs \(3,\)'),
    ('state_dict.classifier.bias', _DELETE, 'state_dict',
     r'lacks 1 tensors of the stored architecture \(classifier.bias\): the weights do not '
     'match'),
    ('state_dict.wings.weight', torch.zeros(2), 'state_dict.wings.weight',
     r'is not a tensor of the stored architecture \(unexpected: wings.weight\)'),
    ('state_dict.classifier.bias', torch.zeros(3, device='meta'), 'state_dict.classifier.bias',
     'is a tensor on the meta device, which holds no values here: save the model with its '
     'real weights'),
    ('state_dict.classifier.bias', torch.zeros(100_000)[:3], 'state_dict.classifier.bias',
     'is a view of 400,000 bytes of storage, more than the 4,120 its 3 values can need'),
    ('state_dict.classifier.bias', torch.zeros(1).expand(int(5e8)),
     'state_dict.classifier.bias', r'has shape \(500000000,\) \(500,000,000 values\)'),
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
    elif dotted.startswith('state_dict.') and value is _DELETE:
        del state[dotted[len('state_dict.'):]]
    elif dotted.startswith('state_dict.'):
        state[dotted[len('state_dict.'):]] = value
    else:
        _set(payload, dotted, value)
    path = tmp_path / 'bad.pt'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"bad.pt: field '{field}' .*{reason}"):
        load_checkpoint(path)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@pytest.mark.parametrize('key, count', [
    ('classifier.bias', int(5e8)),  # took 3.7 GB to refuse
    ('classifier.bias', int(1e13)),  # was a raw "can't allocate memory" RuntimeError
    ('mlp1.0.conv.weight', int(2e9)),  # took 13.9 GB
    ('hidden.extra', int(1e13)),  # not a key of the architecture at all
])
def test_an_expanded_tensor_is_refused_from_its_metadata(tmp_path, key, count):
    """One stored float seen as 1e13 values: 4 bytes on disk, refused without reading them."""
    payload = _payload(tmp_path)
    payload['state_dict'][key] = torch.zeros(1).expand(count)
    path = tmp_path / 'expanded.pt'
    torch.save(payload, path)
    assert path.stat().st_size < 100_000  # the small model's weights plus 4 bytes
    before, started = _peak_rss_mib(), time.perf_counter()
    with pytest.raises(CheckpointError, match=f"expanded.pt: field 'state_dict.{key}' "):
        load_checkpoint(path)
    assert _peak_rss_mib() - before < 64  # MiB; isfinite alone would take count bytes
    assert time.perf_counter() - started < 10


def _rewrite_zip(path, compress=zipfile.ZIP_STORED, extra=()):
    """Copy the zip at ``path`` record by record, optionally compressed or with extras."""
    with zipfile.ZipFile(path) as source:
        records = [(info.filename, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, 'w', compression=compress) as target:
        for name, data in [*records, *extra]:
            target.writestr(name, data)


def test_file_bounds_are_checked_before_torch_reads_it(tmp_path):
    good = tmp_path / 'good.pt'
    save_checkpoint(good, randomized_model(CONFIG), NAMES, 128, 'center')
    huge = tmp_path / 'huge.pt'
    with open(huge, 'wb') as stream:  # sparse: no disk used
        stream.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(CheckpointError, match=f'huge.pt is {MAX_FILE_BYTES + 1:,} bytes, more '
                       f'than the {MAX_FILE_BYTES:,} bytes that the largest allowed model'):
        load_checkpoint(huge)
    legacy = tmp_path / 'legacy.pt'
    with open(legacy, 'wb') as stream:
        stream.truncate(MAX_PICKLE_BYTES + 1)
    with pytest.raises(CheckpointError, match='truncated or corrupt.*not a zip-format '
                       'torch.save file, and at 1,048,577 bytes too large'):
        load_checkpoint(legacy)
    squeezed = tmp_path / 'squeezed.pt'
    squeezed.write_bytes(good.read_bytes())
    _rewrite_zip(squeezed, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match='squeezed.pt is not a readable PyTorch file.*'
                       'is compressed; torch.save stores records uncompressed'):
        load_checkpoint(squeezed)
    padded = tmp_path / 'padded.pt'
    padded.write_bytes(good.read_bytes())
    _rewrite_zip(padded, extra=[('good/byteorder2', b'x' * (MAX_PICKLE_BYTES + 1))])
    with pytest.raises(CheckpointError, match='record good/byteorder2 has 1,048,577 bytes'):
        load_checkpoint(padded)
    crowded = tmp_path / 'crowded.pt'
    crowded.write_bytes(good.read_bytes())
    _rewrite_zip(crowded, extra=[(f'good/x{i}', b'') for i in range(MAX_RECORDS)])
    with pytest.raises(CheckpointError, match=r'the zip claims 4,\d{3} records'):
        load_checkpoint(crowded)
    # the rewritten copy itself is still a good checkpoint: only the bounds refused those
    copy_ = tmp_path / 'copy.pt'
    copy_.write_bytes(good.read_bytes())
    _rewrite_zip(copy_)
    assert load_checkpoint(copy_).class_names == NAMES


def test_temperature_range_is_the_calibration_search_range(tmp_path):
    assert TEMPERATURE_RANGE == T_RANGE
    model = randomized_model(CONFIG)
    for bad in (1e-300, 1e6, math.nan, 0.0):
        with pytest.raises(ValueError, match=r"field 'temperature' must be a finite number "
                           r'in \[0.05, 20.0\]'):
            save_checkpoint(tmp_path / 't.pt', model, NAMES, 128, 'center', temperature=bad)
    for edge in TEMPERATURE_RANGE:
        save_checkpoint(tmp_path / 't.pt', model, NAMES, 128, 'center', temperature=edge)
        assert load_checkpoint(tmp_path / 't.pt').temperature == edge


def test_a_nan_confidence_is_labelled_unknown(tiny_model):
    """Should NaN confidences appear after all (here: T = 1e-300 set in memory), no label."""
    loaded = load_checkpoint(tiny_model)
    loaded.temperature = 1e-300  # load_checkpoint refuses it; softmax(logits / T) is NaN
    points = scan(random_scene(2_000_017), SENSORS['hdl32'], 5).xyz.reshape(-1, 3)
    config = PipelineConfig(model_path=tiny_model, device='cpu', min_confidence=0.0)
    out = ScenePipeline(config, loaded=loaded, backend='numpy').process(points)
    assert len(out.objects) > 3
    for obj in out.objects:
        assert math.isnan(obj.confidence) and obj.unknown, obj
        assert label_text(obj).startswith('unknown (') and 'nan' not in label_text(obj)
    assert set(np.unique(out.class_id)) <= {-1, -2}  # no point carries a class


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
