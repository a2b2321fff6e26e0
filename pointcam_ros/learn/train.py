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
Train a classifier on object data sets (``pointcam_train``).

The network is PointNet by default; ``--arch dgcnn`` or ``--arch pointnet2``
(or ``--arch '{"family": "dgcnn", "k": 16}'``) trains another family of
:mod:`pointcam_ros.model.registry`, and the checkpoint records which.

    pointcam_dataset sim --split train --scenes 1500 --out data/train.npz
    pointcam_dataset sim --split val --scenes 200 --out data/val.npz
    pointcam_train --train data/train.npz --val data/val.npz --out model.pt

The data sets come from ``pointcam_dataset`` (:mod:`~pointcam_ros.learn.dataset_cli`).

After training, the best checkpoint is calibrated: a temperature is fitted on
the validation set (:mod:`~pointcam_ros.learn.calibration`) and stored in it.
"""

import argparse
from dataclasses import asdict
import json
import logging
from pathlib import Path
import pickle
import time
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.common.atomic import write_text_atomic
from pointcam_ros.learn.batching import Augmentation, make_batch
from pointcam_ros.learn.calibration import apply_report, calibration_report
from pointcam_ros.learn.dataset import load_dataset, ObjectDataset
from pointcam_ros.learn.dataset_cli import check_outputs, Output, same_file
from pointcam_ros.learn.metrics import collect_logits, evaluate
from pointcam_ros.model.checkpoint import (load_checkpoint, NORMALIZATIONS, save_checkpoint,
                                           TemperatureBands)
from pointcam_ros.model.device import DEVICE_HELP, resolve_device
from pointcam_ros.model.pointnet import orthogonality_loss, PointNetClassifier
from pointcam_ros.model.pointnet import with_input_channels
from pointcam_ros.model.preprocess import normalized_channels, object_columns, VIEW_NORMALIZATIONS
from pointcam_ros.model.registry import build_model, DEFAULT_FAMILY, FAMILIES, family_config
from pointcam_ros.model.registry import family_of
import torch
from tqdm import tqdm

LOG = logging.getLogger('pointcam_train')

#: Architecture of the shipped model: PointNet with narrower layers (< 5 MB).
#: Share of the correct validation predictions min_confidence is chosen to keep.
KEEP_CORRECT = 0.98
#: Which epoch's weights ``train`` writes: the best on validation, or the last.
SELECT = ('best', 'last')
DEFAULT_ARCH = {'mlp1': (64,), 'mlp2': (128, 512), 'head': (256, 128),
                'tnet_conv': (64, 128, 256), 'tnet_fc': (128, 64), 'dropout': 0.3}


def train(train_set: ObjectDataset, val_set: ObjectDataset, out: Path, *, epochs: int,
          num_points: int, normalization: str, batch_size: int, lr: float, seed: int,
          device: torch.device, resume: Optional[Path] = None, arch: Optional[dict] = None,
          augmentation: Augmentation = Augmentation(), progress: bool = True,
          init: Optional[Path] = None, select: str = 'best') -> dict:
    """
    Train, write the selected checkpoint at ``out``, return the report dict.

    ``select``: ``'best'`` keeps the epoch of the highest validation
    accuracy; ``'last'`` the final weights, after the cosine schedule has
    annealed the learning rate (the better choice when validation accuracy
    moves by its own noise from epoch to epoch). A training state (model,
    optimiser, epoch, history) is written next to ``out`` as
    ``<out>.state.pt`` after every epoch; ``resume`` continues it (a
    finished state with ``select='last'`` just writes its final weights).
    ``init``: a checkpoint whose weights start the training (fine-tuning);
    its architecture and class names are used, ``arch`` is ignored; if
    ``normalization`` makes more input channels than it takes (``view_range``
    from a 3-channel model), the added channels start with zero weights
    (PointNet only). ``arch``: the architecture's sizes, with an optional
    ``'family'`` key (:data:`~pointcam_ros.model.registry.FAMILIES`, default
    PointNet with :data:`DEFAULT_ARCH`).
    """
    if select not in SELECT:
        raise ValueError(f'select must be one of {SELECT}, got {select!r}')
    if augmentation.rotate and normalization in VIEW_NORMALIZATIONS:
        raise ValueError(f'normalization {normalization!r} keeps the direction the sensor '
                         'looks from; a random rotation would erase it: train without '
                         'rotation (Augmentation(rotate=False), --no-rotate)')
    channels = normalized_channels(normalization)
    for name, data in (('training', train_set), ('validation', val_set)):
        if len(data):
            try:
                object_columns(data.points[0], normalization)
            except ValueError as exc:
                raise ValueError(f'{name} set: {exc}') from None
    state = None if resume is None else _read_state(resume, device)  # before any work
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if init is not None:
        start = load_checkpoint(init, device)
        if start.class_names != list(train_set.class_names):
            raise ValueError(f'{init} has classes {start.class_names}, the data set '
                             f'{list(train_set.class_names)}: fine-tune on the same classes')
        model = start.model
        if model.config.in_channels > channels:
            raise ValueError(f'{init} takes {model.config.in_channels} input channels, '
                             f'normalization {normalization!r} makes {channels}: fine-tune '
                             "with the checkpoint's own normalization")
        LOG.info('fine-tuning %s (normalization %s) with normalization %s', init,
                 start.normalization, normalization)
        if model.config.in_channels < channels and not isinstance(model, PointNetClassifier):
            raise ValueError(f'{init} is a {family_of(model)} model taking '
                             f'{model.config.in_channels} input channels; widening the input '
                             'is for PointNet only: fine-tune with its own normalization')
        if model.config.in_channels < channels:  # e.g. center -> view_range: zero weights
            LOG.info('%s: input widened from %d to %d channels', init,
                     model.config.in_channels, channels)
            model = with_input_channels(model, channels)
        config = model.config
    else:
        sizes = dict(arch or DEFAULT_ARCH)
        family = sizes.pop('family', DEFAULT_FAMILY)
        model = build_model(family, len(train_set.class_names), channels, **sizes).to(device)
        config = model.config
    family = family_of(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    state_path = out.with_name(out.name + '.state.pt')
    start_epoch, history, best = 0, [], -1.0
    if state is not None:
        inputs = json.loads(state.get('inputs', 'null'))
        wanted = {'normalization': normalization, 'num_points': num_points}
        if inputs is not None and inputs != wanted:
            raise ValueError(f'{resume} was trained with --normalization '
                             f"{inputs['normalization']} --num-points {inputs['num_points']}: "
                             'resume with the same')
        saved = json.loads(state.get('architecture', 'null'))
        if state.get('family', DEFAULT_FAMILY) != family:
            raise ValueError(f"{resume} trained a {state.get('family', DEFAULT_FAMILY)} model, "
                             f'not {family}: resume with the same --arch')
        if saved is not None and saved != config.to_dict():
            raise ValueError(f'{resume} was trained with architecture {saved}, not '
                             f'{config.to_dict()}: resume with the same --arch')
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        start_epoch, best = int(state['epoch']), float(state['best'])
        history = json.loads(state['history'])
        rng = np.random.default_rng(seed + start_epoch)
        LOG.info('resumed from %s at epoch %d', resume, start_epoch)

    def save(entry: dict) -> None:
        save_checkpoint(out, model, train_set.class_names, num_points, normalization,
                        info={'val_accuracy': entry['val_accuracy'], 'epoch': entry['epoch'],
                              'selected': select, 'train_objects': len(train_set),
                              'seed': seed, 'augmentation': asdict(augmentation),
                              'init': '' if init is None else Path(init).name})

    # Balance classes: sample each epoch with weights 1 / class frequency.
    counts = np.bincount(train_set.labels, minlength=len(train_set.class_names))
    weights = 1.0 / np.maximum(counts[train_set.labels], 1)
    weights /= weights.sum()
    for epoch in range(start_epoch, epochs):
        model.train()
        started = time.perf_counter()
        order = rng.choice(len(train_set), size=len(train_set), p=weights)
        losses = []
        steps = range(0, len(order) - batch_size + 1, batch_size)
        for start in tqdm(steps, desc=f'epoch {epoch + 1}/{epochs}', unit='batch',
                          disable=not progress, leave=False):
            idx = order[start:start + batch_size]
            batch = make_batch([train_set.points[i] for i in idx], num_points, normalization,
                               rng, augment=augmentation).to(device)
            target = torch.from_numpy(train_set.labels[idx]).to(device)
            if isinstance(model, PointNetClassifier):
                output = model.run(batch)
                logits, transform = output.logits, output.feature_transform
            else:
                logits, transform = model(batch), None
            loss = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.05)
            if transform is not None:
                loss = loss + 1e-3 * orthogonality_loss(transform)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        val = evaluate(model, val_set, num_points, normalization, device)
        entry = {'epoch': epoch + 1, 'loss': float(np.mean(losses)),
                 'val_accuracy': val['accuracy'], 'seconds': time.perf_counter() - started}
        history.append(entry)
        LOG.info('epoch %d: loss %.4f val acc %.4f (%.1f s)', epoch + 1, entry['loss'],
                 val['accuracy'], entry['seconds'])
        if val['accuracy'] > best:
            best = val['accuracy']
            if select == 'best':
                save(entry)
        torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                    'scheduler': scheduler.state_dict(), 'epoch': epoch + 1, 'best': best,
                    'history': json.dumps(history),
                    'architecture': json.dumps(config.to_dict()), 'family': family,
                    'inputs': json.dumps({'normalization': normalization,
                                          'num_points': num_points})}, state_path)
    if select == 'last' and history:
        save(history[-1])
    return {'history': history, 'best_val_accuracy': best, 'selected': select,
            'normalization': normalization,
            'num_points': num_points, 'family': family, 'architecture': config.to_dict(),
            'augmentation': asdict(augmentation),
            'train_objects': len(train_set), 'val_objects': len(val_set)}


def _read_state(path: Path, device: torch.device) -> dict:
    """Read a training state of :func:`train`; ValueError saying what to do if it is not one."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f'{path} is not a training state written by pointcam_train '
                         f'(unreadable: {type(exc).__name__}; truncated, or another kind of '
                         'file?): resume from the <out>.state.pt of an earlier run') from exc
    if not isinstance(state, dict) or 'model' not in state or 'history' not in state:
        raise ValueError(f'{path} is not a training state written by pointcam_train (no '
                         "'model' and 'history'): resume from the <out>.state.pt of an "
                         'earlier run')
    return state


def calibrate(checkpoint: Path, val_set: ObjectDataset, device: torch.device) -> dict:
    """
    Fit the temperatures of ``checkpoint`` on ``val_set``, store them there, return the figures.

    One temperature per band of point counts
    (:func:`~pointcam_ros.learn.calibration.fit_band_temperatures`), and one
    for all, which readers of older versions use. The checkpoint is
    rewritten atomically with ``temperature`` and ``temperature_bands`` set
    and a summary under ``info['calibration']`` (see
    :func:`~pointcam_ros.learn.calibration.calibration_report` for the figures).
    """
    loaded = load_checkpoint(checkpoint, device)
    logits = collect_logits(loaded.model, val_set, loaded.num_points, loaded.normalization,
                            device)
    counts = val_set.point_counts()
    report = calibration_report(logits, val_set.labels, keeps=(0.97, KEEP_CORRECT),
                                counts=counts)
    summary = {key: report[key] for key in ('temperature', 'temperature_bands', 'ece_before',
                                            'ece_after', 'nll_before', 'nll_after', 'count')}
    summary['min_confidence'] = report['min_confidence'][f'{KEEP_CORRECT:.2f}'][
        'min_confidence']
    bands = TemperatureBands.from_dict(report['temperature_bands'])
    save_checkpoint(checkpoint, loaded.model, loaded.class_names, loaded.num_points,
                    loaded.normalization, info={**loaded.info, 'calibration': summary},
                    temperature=report['temperature'], temperature_bands=bands,
                    novelty=loaded.novelty)  # temperatures move neither features nor classes
    LOG.info('calibrated on %d val objects: T %.3f, by points %s, ECE %.4f -> %.4f',
             report['count'], report['temperature'], bands.describe(), report['ece_before'],
             report['ece_after'])
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``pointcam_train``: train a classifier and write a checkpoint plus a JSON report."""
    parser = argparse.ArgumentParser(description='Train a point-cloud classifier (PointNet, '
                                     'DGCNN or PointNet++).')
    parser.add_argument('--train', type=Path, required=True, help='training set (.npz)')
    parser.add_argument('--val', type=Path, required=True, help='validation set (.npz)')
    parser.add_argument('--test', type=Path, help='optional held-out test set (.npz)')
    parser.add_argument('--out', type=Path, required=True, help='checkpoint to write (.pt)')
    parser.add_argument('--report', type=Path, help='JSON report (default: <out>.json)')
    parser.add_argument('--epochs', type=int, default=40)
    parser.add_argument('--num-points', type=int, default=256)
    parser.add_argument('--normalization', choices=NORMALIZATIONS, default='view_ground',
                        help='object input frame (default: %(default)s, the view from '
                        "the sensor plus the range and each point's height above the "
                        'ground; needs scans in the sensor frame and data sets with heights)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='auto', help=DEVICE_HELP)
    parser.add_argument('--resume', type=Path, help='<out>.state.pt of an earlier run')
    parser.add_argument('--init', type=Path, help='checkpoint to start from (fine-tune), '
                        'e.g. the shipped model; its architecture is kept (channels that '
                        'the normalization adds, such as the height of view_ground for a '
                        'view_range model, start with zero weights)')
    defaults = Augmentation()
    parser.add_argument('--point-dropout', type=float, default=defaults.point_dropout,
                        help='largest share of the points of an object dropped at random '
                        '(default: %(default)s)')
    parser.add_argument('--scale', type=float, nargs=2, default=defaults.scale,
                        metavar=('LOW', 'HIGH'), help='random scaling range '
                        '(default: %(default)s)')
    parser.add_argument('--jitter', type=float, default=defaults.jitter,
                        help='Gaussian jitter sigma in metres (default: %(default)s)')
    parser.add_argument('--mirror', action='store_true',
                        help='mirror half of the objects (y -> -y), in the sensor-view '
                        'frame about the line of sight')
    parser.add_argument('--no-rotate', action='store_true',
                        help='no random rotation about the up axis (always off for '
                        f'{", ".join(VIEW_NORMALIZATIONS)})')
    parser.add_argument('--arch', metavar='FAMILY|JSON', default='{}',
                        help=f'model family ({", ".join(FAMILIES)}; default pointnet) or '
                        'architecture fields to change from its defaults, with an optional '
                        '"family" key; PointNet\'s default is '
                        f'{json.dumps(DEFAULT_ARCH)}, e.g. \'{{"mlp2": [128, 1024]}}\', '
                        '\'dgcnn\' or \'{"family": "pointnet2", "radii": [0.4, 0.8]}\' '
                        '(ignored with --init; give the same --arch with --resume)')
    parser.add_argument('--select', choices=SELECT, default='best',
                        help='checkpoint to write: the epoch with the best validation '
                        'accuracy, or the last one (default: %(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='overwrite existing output files (--out, <out>.state.pt, the '
                        'report); an output is never one of the input files, even with it')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    own_state = args.out.with_name(args.out.name + '.state.pt')
    resuming_own = args.resume is not None and same_file(args.resume, own_state)
    report_path = args.report or args.out.with_suffix('.json')
    resume = f'or --resume {own_state} to continue the run that wrote it'
    outputs = [Output('--out', args.out, '--out', resume),
               Output('the training state (<out>.state.pt)', own_state, '--out', resume),
               Output('--report' if args.report else 'the report (<out>.json)', report_path,
                      '--report')]
    inputs = {'--train': args.train, '--val': args.val, '--test': args.test,
              '--init': args.init, '--resume': None if resuming_own else args.resume}
    # Checked before any data set is read: --resume continues only the run that wrote --out
    # (it may rewrite that run's --out and state, not an existing report, without --force).
    problem = check_outputs(outputs, inputs, args.force,
                            exempt=(args.out, own_state) if resuming_own else ())
    if problem:
        parser.error(problem)
    try:
        view = args.normalization in VIEW_NORMALIZATIONS
        augmentation = Augmentation(point_dropout=args.point_dropout,
                                    rotate=not (args.no_rotate or view), scale=tuple(args.scale),
                                    jitter=args.jitter, mirror=args.mirror)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        arch = parse_arch(args.arch)
    except (TypeError, ValueError) as exc:
        parser.error(f'--arch {args.arch}: {exc}')
    device = resolve_device(args.device)
    sets = {}
    for name, path in (('--train', args.train), ('--val', args.val), ('--test', args.test)):
        if path is None:
            continue
        try:  # every set is read and checked before the first epoch
            sets[name] = load_dataset(path)
            if len(sets[name]):
                object_columns(sets[name].points[0], args.normalization)
        except ValueError as exc:
            parser.error(f'{name} {path}: {exc}')
    train_set, val_set, test_set = sets['--train'], sets['--val'], sets.get('--test')
    try:
        report = train(train_set, val_set, args.out, epochs=args.epochs,
                       num_points=args.num_points, normalization=args.normalization,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=device,
                       resume=args.resume, augmentation=augmentation, init=args.init,
                       arch=arch, select=args.select)
    except ValueError as exc:  # refused before training: --init, --resume, the data sets
        parser.error(str(exc))
    report['calibration'] = calibrate(args.out, val_set, device)
    best = load_checkpoint(args.out, device)
    report['val'] = evaluate(best.model, val_set, best.num_points, best.normalization, device)
    if test_set is not None:
        report['test'] = evaluate(best.model, test_set, best.num_points, best.normalization,
                                  device)
        logits = collect_logits(best.model, test_set, best.num_points, best.normalization,
                                device)
        counts = torch.from_numpy(test_set.point_counts())
        report['test_calibration'] = apply_report(
            logits, test_set.labels, best.temperatures(counts).double().numpy(),
            report['calibration']['min_confidence'][f'{KEEP_CORRECT:.2f}']['min_confidence'])
    write_text_atomic(report_path, json.dumps(report, indent=2))
    print(format_report(report))
    return 0


def parse_arch(value: str) -> dict:
    """
    Turn ``--arch`` (a family name, or a JSON object of sizes) into ``train``'s ``arch``.

    Returns the sizes with their ``'family'``; PointNet starts from
    :data:`DEFAULT_ARCH`, the other families from their configs' defaults.
    Raises ValueError for unknown families or fields and bad values.
    """
    if value.strip() in FAMILIES:
        changes: object = {'family': value.strip()}
    else:
        changes = json.loads(value)
    if not isinstance(changes, dict):
        raise ValueError(f'--arch must be a family ({", ".join(FAMILIES)}) or a JSON object')
    changes = dict(changes)
    family = changes.pop('family', DEFAULT_FAMILY)
    fixed = sorted({'num_classes', 'in_channels'} & set(changes))
    if fixed:
        raise ValueError(f'{fixed} follow from the data set, not from --arch')
    arch = {**(DEFAULT_ARCH if family == DEFAULT_FAMILY else {}), **changes}
    family_config(family, num_classes=1, in_channels=3, **arch)  # reject bad fields now
    return {'family': family, **arch}


def format_report(report: dict) -> str:
    """Human-readable accuracy summary with confusion matrices."""
    lines = []
    for split in ('val', 'test'):
        if split not in report:
            continue
        result = report[split]
        lines.append(f"{split}: accuracy {result['accuracy']:.4f} on {result['count']} objects")
        names = result['class_names']
        lines.append('  true \\ predicted ' + ' '.join(f'{n[:6]:>6}' for n in names) +
                     '   acc')
        for name, row in zip(names, result['confusion']):
            acc = result['per_class'][name]['accuracy']
            lines.append(f'  {name:>16} ' + ' '.join(f'{v:>6}' for v in row) + f'  {acc:.3f}')
        if 'by_points' in result:
            lines.append('  by points: ' + ', '.join(
                f"{band['points'][0]}-{band['points'][1] or ''}: {band['accuracy']:.3f} "
                f"({band['count']})" for band in result['by_points']))
    if 'calibration' in report:
        cal = report['calibration']
        by_points = ''
        if cal.get('temperature_bands'):
            bands = TemperatureBands.from_dict(cal['temperature_bands']).describe()
            by_points = f' (by points {bands}, which the ECE, NLL and min_confidence below use)'
        lines.append(f"calibration (val, {cal['count']} objects): temperature "
                     f"{cal['temperature']:.3f}{by_points}, ECE {cal['ece_before']:.4f} -> "
                     f"{cal['ece_after']:.4f}, NLL {cal['nll_before']:.4f} -> "
                     f"{cal['nll_after']:.4f}")
        for keep, row in cal['min_confidence'].items():
            lines.append(f"  min_confidence {row['min_confidence']:.2f} keeps {keep} of the "
                         f"correct, flags {row['wrong_flagged']:.3f} of the wrong")
    if 'test_calibration' in report:
        cal = report['test_calibration']
        lines.append(f"calibration (test, {cal['count']} objects): ECE {cal['ece_before']:.4f}"
                     f" -> {cal['ece_after']:.4f}; min_confidence keeps "
                     f"{cal['correct_kept']:.3f} of the correct, flags "
                     f"{cal['wrong_flagged']:.3f} of the wrong")
    return '\n'.join(lines)
