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
What ``object`` mode costs a model that reads heights above the ground.

In ``scene`` mode each point's height comes from the segmentation's ground
estimate; in ``object`` mode a cloud is one object with no ground around
it, so heights count from its lowest point. This prints the accuracy of a
model on the labelled clusters of unseen test scenes both ways (and of a
second model, e.g. a ``view_range`` one, which reads no heights).

    .venv/bin/python bench/object_mode_check.py [--model M.pt] [--other previous.pt]
"""

import argparse

from pointcam_ros.learn.dataset import build_dataset, ObjectDataset, SPLIT_SEEDS
from pointcam_ros.learn.metrics import collect_logits
from pointcam_ros.model.checkpoint import load_checkpoint
from pointcam_ros.model.preprocess import heights_above_lowest, with_heights
import torch


def _accuracy(loaded, data: ObjectDataset) -> str:
    """Overall and per-class accuracy of ``loaded`` on ``data``, as one line."""
    predicted = collect_logits(loaded.model, data, loaded.num_points, loaded.normalization,
                               torch.device('cpu')).argmax(axis=1)
    right = predicted == data.labels
    per_class = ' '.join(f'{name} {right[data.labels == k].mean():.3f}'
                         for k, name in enumerate(data.class_names))
    return f'{right.mean():.4f}  ({per_class})'


def main() -> None:
    """Print one line per model and way of measuring heights."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--model', help='checkpoint (default: the shipped model)')
    parser.add_argument('--other', help='a second checkpoint to compare, e.g. a view_range one')
    parser.add_argument('--scenes', type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = SPLIT_SEEDS['test']
    data = build_dataset(range(start, start + args.scenes), progress=False)
    lowest = [with_heights(p[:, :3], heights_above_lowest(p)) for p in data.points]
    as_objects = ObjectDataset(points=lowest, labels=data.labels, distance=data.distance,
                               seeds=data.seeds, class_names=data.class_names)
    loaded = load_checkpoint(args.model, torch.device('cpu'))
    print(f'{len(data)} labelled clusters of {args.scenes} test scenes')
    print(f'{loaded.normalization}, heights from the ground (scene mode): '
          f'{_accuracy(loaded, data)}')
    print(f'{loaded.normalization}, heights from the lowest point (object mode): '
          f'{_accuracy(loaded, as_objects)}')
    if args.other:
        other = load_checkpoint(args.other, torch.device('cpu'))
        print(f'{other.normalization} ({args.other}): {_accuracy(other, data)}')


if __name__ == '__main__':
    main()
