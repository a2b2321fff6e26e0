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
Calibration by band of points: one temperature against the checkpoint's bands.

For each band of :data:`~pointcam_ros.learn.calibration.BAND_MIN_POINTS`
it prints the objects, the accuracy, and the mean confidence and the ECE
under the checkpoint's one temperature and under its temperatures by
points (the same as the one temperature for a checkpoint without bands),
then the same for the whole set.

    .venv/bin/python bench/calibration_bands.py --data test.npz [--model model.pt]
"""

import argparse
from pathlib import Path

import numpy as np
from pointcam_ros.learn.calibration import BAND_MIN_POINTS, expected_calibration_error, softmax
from pointcam_ros.learn.dataset import load_dataset
from pointcam_ros.learn.metrics import collect_logits
from pointcam_ros.model.checkpoint import load_checkpoint
import torch


def main() -> None:
    """Print one row per band of points, then one for the whole set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--data', type=Path, required=True, help='data set (.npz)')
    parser.add_argument('--model', default='', help='checkpoint (default: the shipped model)')
    args = parser.parse_args()
    device = torch.device('cpu')
    loaded = load_checkpoint(args.model or None, device)
    data = load_dataset(args.data)
    logits = collect_logits(loaded.model, data, loaded.num_points, loaded.normalization, device)
    labels = np.asarray(data.labels)
    counts = data.point_counts()
    one = softmax(logits, loaded.temperature)
    banded = softmax(logits, loaded.temperatures(torch.from_numpy(counts)).double().numpy())
    correct = one.argmax(axis=1) == labels  # a temperature does not move the arg-max
    print(f'{len(labels)} objects, accuracy {correct.mean():.4f}; one temperature '
          f'{loaded.temperature:.3f}; by points: '
          f'{loaded.temperature_bands.describe() if loaded.temperature_bands else "none"}')
    print('points      objects  accuracy  confidence (one / by points)  ECE (one / by points)')
    edges = list(BAND_MIN_POINTS) + [None]
    rows = [(f'{low}-{high - 1 if high else ""}', (counts >= low) & (
        counts < (high or np.iinfo(np.int64).max))) for low, high in zip(edges, edges[1:])]
    for name, rows_in in rows + [('all', np.ones(len(labels), bool))]:
        if not rows_in.any():
            continue
        confidence = [probs[rows_in].max(axis=1).mean() for probs in (one, banded)]
        ece = [expected_calibration_error(probs[rows_in], labels[rows_in])
               for probs in (one, banded)]
        print(f'{name:>10}  {rows_in.sum():>7}  {correct[rows_in].mean():>8.3f}  '
              f'{confidence[0]:>13.3f} / {confidence[1]:.3f}  {ece[0]:>14.4f} / {ece[1]:.4f}')


if __name__ == '__main__':
    main()
