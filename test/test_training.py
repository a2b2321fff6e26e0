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

"""Data sets, training, evaluation and rendering, on small real data."""

import hashlib
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.learn.batching import Augmentation, make_batch
from pointcam_ros.learn.calibration import (
    band_temperatures, calibration_report, choose_min_confidence, ECE_BINS,
    expected_calibration_error, fit_band_temperatures, fit_temperature, nll,
    reliability, softmax)
from pointcam_ros.learn.dataset import (
    build_dataset, load_dataset, ObjectDataset, save_dataset, SPLIT_SEEDS)
from pointcam_ros.learn.dataset_cli import COMMANDS as DATASET_COMMANDS
from pointcam_ros.learn.dataset_cli import main as dataset_main, modern_argv
from pointcam_ros.learn.evaluate import _drop_more, faithfulness
from pointcam_ros.learn.metrics import accuracy_by_points, confusion_matrix, metrics
from pointcam_ros.learn.train import calibrate, DEFAULT_ARCH, format_report
from pointcam_ros.learn.train import main as train_main, train
from pointcam_ros.model.checkpoint import load_checkpoint
from pointcam_ros.tools.render import render_objects, render_scan
import pytest
import torch

TINY_ARCH = {'mlp1': (16,), 'mlp2': (32, 64), 'head': (32, 16), 'tnet_conv': (16, 32, 64),
             'tnet_fc': (32, 16), 'dropout': 0.1}


@pytest.fixture(scope='module')
def small_sets(tmp_path_factory):
    folder = tmp_path_factory.mktemp('data')
    train_set = build_dataset(range(SPLIT_SEEDS['train'], SPLIT_SEEDS['train'] + 12),
                              progress=False)
    val_set = build_dataset(range(SPLIT_SEEDS['val'], SPLIT_SEEDS['val'] + 4), progress=False)
    save_dataset(train_set, folder / 'train.npz')
    save_dataset(val_set, folder / 'val.npz')
    return folder, train_set, val_set


def test_dataset_round_trip_and_splits(small_sets):
    folder, train_set, val_set = small_sets
    loaded = load_dataset(folder / 'train.npz')
    assert len(loaded) == len(train_set) > 50
    for a, b in zip(loaded.points, train_set.points):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.labels, train_set.labels)
    assert loaded.class_names == train_set.class_names
    assert set(train_set.seeds).isdisjoint(set(val_set.seeds))
    assert all(len(p) >= 15 for p in loaded.points)
    # x, y, z and the height above the local ground: objects stand above the ground band
    assert all(p.shape[1] == 4 and p.dtype == np.float32 for p in loaded.points)
    heights = np.concatenate([p[:, 3] for p in loaded.points])
    assert np.isfinite(heights).all() and heights.min() > PipelineConfig().ground_threshold
    # a set of an older version (x, y, z only) still loads, as it was written
    old = ObjectDataset(points=[p[:, :3] for p in train_set.points[:5]],
                        labels=train_set.labels[:5], distance=train_set.distance[:5],
                        seeds=train_set.seeds[:5], class_names=train_set.class_names)
    save_dataset(old, folder / 'old.npz')
    assert [p.shape[1] for p in load_dataset(folder / 'old.npz').points] == [3] * 5
    (folder / 'bad.npz').write_bytes(b'not a dataset')
    with pytest.raises(ValueError, match='not a pointcam_ros dataset'):
        load_dataset(folder / 'bad.npz')


def test_batches_are_normalised_and_augmented():
    rng = np.random.default_rng(0)
    obj = rng.normal(size=(40, 3)).astype(np.float32) + [10, 5, -1]
    plain = make_batch([obj], 64, 'center', rng)
    assert plain.shape == (1, 3, 64)
    assert torch.allclose(plain[0].mean(dim=1), torch.zeros(3), atol=0.3)
    aug = make_batch([obj] * 2, 64, 'center', np.random.default_rng(1), augment=Augmentation())
    assert not torch.allclose(aug[0], aug[1])


def test_augmentation_options_switch_each_step_off():
    obj = np.random.default_rng(2).normal(size=(40, 3)).astype(np.float32)
    plain = make_batch([obj], 64, 'center', np.random.default_rng(3))
    off = Augmentation(point_dropout=0.0, rotate=False, scale=(1.0, 1.0), jitter=0.0)
    assert torch.equal(make_batch([obj], 64, 'center', np.random.default_rng(3), off), plain)
    scaled = make_batch([obj], 64, 'center', np.random.default_rng(3),
                        Augmentation(point_dropout=0.0, rotate=False, scale=(2.0, 2.0),
                                     jitter=0.0))
    assert torch.allclose(scaled, 2 * plain)
    for bad in ({'point_dropout': 1.0}, {'scale': (1.2, 1.1)}, {'jitter': -0.01}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Augmentation(**bad)


def test_metrics_from_a_confusion_matrix():
    confusion = confusion_matrix(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), 2)
    assert confusion.tolist() == [[1, 1], [1, 2]]
    result = metrics(confusion, ['a', 'b'])
    assert result['accuracy'] == pytest.approx(0.6)
    assert result['per_class']['b']['accuracy'] == pytest.approx(2 / 3)
    assert result['per_class']['a']['precision'] == pytest.approx(0.5)


def test_accuracy_by_point_bands():
    truth = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    points = np.array([10, 29, 30, 59, 500, 45])
    bands = accuracy_by_points(truth, predicted, points, bands=(0, 30, 60))
    assert [b['points'] for b in bands] == [[0, 30], [30, 60], [60, None]]
    assert [b['count'] for b in bands] == [2, 3, 1]
    assert [b['accuracy'] for b in bands] == [0.5, 1.0, 0.0]
    empty = accuracy_by_points(truth, predicted, points, bands=(1000,))
    assert empty[0]['count'] == 0 and np.isnan(empty[0]['accuracy'])


def test_training_writes_a_checkpoint_and_resumes(small_sets, tmp_path):
    _, train_set, val_set = small_sets
    out = tmp_path / 'model.pt'
    common = {'num_points': 64, 'normalization': 'center', 'batch_size': 16, 'lr': 2e-3,
              'seed': 0, 'device': torch.device('cpu'), 'arch': TINY_ARCH, 'progress': False}
    first = train(train_set, val_set, out, epochs=2, **common)
    assert [h['epoch'] for h in first['history']] == [1, 2]
    loaded = load_checkpoint(out)
    assert loaded.num_points == 64 and loaded.normalization == 'center'
    assert loaded.class_names == train_set.class_names
    assert loaded.info['val_accuracy'] == pytest.approx(first['best_val_accuracy'])
    assert loaded.info['augmentation']['point_dropout'] == Augmentation().point_dropout
    # Resume from the state after epoch 2 and run to epoch 3.
    resumed = train(train_set, val_set, out, epochs=3, resume=Path(f'{out}.state.pt'),
                    **common)
    assert [h['epoch'] for h in resumed['history']] == [1, 2, 3]
    assert resumed['history'][:2] == first['history']
    # select='last' on the finished state writes its final weights, whatever the best was.
    last = tmp_path / 'last.pt'
    train(train_set, val_set, last, epochs=3, resume=Path(f'{out}.state.pt'), select='last',
          **common)
    written = load_checkpoint(last)
    final = torch.load(f'{out}.state.pt', weights_only=True)['model']
    assert written.info['epoch'] == 3 and written.info['selected'] == 'last'
    for name, tensor in written.model.state_dict().items():
        assert torch.equal(tensor, final[name]), name
    with pytest.raises(ValueError, match='select must be one of'):
        train(train_set, val_set, last, epochs=1, select='newest', **common)
    # Fine-tuning starts from the weights of a checkpoint, not from scratch.
    tuned = tmp_path / 'tuned.pt'
    report = train(train_set, val_set, tuned, epochs=1, init=out,
                   **{**common, 'arch': None, 'lr': 1e-6})
    assert report['architecture'] == loaded.model.config.to_dict()
    start, after = load_checkpoint(out).model.state_dict(), load_checkpoint(tuned).model
    assert load_checkpoint(tuned).info['init'] == 'model.pt'
    weight = 'classifier.weight'
    assert torch.allclose(after.state_dict()[weight], start[weight], atol=1e-3)


def test_fine_tuning_a_centred_model_into_the_sensor_view(small_sets, tmp_path):
    """--init of a 3-channel model for view_range widens it; the reverse is refused."""
    _, train_set, val_set = small_sets
    common = {'num_points': 64, 'batch_size': 16, 'lr': 1e-6, 'seed': 0,
              'device': torch.device('cpu'), 'progress': False}
    centred = tmp_path / 'centred.pt'
    train(train_set, val_set, centred, epochs=1, normalization='center', arch=TINY_ARCH,
          **common)
    view = tmp_path / 'view.pt'
    still = Augmentation(rotate=False)
    train(train_set, val_set, view, epochs=1, normalization='view_range', init=centred,
          augmentation=still, **common)
    before, after = load_checkpoint(centred).model, load_checkpoint(view)
    assert after.normalization == 'view_range' and after.model.config.in_channels == 4
    first = after.model.state_dict()['mlp1.0.conv.weight']  # (16, 4, 1)
    assert first[:, 3].abs().max() < 1e-3  # the range channel started from zero weights
    torch.testing.assert_close(first[:, :3], before.state_dict()['mlp1.0.conv.weight'],
                               atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match='takes 4 input channels'):
        train(train_set, val_set, tmp_path / 'back.pt', epochs=1, normalization='center',
              init=view, **common)
    # A run's state remembers its input: resuming it with another one says so.
    with pytest.raises(ValueError, match='--normalization view_range --num-points 64'):
        train(train_set, val_set, view, epochs=2, normalization='view',
              resume=Path(f'{view}.state.pt'), augmentation=still,
              **{**common, 'arch': TINY_ARCH})


def test_train_command_line_refuses_to_overwrite(small_sets, tmp_path):
    folder, _, _ = small_sets
    out = tmp_path / 'model.pt'
    out.write_bytes(b'precious')
    exe = str(Path(sys.executable).parent / 'pointcam_train')
    result = subprocess.run([exe, '--train', str(folder / 'train.npz'), '--val',
                             str(folder / 'val.npz'), '--out', str(out), '--epochs', '1'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and '--force' in result.stderr
    assert out.read_bytes() == b'precious'
    result = subprocess.run([exe, '--train', str(folder / 'train.npz'), '--val',
                             str(folder / 'val.npz'), '--out', str(tmp_path / 'new.pt'),
                             '--point-dropout', '1.5'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and 'point_dropout must be in [0, 1)' in result.stderr
    assert not (tmp_path / 'new.pt').exists()
    # --resume of another run's state does not license overwriting this --out.
    other = tmp_path / 'other.pt.state.pt'
    other.write_bytes(b'a state')
    result = subprocess.run([exe, '--train', str(folder / 'train.npz'), '--val',
                             str(folder / 'val.npz'), '--out', str(out), '--resume', str(other),
                             '--select', 'last'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and '--force' in result.stderr
    assert out.read_bytes() == b'precious'


def test_train_arch_option_builds_that_network(small_sets, tmp_path, capsys):
    folder, _, _ = small_sets
    args = ['--train', str(folder / 'train.npz'), '--val', str(folder / 'val.npz'),
            '--epochs', '1']
    out = tmp_path / 'wide.pt'
    assert train_main(args + ['--out', str(out), '--arch', '{"mlp2": [32, 48]}']) == 0
    loaded = load_checkpoint(out, torch.device('cpu'))
    assert loaded.model.config.mlp2 == (32, 48)
    assert loaded.model.config.head == tuple(DEFAULT_ARCH['head'])
    # The default input is the sensor's view plus range and heights above the ground,
    # trained without random yaw.
    assert loaded.normalization == 'view_ground' and loaded.model.config.in_channels == 5
    assert loaded.info['augmentation']['rotate'] is False
    for bad in ('{"mlp2": [0]}', '{"in_channels": 4}', '[1]'):
        with pytest.raises(SystemExit) as stop:
            train_main(args + ['--out', str(tmp_path / 'bad.pt'), '--arch', bad])
        assert stop.value.code == 2 and not (tmp_path / 'bad.pt').exists()
    # Resuming the wide network's state as the default network says what to do (the run's
    # report exists: resuming rewrites --out and its state, the report only with --force).
    capsys.readouterr()
    resume = ['--out', str(out), '--epochs', '2',
              '--resume', str(out.with_name(out.name + '.state.pt'))]
    with pytest.raises(SystemExit) as stop:
        train_main(args + resume)
    assert stop.value.code == 2 and 'wide.json exists: pass --force' in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        train_main(args + resume + ['--force'])
    assert stop.value.code == 2 and 'resume with the same --arch' in capsys.readouterr().err


def test_drop_masks_remove_the_right_points():
    saliency = torch.tensor([[0.9, 0.1, 0.5, 0.0, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6]])
    gen = torch.Generator().manual_seed(0)
    everything = torch.ones_like(saliency, dtype=torch.bool)
    top = _drop_more(everything, saliency, 2, 'most_salient', gen)
    assert top[0].tolist() == [False, True, True, True, True, True, True, False, True, True]
    low = _drop_more(everything, saliency, 2, 'least_salient', gen)
    assert not low[0, 3] and not low[0, 1] and low.sum() == 8
    assert _drop_more(everything, saliency, 5, 'random', gen).sum() == 5
    # Iterative dropping only ever removes points that are still kept.
    again = _drop_more(top, saliency, 2, 'most_salient', gen)
    assert again.sum() == 6 and not again[0, 0] and not again[0, 7]
    assert not again[0, 4] and not again[0, 9]  # the next two most salient


def test_faithfulness_report_structure(small_sets, tmp_path):
    _, train_set, val_set = small_sets
    out = tmp_path / 'model.pt'
    train(train_set, val_set, out, epochs=1, num_points=64, normalization='center',
          batch_size=16, lr=2e-3, seed=0, device=torch.device('cpu'), arch=TINY_ARCH,
          progress=False)
    result = faithfulness(load_checkpoint(out), val_set, 'gradcam', progress=False)
    assert result['objects'] == len(val_set)
    for order in ('most_salient', 'random', 'least_salient'):
        curve = result['curves'][order]
        assert len(curve['accuracy']) == 10
        assert all(0 <= a <= 1 for a in curve['accuracy'])
        assert 0 <= curve['auc_accuracy'] <= 1
    # Steps of 5 % of 64 points: the first step (k = 5 %) still follows the full-object
    # saliency, as one shot does (up to ties between equally salient duplicated points, which
    # the two paths break differently: ~0.4 % of target probability on simulated objects);
    # the random baseline never depends on the method or step.
    coarse = faithfulness(load_checkpoint(out), val_set, 'gradcam', progress=False, step=0.05)
    one_shot = faithfulness(load_checkpoint(out), val_set, 'gradcam', progress=False,
                            iterative=False)
    for order in ('most_salient', 'least_salient'):
        assert (coarse['curves'][order]['target_probability'][0]
                == pytest.approx(one_shot['curves'][order]['target_probability'][0], abs=0.01))
    assert coarse['curves']['random'] == one_shot['curves']['random'] == result['curves']['random']
    assert result['step'] == 0.005 and one_shot['step'] is None
    with pytest.raises(ValueError, match='step must be in'):
        faithfulness(load_checkpoint(out), val_set, 'gradcam', progress=False, step=0.0)


def test_eval_command_line_writes_json_and_png(small_sets, tmp_path, tiny_model):
    folder, _, _ = small_sets
    exe = str(Path(sys.executable).parent / 'pointcam_eval')
    result = subprocess.run([exe, '--data', str(folder / 'val.npz'), '--model', tiny_model,
                             '--methods', 'gradcam', 'occlusion', '--max-objects', '40',
                             '--out', str(tmp_path / 'eval')],  # default device: auto
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / 'eval' / 'eval.json').read_text())
    assert [r['method'] for r in report['faithfulness']] == ['gradcam', 'occlusion']
    assert report['accuracy']['count'] == 40
    png = (tmp_path / 'eval' / 'faithfulness.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000


def test_renderers_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-20, 20, (2000, 3)).astype(np.float32)
    sal = rng.random(2000).astype(np.float32)
    ids = np.where(rng.random(2000) < 0.3, 1, -1)
    render_scan(xyz, sal, ids, [(np.array([1.0, 2.0, 0.0]), 'car 0.91')], tmp_path / 'a.png')
    render_objects([(xyz[:100], sal[:100], 'car 0.91'), (xyz[100:200], sal[100:200], 'x')],
                   tmp_path / 'b.png')
    for name in ('a.png', 'b.png'):
        data = (tmp_path / name).read_bytes()
        assert data[:4] == b'\x89PNG' and len(data) > 5_000


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    true_t = 2.5  # labels drawn from softmax(logits / 2.5): the raw logits are overconfident
    probs = softmax(logits, true_t)
    labels = np.array([rng.choice(7, p=p) for p in probs])
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_t, rel=0.08)
    assert nll(logits, labels, fitted) < nll(logits, labels)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, fitted), labels)
    assert before > 0.1 and after < 0.03
    with pytest.raises(ValueError, match='logits'):
        fit_temperature(np.zeros((0, 7)), np.zeros(0, int))


def test_band_temperatures_recover_a_temperature_per_band_of_points():
    # Small objects over-confident (true T 2.0), large ones under-confident (0.6).
    rng = np.random.default_rng(1)
    counts = np.concatenate([rng.integers(15, 30, 3000), rng.integers(300, 900, 3000),
                             rng.integers(60, 120, 100)])  # a band too small for its own
    true_t = np.where(counts < 60, 2.0, np.where(counts >= 300, 0.6, 1.0))
    logits = rng.normal(0, 3, (len(counts), 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits, true_t)])
    edges, fitted = fit_band_temperatures(logits, labels, counts, min_points=(1, 60, 300),
                                          min_objects=200)
    assert edges == (1, 300)  # the 100 objects of 60-299 points joined the band below
    assert fitted[0] == pytest.approx(2.0, rel=0.1) and fitted[1] == pytest.approx(0.6, rel=0.1)
    applied = band_temperatures(counts, edges, fitted)
    assert nll(logits, labels, applied) < nll(logits, labels, fit_temperature(logits, labels))
    report = calibration_report(logits, labels, counts=counts)
    assert report['temperature_bands']['min_points'] == [1, 300]  # the empty bands joined
    assert report['ece_after'] < 0.03
    with pytest.raises(ValueError, match='point counts'):
        fit_band_temperatures(logits, labels, counts[:10])
    for bad in ({'min_points': (1, 30, 30)}, {'min_points': (0, 30)}, {'min_objects': 0}):
        with pytest.raises(ValueError, match='strictly ascending'):
            fit_band_temperatures(logits, labels, counts, **bad)


def test_ece_of_hand_made_bins_and_the_min_confidence_choice():
    # Two objects at confidence 0.9 (one right), two at 0.6 (both right): ECE = (0.4 + 0.4)/2.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    table = reliability(probs, labels)
    assert sum(row['count'] for row in table) == 4 and len(table) == ECE_BINS
    confidence = np.linspace(0.3, 1.0, 100)
    correct = confidence > 0.5
    threshold = choose_min_confidence(confidence, correct, keep=0.9)
    assert (confidence[correct] >= threshold).mean() >= 0.9
    assert (confidence[correct] >= threshold + 0.02).mean() < 0.9


def test_calibrate_stores_the_temperature_in_the_checkpoint(small_sets, tmp_path):
    _, train_set, val_set = small_sets
    out = tmp_path / 'model.pt'
    train(train_set, val_set, out, epochs=1, num_points=64, normalization='center',
          batch_size=16, lr=2e-3, seed=0, device=torch.device('cpu'), arch=TINY_ARCH,
          progress=False)
    assert load_checkpoint(out).temperature == 1.0
    report = calibrate(out, val_set, torch.device('cpu'))
    loaded = load_checkpoint(out)
    assert loaded.temperature == pytest.approx(report['temperature']) != 1.0
    bands = loaded.temperature_bands  # every band of the small set joined the first
    assert bands is not None and bands.min_points == (1,)
    assert list(bands.temperatures) == pytest.approx(report['temperature_bands']['temperatures'])
    # Temperature scaling minimises the NLL; the ECE of a 1-epoch model on a tiny set may not drop.
    assert report['nll_after'] <= report['nll_before']
    assert loaded.info['calibration']['nll_after'] == pytest.approx(report['nll_after'])
    assert 0 <= loaded.info['calibration']['min_confidence'] <= 1
    assert 'temperature' in format_report({'calibration': report})


def test_train_command_line_checks_every_set_before_training(small_sets, tmp_path, capsys):
    """An older --test set (x, y, z only) is refused up front, not after the epochs."""
    folder, train_set, _ = small_sets
    old = ObjectDataset(points=[p[:, :3] for p in train_set.points[:20]],
                        labels=train_set.labels[:20], distance=train_set.distance[:20],
                        seeds=train_set.seeds[:20], class_names=train_set.class_names)
    save_dataset(old, tmp_path / 'old_test.npz')
    out = tmp_path / 'model.pt'
    with pytest.raises(SystemExit) as stop:
        train_main(['--train', str(folder / 'train.npz'), '--val', str(folder / 'val.npz'),
                    '--test', str(tmp_path / 'old_test.npz'), '--out', str(out),
                    '--epochs', '1'])
    assert stop.value.code == 2
    assert '--test' in capsys.readouterr().err and not out.exists()
    assert not (tmp_path / 'model.pt.state.pt').exists()


# --- the command lines never replace a file unasked, and never an input ------------------

def _hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (links as their target), by relative path."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob('*')) if path.is_file()}


@pytest.fixture
def scratch(tmp_path):
    """Return a folder of small real data sets (tr, va, te .npz) and the inputs below."""
    rng = np.random.default_rng(0)
    from pointcam_ros.sim.simulator import CLASS_NAMES
    for name in ('tr', 'va', 'te'):
        save_dataset(ObjectDataset(
            points=[rng.normal(size=(40, 4)).astype(np.float32) for _ in range(14)],
            labels=np.arange(14) % len(CLASS_NAMES), distance=np.ones(14, np.float32),
            seeds=np.arange(14), class_names=list(CLASS_NAMES)), tmp_path / f'{name}.npz')
    os.symlink(tmp_path / 'tr.npz', tmp_path / 'link.npz')
    os.link(tmp_path / 'tr.npz', tmp_path / 'hard.npz')
    (tmp_path / 'init.pt').write_bytes(b'a model')
    (tmp_path / 'old.state.pt').write_bytes(b'a state')
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'kitti').mkdir()
    (tmp_path / 'frames.txt').write_text('000001\n')
    PipelineConfig().to_yaml(tmp_path / 'params.yaml')
    return tmp_path


def _argv(folder: Path, words: str) -> list[str]:
    """
    Split ``words``; a word with a dot or named ``folder``/``kitti`` is a file in folder.

    A first word that is a ``pointcam_dataset`` subcommand stays as it is.
    """
    return [w if not i and w in DATASET_COMMANDS
            else str(folder / w) if '.' in w or w in ('folder', 'kitti') else w
            for i, w in enumerate(words.split())]


def _refused(run, argv, folder, capsys, *expected):
    """Run a command line that must be refused (exit 2) without touching ``folder``."""
    before = _hashes(folder)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    for text in expected:
        assert text.format(folder) in err, err
    assert _hashes(folder) == before  # nothing replaced, nothing written


TRAIN = '--train tr.npz --val va.npz --epochs 1 '


@pytest.mark.parametrize('existing, words, named', [
    ('m.pt', '', '--out {}/m.pt exists'),
    ('m.pt.state.pt', '', 'the training state (<out>.state.pt) {}/m.pt.state.pt exists'),
    ('m.json', '', 'the report (<out>.json) {}/m.json exists'),  # the .json beside the model
    ('r.json', '--report r.json', '--report {}/r.json exists'),
])
def test_train_replaces_no_existing_output_without_force(scratch, capsys, existing, words,
                                                         named):
    (scratch / existing).write_bytes(b'precious')
    _refused(train_main, _argv(scratch, f'{TRAIN} --out m.pt {words}'), scratch, capsys,
             named, 'pass --force to overwrite it')


@pytest.mark.parametrize('words, named', [
    ('--out m.pt --report tr.npz', '--report {0}/tr.npz is the same file as --train '
     '{0}/tr.npz'),
    ('--out m.pt --report link.npz', '--report {0}/link.npz is the same file as --train'),
    ('--out m.pt --report hard.npz', '--report {0}/hard.npz is the same file as --train'),
    ('--out va.npz', '--out {0}/va.npz is the same file as --val'),
    ('--out m.pt --test te.npz --report te.npz', 'is the same file as --test'),
    ('--out init.pt --init init.pt', '--out {0}/init.pt is the same file as --init'),
    ('--out m.pt --resume old.state.pt --report old.state.pt', 'the same file as --resume'),
    ('--out te.pt --test te.pt.state.pt', 'the training state (<out>.state.pt) '
     '{0}/te.pt.state.pt is the same file as --test'),
])
def test_train_never_writes_over_an_input_even_with_force(scratch, capsys, words, named):
    (scratch / 'te.pt.state.pt').write_bytes(b'a set named like a state')
    _refused(train_main, _argv(scratch, f'{TRAIN} --force {words}'), scratch, capsys, named,
             'an output never replaces an input, not even with --force')


@pytest.mark.parametrize('words, named', [
    ('--out m.json', 'the report (<out>.json) and --out are both {0}/m.json'),
    ('--out m.pt --report m.pt', '--report and --out are both {0}/m.pt'),
    ('--out m.pt --report m.pt.state.pt', '--report and the training state (<out>.state.pt) '
     'are both'),
    ('--out folder', '--out {0}/folder is a directory'),
])
def test_train_outputs_are_distinct_files(scratch, capsys, words, named):
    _refused(train_main, _argv(scratch, f'{TRAIN} --force {words}'), scratch, capsys, named)


def test_resuming_its_own_run_needs_no_force_for_out_and_state(scratch, capsys):
    """--resume <out>.state.pt may rewrite --out and that state; another state may not."""
    (scratch / 'm.pt').write_bytes(b'a model')
    (scratch / 'm.pt.state.pt').write_bytes(b'not a state')
    _refused(train_main, _argv(scratch, f'{TRAIN} --out m.pt --resume old.state.pt'), scratch,
             capsys, '--out {0}/m.pt exists: pass --force', '--resume {0}/m.pt.state.pt to '
             'continue the run that wrote it')
    # Its own state passes the overwrite check and is then refused for its bytes.
    _refused(train_main, _argv(scratch, f'{TRAIN} --out m.pt --resume m.pt.state.pt'),
             scratch, capsys, 'm.pt.state.pt is not a training state written by '
             'pointcam_train')


def test_dataset_simulation_replaces_no_set_without_force(scratch, capsys):
    _refused(dataset_main, _argv(scratch, 'sim --split val --scenes 1 --out va.npz'), scratch,
             capsys, '--out {0}/va.npz exists: pass --force')
    _refused(dataset_main, _argv(scratch, 'sim --split val --scenes 1 --force --out folder'),
             scratch, capsys, '--out {0}/folder is a directory')
    before = _hashes(scratch)
    assert dataset_main(_argv(scratch, 'sim --split val --scenes 1 --force --out va.npz')) == 0
    after = _hashes(scratch)
    assert after.pop('va.npz') != before.pop('va.npz') and after == before


def test_dataset_simulation_takes_a_scene_range_and_a_segmentation(scratch):
    argv = _argv(scratch, 'sim --split val --first-scene 3 --scenes 1 --segmentation voxel '
                 '--out part.npz')
    assert dataset_main(argv) == 0
    written = load_dataset(scratch / 'part.npz')
    expected = build_dataset(range(1_000_003, 1_000_004), progress=False, segmentation='voxel')
    assert set(written.seeds.tolist()) == {1_000_003}
    assert written.labels.tolist() == expected.labels.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(written.points, expected.points))
    ranged = build_dataset(range(1_000_003, 1_000_004), progress=False, segmentation='range')
    assert len(ranged) != len(expected)  # the design decides how the scene is cut
    with pytest.raises(SystemExit):
        dataset_main(_argv(scratch, 'sim --split val --first-scene 999999 --scenes 2 '
                                    '--out far.npz'))


@pytest.mark.parametrize('words, named', [
    ('merge tr.npz va.npz --out va.npz', '--out {0}/va.npz is the same file as input #2 '
     '{0}/va.npz'),
    ('merge tr.npz va.npz --out link.npz', 'is the same file as input #1'),
    ('kitti kitti --frame-list frames.txt --out frames.txt', 'the same file as --frame-list'),
    ('kitti kitti --params params.yaml --out params.yaml', 'the same file as --params'),
    ('kitti kitti --out kitti', '--out {0}/kitti is the same file as ROOT'),
])
def test_dataset_merge_and_kitti_never_write_over_an_input(scratch, capsys, words, named):
    argv = _argv(scratch, f'{words} --force')
    _refused(dataset_main, argv, scratch, capsys, named, 'not even with --force')
    legacy = [f'--{argv[0]}', *argv[1:]]  # the flag form of earlier versions
    _refused(dataset_main, legacy, scratch, capsys, named, 'the flag form is deprecated')


@pytest.mark.parametrize('old, new', [
    ('--split val --scenes 3 --out v.npz', 'sim --split val --scenes 3 --out v.npz'),
    ('--out v.npz --scenes=3 --split val', 'sim --out v.npz --scenes=3 --split val'),
    ('--kitti root --frame-list f.txt --out k.npz', 'kitti root --frame-list f.txt --out k.npz'),
    ('--out k.npz --kitti=root', 'kitti root --out k.npz'),
    ('--merge a.npz b.npz --out m.npz --force', 'merge a.npz b.npz --out m.npz --force'),
    ('--out m.npz --merge a.npz b.npz', 'merge a.npz b.npz --out m.npz'),
])
def test_dataset_flag_forms_of_earlier_versions_become_subcommands(old, new):
    assert modern_argv(old.split()) == new.split()
    assert modern_argv(new.split()) is None and modern_argv(['--help']) is None


def test_dataset_merge_replaces_no_set_without_force(scratch, capsys):
    _refused(dataset_main, _argv(scratch, 'merge tr.npz va.npz --out te.npz'), scratch,
             capsys, '--out {0}/te.npz exists: pass --force')
