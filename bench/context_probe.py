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
Which scene context beside a cluster would help the classifier: a probe.

A cut-out cluster loses its scene. This probe measures what some of it is
worth before any model is changed: it simulates validation and test scenes
(the data-set seeds and sensors), cuts them with the shipped segmentation,
takes the model's logits for each labelled cluster, and measures per cluster
some context the model does not see:

- ``ground``: its lowest and highest point above the local ground level;
- ``sides``: returns just left and right of it (1 m at its range, its height
  band) at about its range, farther or nearer (log counts, min and max of
  the two sides);
- ``behind``: returns above it at its range or farther, and behind it in its
  own wedge;
- ``parent``: the first-pass cluster it was split from (width, points over
  its own, top above its top).

A small classifier (64 hidden units, full-batch Adam) on the logits, the
cluster's log point count and range, plus one group of context, is fitted
on the validation scenes and scored on the test scenes, three seeds each;
the first row, logits only, is the baseline. It re-weights the classes as
well, so compare rows with each other, not with the model's own accuracy.

    .venv/bin/python bench/context_probe.py [--model previous.pt] [--val-scenes 500]
"""

import argparse
from typing import Optional

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.learn.dataset import cluster_label, ObjectDataset, simulate_scan, SPLIT_SEEDS
from pointcam_ros.learn.metrics import collect_logits
from pointcam_ros.model.checkpoint import load_checkpoint
from pointcam_ros.model.preprocess import with_heights
from pointcam_ros.perception.segmentation import (
    cluster_extent, cluster_voxels, region_of_interest, segment_scene)
import torch

#: Context columns of :func:`scene_context`, by group.
GROUPS = {'ground': [0, 1], 'sides': [2, 3, 4, 5, 6, 7], 'behind': [8, 9, 10],
          'parent': [11, 12, 13]}
SAME = 0.75  # m: a return within this of the cluster's range is "at its range"


def _log_counts(delta: np.ndarray) -> list[float]:
    """Log counts of returns at, beyond and before a cluster's range (``delta`` m)."""
    return [float(np.log1p((np.abs(delta) < SAME).sum())), float(np.log1p((delta >= SAME).sum())),
            float(np.log1p((delta <= -SAME).sum()))]


def scene_context(seed: int, config: PipelineConfig) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """Labelled clusters of scene ``seed``: ``(points (n, 4), class id, context (14,))``."""
    xyz, object_id, class_id = simulate_scan(seed)  # the data sets' scan of this seed
    seg = segment_scene(xyz, config)
    above = np.flatnonzero(region_of_interest(xyz, config) & ~seg.ground)
    first, count = cluster_voxels(xyz[above], config.cluster_tolerance,
                                  config.cluster_z_tolerance)
    parent = np.full(len(xyz), -1, np.int64)
    parent[above] = first
    width = cluster_extent(first, count, xyz[above], axes=2)
    parent_points = np.bincount(first, minlength=count)
    parent_top = np.full(count, -np.inf, np.float32)
    np.maximum.at(parent_top, first, xyz[above, 2])
    rest = xyz[above]
    reach = np.hypot(rest[:, 0], rest[:, 1])
    azimuth = np.arctan2(rest[:, 1], rest[:, 0])
    out = []
    for cluster in range(seg.num_objects):
        members = np.flatnonzero(seg.labels == cluster)
        label = cluster_label(members, object_id, class_id)
        if label is None:
            continue  # the data sets skip such clusters too
        points = xyz[members]
        height = seg.height[members]
        ranges = np.hypot(points[:, 0], points[:, 1])
        middle = float(np.median(ranges))
        centre = np.arctan2(points[:, 1].mean(), points[:, 0].mean())
        turn = (azimuth - centre + np.pi) % (2 * np.pi) - np.pi
        own = (np.arctan2(points[:, 1], points[:, 0]) - centre + np.pi) % (2 * np.pi) - np.pi
        left, right = own.min(), own.max()
        low, high = points[:, 2].min(), points[:, 2].max()
        mine = seg.labels[above] == cluster
        margin = 1.0 / max(middle, 1.0)
        band = (rest[:, 2] >= low) & (rest[:, 2] <= high) & ~mine
        sides = np.array([_log_counts(reach[band & (turn >= a) & (turn < b)] - middle)
                          for a, b in ((left - margin, left), (right, right + margin))])
        wedge = (turn >= left) & (turn <= right) & ~mine
        over = wedge & (rest[:, 2] > high) & (rest[:, 2] < high + 3)
        up = reach[over] - middle
        behind = wedge & (rest[:, 2] >= low) & (rest[:, 2] <= high) & (reach > ranges.max() + SAME)
        source = np.bincount(parent[members][parent[members] >= 0]).argmax()
        context = [height.min(), height.max(), *sides.min(axis=0), *sides.max(axis=0),
                   np.log1p((np.abs(up) < SAME).sum()), np.log1p((up >= SAME).sum()),
                   np.log1p(behind.sum()), width[source] / 10,
                   np.log(parent_points[source] / len(members)), parent_top[source] - high]
        out.append((with_heights(points, height), label, np.array(context, np.float32)))
    return out


def collect(seeds: range, loaded, config: PipelineConfig) -> dict[str, np.ndarray]:
    """Logits, labels, context, point counts and ranges of every labelled cluster of ``seeds``."""
    points, labels, context = [], [], []
    for seed in seeds:
        for obj, label, ctx in scene_context(seed, config):
            points.append(obj)
            labels.append(label)
            context.append(ctx)
    labels = np.asarray(labels, np.int64)
    data = ObjectDataset(points=points, labels=labels, distance=np.zeros(len(labels), np.float32),
                         seeds=np.zeros(len(labels), np.int64), class_names=loaded.class_names)
    logits = collect_logits(loaded.model, data, loaded.num_points, loaded.normalization,
                            torch.device('cpu'))
    return {'logits': logits, 'labels': labels, 'context': np.asarray(context),
            'size': np.log([len(p) for p in points]),
            'range': np.array([np.hypot(*p[:, :2].mean(axis=0)) for p in points]) / 30}


def probe(val: dict, test: dict, columns: list[int], seeds: int = 3,
          steps: int = 800) -> tuple[float, np.ndarray]:
    """Test accuracy and per-class accuracy ``(K,)`` of the fusion classifier, mean of seeds."""
    def features(part: dict) -> np.ndarray:
        return np.hstack([part['logits'], part['size'][:, None], part['range'][:, None],
                          part['context'][:, columns]]).astype(np.float32)
    train_x, test_x = features(val), features(test)
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    train_x = torch.from_numpy((train_x - mean) / scale)
    test_x = torch.from_numpy((test_x - mean) / scale)
    target = torch.from_numpy(val['labels'])
    classes = val['logits'].shape[1]
    accuracy, per_class = [], []
    for seed in range(seeds):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(train_x.shape[1], 64), torch.nn.ReLU(),
                                  torch.nn.Linear(64, classes))
        optimizer = torch.optim.Adam(net.parameters(), 1e-2, weight_decay=1e-4)
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(train_x), target).backward()
            optimizer.step()
        with torch.no_grad():
            predicted = net(test_x).argmax(dim=1).numpy()
        accuracy.append((predicted == test['labels']).mean())
        per_class.append([(predicted[test['labels'] == k] == k).mean() for k in range(classes)])
    return float(np.mean(accuracy)), np.mean(per_class, axis=0)


def main(argv: Optional[list[str]] = None) -> None:
    """Print the model's own accuracy, then one row per context group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--model', help='checkpoint (default: the shipped model)')
    parser.add_argument('--val-scenes', type=int, default=500)
    parser.add_argument('--test-scenes', type=int, default=250)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    loaded = load_checkpoint(args.model, torch.device('cpu'))
    config = PipelineConfig()
    val = collect(range(SPLIT_SEEDS['val'], SPLIT_SEEDS['val'] + args.val_scenes), loaded, config)
    test = collect(range(SPLIT_SEEDS['test'], SPLIT_SEEDS['test'] + args.test_scenes), loaded,
                   config)
    own = (test['logits'].argmax(axis=1) == test['labels']).mean()
    print(f'{len(val["labels"])} validation and {len(test["labels"])} test clusters; the '
          f'model alone: test accuracy {own:.4f}')
    print(f'{"inputs":<24} test   ' + ' '.join(f'{n[:6]:>6}' for n in loaded.class_names))
    rows = [('logits only', [])] + [(f'+ {name}', cols) for name, cols in GROUPS.items()]
    rows += [('+ ground + parent', GROUPS['ground'] + GROUPS['parent']),
             ('+ all', sum(GROUPS.values(), []))]
    for name, columns in rows:
        accuracy, per_class = probe(val, test, columns)
        print(f'{name:<24} {accuracy:.4f} ' + ' '.join(f'{a:6.3f}' for a in per_class))


if __name__ == '__main__':
    main()
