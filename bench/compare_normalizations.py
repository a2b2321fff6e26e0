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
Choose the input normalisation by measurement: train briefly with each, compare.

Trains the same small PointNet for --epochs on the first --objects objects of
a training set with every normalisation in pointcam_ros.model.checkpoint.NORMALIZATIONS
and prints the validation accuracy after each epoch. The sensor-view modes
train without the random rotation about the up axis (it would erase the view).

    .venv/bin/python bench/compare_normalizations.py --train train.npz --val val.npz
"""

import argparse
from pathlib import Path
import tempfile

from pointcam_ros.learn.batching import Augmentation
from pointcam_ros.learn.dataset import load_dataset, ObjectDataset
from pointcam_ros.learn.train import train
from pointcam_ros.model.checkpoint import NORMALIZATIONS
from pointcam_ros.model.preprocess import VIEW_NORMALIZATIONS
import torch

SMALL = {'mlp1': (64,), 'mlp2': (128, 256), 'head': (128, 64), 'tnet_conv': (64, 128, 256),
         'tnet_fc': (128, 64), 'dropout': 0.3}


def main():
    """Train once per normalisation and print the validation curves."""
    parser = argparse.ArgumentParser(description='compare input normalisations')
    parser.add_argument('--train', type=Path, required=True)
    parser.add_argument('--val', type=Path, required=True)
    parser.add_argument('--objects', type=int, default=8000)
    parser.add_argument('--epochs', type=int, default=4)
    args = parser.parse_args()
    full = load_dataset(args.train)
    n = min(args.objects, len(full))
    subset = ObjectDataset(full.points[:n], full.labels[:n], full.distance[:n],
                           full.seeds[:n], full.class_names)
    val = load_dataset(args.val)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in NORMALIZATIONS:
            report = train(subset, val, Path(tmp) / f'{mode}.pt', epochs=args.epochs,
                           num_points=256, normalization=mode, batch_size=64, lr=2e-3,
                           seed=0, device=torch.device('cpu'), arch=SMALL, progress=False,
                           augmentation=Augmentation(rotate=mode not in VIEW_NORMALIZATIONS))
            curve = ' '.join(f"{h['val_accuracy']:.3f}" for h in report['history'])
            print(f'{mode:<14} val accuracy per epoch: {curve}', flush=True)


if __name__ == '__main__':
    main()
