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
What each ``min_confidence`` does on a labelled data set: the README's table.

For the model's calibrated confidences (``softmax(logits / T)``) and each
threshold it prints the share of correct labels kept, the share of wrong
labels shown as "unknown", and of the background clusters that the model
calls a road user (car, truck, pedestrian, cyclist), the share caught.

    .venv/bin/python bench/min_confidence_table.py --data test.npz [--model model.pt]
"""

import argparse
from pathlib import Path

import numpy as np
from pointcam_ros.learn.calibration import softmax
from pointcam_ros.learn.dataset import load_dataset
from pointcam_ros.learn.metrics import collect_logits
from pointcam_ros.model.checkpoint import load_checkpoint
import torch

ROAD_USERS = ('car', 'truck', 'pedestrian', 'cyclist')


def main() -> None:
    """Print one row per threshold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--data', type=Path, required=True, help='data set (.npz)')
    parser.add_argument('--model', default='', help='checkpoint (default: the shipped model)')
    parser.add_argument('--thresholds', type=float, nargs='+',
                        default=[0.45, 0.5, 0.55, 0.6, 0.7])
    args = parser.parse_args()
    device = torch.device('cpu')
    loaded = load_checkpoint(args.model or None, device)
    data = load_dataset(args.data)
    logits = collect_logits(loaded.model, data, loaded.num_points, loaded.normalization, device)
    counts = torch.from_numpy(data.point_counts())
    probs = softmax(logits, loaded.temperatures(counts).double().numpy())
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    correct = predicted == data.labels
    names = np.array(loaded.class_names)
    if 'background' not in loaded.class_names or (~correct).sum() == 0:
        parser.error('needs a model with a background class and some wrong predictions')
    background = data.labels == loaded.class_names.index('background')
    false_alarm = background & np.isin(names[predicted], ROAD_USERS)
    bands = loaded.temperature_bands
    calibration = (f'temperature {loaded.temperature:.3f}' if bands is None else
                   f'temperatures by points {bands.describe()}')
    print(f'{len(data)} objects, accuracy {correct.mean():.4f}, {calibration}; '
          f'{int(false_alarm.sum())} background clusters taken for road users')
    print('min_confidence  correct kept  wrong flagged  background-as-road-user caught')
    for value in args.thresholds:
        kept = confidence >= value
        print(f'{value:>14.2f}  {kept[correct].mean():>12.3f}  {(~kept[~correct]).mean():>13.3f}'
              f'  {(~kept[false_alarm]).mean():>30.3f}')


if __name__ == '__main__':
    main()
