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
The demo's label score offline: the same scans, no ROS, no timing, the same every run.

``scripts/demo.sh`` scores the labels the node publishes against the
simulator's ground truth (``pointcam_ros.ros.demo.class_accuracy``: a label
counts for the true object whose centre is nearest, within 1.5 m; "unknown"
is not right). Which scans the live demo scores depends on timing; this
script scans the demo's scenes exactly as ``pointcam_sim`` does (a new scene
every ``--scene-period`` s, seeds from ``--seed``; VLP-16 street by
default), runs ``ScenePipeline`` on every ``--every``-th scan and scores
its labels the same way, against the same ground-truth boxes. Prints
labels right per true class, the share of labels that name a class and are
right, the share of "unknown", and the most common mistakes. The same
objects stay in view scan after scan, so a few of them can hold most of the
misses: ``--by-object N`` lists the N objects with the most, each with the
size of the cluster it was shown with.

    .venv/bin/python bench/demo_labels.py [--every 5] [--seconds 20] [--by-object 10]
        [--set PARAM=VALUE ...]
"""

import argparse
from collections import Counter, defaultdict

import numpy as np
from pointcam_ros.common.geometry import nearest_in_plane
from pointcam_ros.formats.markers import label_text
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.sim.simulator import (CLASS_NAMES, move_objects, random_scene, scan,
                                        SCENE_KINDS, SENSORS)
from settings import add_set_option, config_from_set


def main() -> None:
    """Score the demo's labels offline and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--sensor', default='vlp16', choices=sorted(SENSORS))
    parser.add_argument('--scene', default='street', choices=SCENE_KINDS)
    parser.add_argument('--seed', type=int, default=0, help='seed of the first scene')
    parser.add_argument('--seconds', type=float, default=20.0, help='scan time covered')
    parser.add_argument('--scene-period', type=float, default=10.0)
    parser.add_argument('--every', type=int, default=5, help='score every N-th scan')
    parser.add_argument('--max-distance', type=float, default=1.5)
    parser.add_argument('--by-object', type=int, default=0, metavar='N',
                        help='also list the N true objects with the most wrong labels')
    add_set_option(parser, 'novelty_check=disabled')
    args = parser.parse_args()
    sensor = SENSORS[args.sensor]
    pipeline = ScenePipeline(config_from_set(parser, args, device='cpu'))
    per_scene = max(1, int(round(args.scene_period * sensor.rate_hz)))
    seed, scene = args.seed, random_scene(args.seed, args.scene)
    scores: dict = defaultdict(lambda: [0, 0])  # true class -> [right, matched]
    unknown = named_right = 0
    mistakes: Counter = Counter()
    # (scene seed, object index) -> wrong labels, true class and kind, the last cluster's
    # points / range / height.
    by_object: Counter = Counter()
    seen: dict = {}
    for count in range(int(round(args.seconds * sensor.rate_hz))):
        if count and count % per_scene == 0:  # as pointcam_sim's timer does
            seed += 1
            scene = random_scene(seed, args.scene)
        elif count:
            move_objects(scene, 1.0 / sensor.rate_hz, seed + count)
        if count % args.every:
            continue
        xyz = scan(scene, sensor, seed * 100_003 + count).xyz.reshape(-1, 3)
        if not scene.objects:
            continue
        # The demo's ground truth is each object's box (sim.clouds.ground_truth_markers).
        centers = np.array([obj.box()[0][:2] for obj in scene.objects])
        for detected in pipeline.process(xyz).objects:
            best = nearest_in_plane(centers, detected.center, args.max_distance)
            if best < 0:
                continue
            truth = CLASS_NAMES[scene.objects[best].class_id]
            shown = label_text(detected).split()[0]
            scores[truth][1] += 1
            scores[truth][0] += shown == truth
            unknown += shown == 'unknown'
            named_right += shown == truth
            if shown != truth:
                mistakes[(truth, shown, detected.rule.split(':')[0])] += 1
                key = (seed, best)
                by_object[key] += 1
                seen[key] = (truth, scene.objects[best].kind, shown, detected.num_points,
                             float(np.hypot(*detected.center[:2])), float(detected.size[2]))
    right = sum(v[0] for v in scores.values())
    total = sum(v[1] for v in scores.values())
    print(f'{args.sensor} {args.scene}, seeds {args.seed}-{seed}, one scan in {args.every} of '
          f'{args.seconds:g} s: labels right {right}/{total} = {right / max(total, 1):.3f}')
    for name, (good, matched) in sorted(scores.items()):
        print(f'  {name:12s} {good}/{matched} = {good / matched:.3f}')
    named = total - unknown
    print(f'  labels that name a class: {named_right}/{named} = '
          f'{named_right / max(named, 1):.3f} right; "unknown": {unknown}/{total} = '
          f'{unknown / max(total, 1):.3f}')
    print('most common mistakes (true class, shown, shape rule):')
    for (truth, shown, rule), n in mistakes.most_common(10):
        print(f'  {truth} shown as {shown}{f" [{rule}]" if rule else ""}: {n}')
    if args.by_object > 0:
        wrong = total - right
        top = by_object.most_common(args.by_object)
        print(f'objects with the most wrong labels ({sum(n for _, n in top)} of the {wrong}; '
              'the last wrong label: shown as, cluster points, range, height):')
        for (scene_seed, index), n in top:
            truth, kind, shown, points, distance, height = seen[(scene_seed, index)]
            print(f'  scene {scene_seed} object {index} ({truth}, {kind}): {n} wrong, last '
                  f'{shown}, {points} points, {distance:.1f} m, {height:.2f} m tall')


if __name__ == '__main__':
    main()
