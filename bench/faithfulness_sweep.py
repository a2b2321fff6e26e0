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
Train model variants; print test accuracy and Grad-CAM faithfulness of each.

Which training choices give a PointNet whose Grad-CAM passes the
point-dropping bar (top-20 % drop costs >= 40 accuracy points) while keeping
its accuracy? Every variant trains with ``pointcam_ros.learn.train.train`` in its
own process (several share one GPU) and is scored like ``pointcam_eval``.

    # pack the data sets small enough to carry to a GPU machine
    python bench/faithfulness_sweep.py pack out/default_model .gpu_data --cap 384
    python bench/faithfulness_sweep.py run .gpu_data --device cuda --epochs 18

The packed format keeps at most ``cap`` points per object (a fixed random
subset; the model samples 256) as float16 offsets from the object's float32
centroid (< 8 mm error for objects up to 16 m), so it is for experiments
only, not a replacement of the data set format.
"""

import argparse
from dataclasses import asdict
import json
from pathlib import Path
import time

import numpy as np
from pointcam_ros.learn.batching import Augmentation
from pointcam_ros.learn.dataset import load_dataset, ObjectDataset
from pointcam_ros.learn.evaluate import faithfulness
from pointcam_ros.learn.metrics import evaluate
from pointcam_ros.learn.train import DEFAULT_ARCH, train
from pointcam_ros.model.checkpoint import load_checkpoint
import torch

#: name -> overrides of the shipped model's recipe.
VARIANTS = {
    'default': {},
    'no_point_dropout': {'augmentation': Augmentation(point_dropout=0.0)},
    'rotation_only': {'augmentation': Augmentation(point_dropout=0.0, scale=(1.0, 1.0),
                                                   jitter=0.0)},
    'no_head_dropout': {'augmentation': Augmentation(point_dropout=0.0),
                        'arch': {**DEFAULT_ARCH, 'dropout': 0.0}},
    'wide_1024': {'augmentation': Augmentation(point_dropout=0.0),
                  'arch': {**DEFAULT_ARCH, 'mlp2': (128, 1024)}},
    'points_1024': {'num_points': 1024},
    'points_128': {'num_points': 128},
    'unit_sphere': {'normalization': 'unit_sphere'},
    'no_input_tnet': {'arch': {**DEFAULT_ARCH, 'input_transform': False}},
    'feature_tnet': {'arch': {**DEFAULT_ARCH, 'feature_transform': True}},
    'narrow_256': {'arch': {**DEFAULT_ARCH, 'mlp2': (128, 256)}},
}
SPLITS = ('train', 'val', 'test')


def pack(source: Path, target: Path, cap: int, seed: int = 0) -> None:
    """Write ``source/{train,val,test}.npz`` in the compact format to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split in SPLITS:
        data = load_dataset(source / f'{split}.npz')
        kept = [p if len(p) <= cap else p[np.sort(rng.choice(len(p), cap, replace=False))]
                for p in data.points]
        centroid = np.array([p.mean(axis=0) for p in kept], np.float32)
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in kept])]).astype(np.int64)
        points = np.concatenate([p - c for p, c in zip(kept, centroid)]).astype(np.float16)
        np.savez(target / f'{split}.npz', points16=points, centroid=centroid, offsets=offsets,
                 labels=data.labels, distance=data.distance, seeds=data.seeds,
                 class_names=np.asarray(data.class_names))


def unpack(path: Path) -> ObjectDataset:
    """Read one compact file back as an :class:`ObjectDataset` of float32 points."""
    with np.load(path) as data:
        points, centroid, offsets = data['points16'], data['centroid'], data['offsets']
        return ObjectDataset(
            points=[points[offsets[i]:offsets[i + 1]].astype(np.float32) + centroid[i]
                    for i in range(len(centroid))],
            labels=data['labels'], distance=data['distance'], seeds=data['seeds'],
            class_names=[str(c) for c in data['class_names']])


def _head(data: ObjectDataset, count: int) -> ObjectDataset:
    """Return the first ``count`` objects of ``data``."""
    return ObjectDataset(points=data.points[:count], labels=data.labels[:count],
                         distance=data.distance[:count], seeds=data.seeds[:count],
                         class_names=data.class_names)


def run_variant(job: tuple) -> dict:
    """Train one variant and score it; returns a JSON-ready summary."""
    name, folder, out, epochs, device, max_eval, max_train, threads = job
    torch.set_num_threads(threads)
    overrides = VARIANTS[name]
    sets = {split: unpack(Path(folder) / f'{split}.npz') for split in SPLITS}
    if max_train is not None:
        sets['train'] = _head(sets['train'], max_train)
    checkpoint = Path(out) / f'{name}.pt'
    started = time.perf_counter()
    report = train(sets['train'], sets['val'], checkpoint, epochs=epochs,
                   num_points=overrides.get('num_points', 256),
                   normalization=overrides.get('normalization', 'center'), batch_size=64,
                   lr=2e-3, seed=0, device=torch.device(device),
                   arch=overrides.get('arch'),
                   augmentation=overrides.get('augmentation', Augmentation()), progress=False)
    train_seconds = time.perf_counter() - started
    loaded = load_checkpoint(checkpoint, device)
    test = evaluate(loaded.model, sets['test'], loaded.num_points, loaded.normalization,
                    torch.device(device))
    faith = {}
    for method in ('gradcam', 'xgradcam'):
        result = faithfulness(loaded, _head(sets['test'], max_eval), method, progress=False)
        i = result['drop_fractions'].index(0.2)
        curves = result['curves']
        faith[method] = {order: curves[order]['accuracy'][i] for order in curves}
        faith[method]['no_drop'] = result['accuracy_no_drop']
    return {'variant': name, 'epochs': epochs, 'train_seconds': round(train_seconds, 1),
            'best_val_accuracy': report['best_val_accuracy'], 'test_accuracy': test['accuracy'],
            'worst_class': min(v['accuracy'] for v in test['per_class'].values()),
            'faithfulness_at_20': faith, 'augmentation': report['augmentation'],
            'overrides': {k: (asdict(v) if isinstance(v, Augmentation) else v)
                          for k, v in overrides.items()}}


def main() -> None:
    """Parse the command line; pack data sets or run the sweep."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('pack', help='compact copies of train/val/test.npz')
    p.add_argument('source', type=Path)
    p.add_argument('target', type=Path)
    p.add_argument('--cap', type=int, default=384)
    r = sub.add_parser('run', help='train and score the variants')
    r.add_argument('folder', type=Path, help='folder of packed train/val/test.npz')
    r.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    r.add_argument('--epochs', type=int, default=18)
    r.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    r.add_argument('--jobs', type=int, default=1, help='variants trained at once')
    r.add_argument('--threads', type=int, default=2, help='torch CPU threads per job')
    r.add_argument('--max-eval', type=int, default=1000, help='test objects for faithfulness')
    r.add_argument('--max-train', type=int, help='train on the first objects only (smoke test)')
    r.add_argument('--out', type=Path, default=Path('out/sweep'))
    args = parser.parse_args()
    if args.command == 'pack':
        pack(args.source, args.target, args.cap)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, str(args.folder), str(args.out), args.epochs, args.device, args.max_eval,
             args.max_train, args.threads) for name in args.variants]
    print(f"{'variant':<18} {'val':>6} {'test':>6} {'worst':>6}  "
          f"{'gradcam top/rand/least @20%':>28}  {'xgradcam top':>12} {'train s':>8}",
          flush=True)
    context = torch.multiprocessing.get_context('spawn')
    with context.Pool(args.jobs) as pool, open(args.out / 'sweep.jsonl', 'a') as log:
        for result in pool.imap_unordered(run_variant, jobs):
            log.write(json.dumps(result) + '\n')
            log.flush()
            at20 = result['faithfulness_at_20']
            g, x = at20['gradcam'], at20['xgradcam']
            print(f"{result['variant']:<18} {result['best_val_accuracy']:>6.3f} "
                  f"{result['test_accuracy']:>6.3f} {result['worst_class']:>6.3f}  "
                  f"{g['no_drop']:.3f}->{g['most_salient']:.3f}/{g['random']:.3f}/"
                  f"{g['least_salient']:.3f}   {x['most_salient']:>12.3f} "
                  f"{result['train_seconds']:>8.0f}", flush=True)


if __name__ == '__main__':
    main()
