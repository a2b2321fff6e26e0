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
Scene pipeline quality against the simulator's ground truth.

For simulated test scenes (unseen seeds, all sensor presets): the share of
objects within 40 m with >= 30 points that come out as one cluster with point
IoU >= 0.7, and the end-to-end class accuracy on those matched objects;
then how often each shape rule (``DetectedObject.rule``) fired, on matched
objects by their true class and on all reported objects.

The road-user line is issue #23's measure: road users (car, truck,
pedestrian, cyclist) within 40 m with >= 30 points that are found as one
cluster *and shown with their class* (not "unknown"), over all of them; and
false alarms: reported clusters whose points are mostly not a road user's
(background, poles, trees, ground) shown as a road user, over all such
clusters. The road users' figure counts all of an object's returns, so it
also falls when ``ground_threshold`` rises and the lowest returns turn to
ground; a second line counts as ``bench/real_check.py`` does, over the
returns above the ground cut (at least 30 of them; the match still needs
IoU >= 0.7 and 40 m at most, where the real check takes 0.5 at any range).
It also prints the first two figures by sensor (the scenes take the presets
in turn), and why each missed road user was missed: in no object; its
largest cluster its own but under IoU 0.7, the rest mostly cut as ground or
else split off; merged with something else; split and merged; or one
cluster shown as unknown or with a wrong class. Last, the road-user labels
by the size of the cluster they are shown on (``bench/label_bands.py``): on
clusters mostly of road users, right (the class of most of its points) or
the wrong class; on the others, false alarms; every reported cluster counts,
at any range and size.

    .venv/bin/python bench/pipeline_quality.py --scenes 60
    .venv/bin/python bench/pipeline_quality.py --scenes 20 --kind street campus
    .venv/bin/python bench/pipeline_quality.py --scenes 30 --kind street \
        --set cluster_tolerance=0.3
"""

import argparse

from label_bands import bands_line, empty_bands, size_band
import numpy as np
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.segmentation import region_of_interest, segment_scene
from pointcam_ros.sim.simulator import CLASS_NAMES, random_scene, scan, SCENE_KINDS, SENSORS
from settings import add_set_option, config_from_set

ROAD_USERS = ('car', 'truck', 'pedestrian', 'cyclist')
ROAD_USER_IDS = [CLASS_NAMES.index(name) for name in ROAD_USERS]


def main():
    """Run the pipeline on simulated scenes and print match rate and accuracy."""
    parser = argparse.ArgumentParser(description='pipeline quality on simulated scenes')
    parser.add_argument('--scenes', type=int, default=60)
    parser.add_argument('--first-seed', type=int, default=4_000_000)
    parser.add_argument('--kind', choices=SCENE_KINDS, nargs='+', default=['open'],
                        help='scene kinds; --scenes scenes of each')
    add_set_option(parser, 'cluster_tolerance=0.3')
    args = parser.parse_args()
    config = config_from_set(parser, args, device='cpu')
    pipeline = ScenePipeline(config)
    sensors = list(SENSORS)
    eligible = matched = correct = 0
    per_class = {name: [0, 0] for name in CLASS_NAMES}
    found = {name: [0, 0] for name in CLASS_NAMES}  # matched, eligible
    rules_matched = {}  # (rule kind, true class) -> count
    rules_all = {}  # rule kind -> count over every reported object
    reported = 0
    shown_right = {name: [0, 0] for name in ROAD_USERS}  # found, shown right; eligible
    not_road_users = false_alarms = 0
    # sensor -> [road users shown right, eligible road users, false alarms, not road users]
    by_sensor = {name: [0, 0, 0, 0] for name in sensors}
    causes = {}  # why an eligible road user was missed -> count
    seen_right = seen_eligible = 0  # the same measure over the returns above the ground cut
    bands = empty_bands()  # road-user labels by the size of their cluster
    runs = [(kind, seed) for kind in args.kind
            for seed in range(args.first_seed, args.first_seed + args.scenes)]
    for kind, seed in runs:
        scene = random_scene(seed, kind=kind)
        sensor = sensors[seed % len(sensors)]
        tally = by_sensor[sensor]
        result = scan(scene, SENSORS[sensor], seed)
        xyz, truth_id, truth_class = result.flat()
        out = pipeline.process(xyz)
        reported += len(out.objects)
        for detected in out.objects:
            if detected.rule:
                rule = detected.rule.split(':')[0]
                rules_all[rule] = rules_all.get(rule, 0) + 1
            owners = truth_class[out.object_id == detected.object_id]
            named = (not detected.unknown) and detected.class_name in ROAD_USERS
            band = bands[size_band(detected.num_points)]
            if np.isin(owners, ROAD_USER_IDS).mean() < 0.5:
                not_road_users += 1
                false_alarms += named
                tally[2] += named
                tally[3] += 1
                band['false_alarms'] += named
                band['not_road_users'] += 1
            elif named:
                most = CLASS_NAMES[np.bincount(owners[owners >= 0]).argmax()]
                band['right' if most == detected.class_name else 'wrong_class'] += 1
        ground = segment_scene(xyz, config).ground
        visible = region_of_interest(xyz, config) & ~ground
        for obj in scene.objects:
            truth = truth_id == obj.object_id
            if np.hypot(*obj.center[:2]) > 40:
                continue
            if CLASS_NAMES[obj.class_id] in ROAD_USERS and (truth & visible).sum() >= 30:
                seen_eligible += 1
                seen_right += shown_right_as_one(out, truth & visible, obj.class_id)
            if truth.sum() < 30:
                continue
            eligible += 1
            found[CLASS_NAMES[obj.class_id]][1] += 1
            road_user = CLASS_NAMES[obj.class_id] in ROAD_USERS
            if road_user:
                shown_right[CLASS_NAMES[obj.class_id]][1] += 1
                tally[1] += 1
            k = largest_cluster(out.object_id, truth)
            if k < 0:
                if road_user:
                    causes['in no object'] = causes.get('in no object', 0) + 1
                continue
            cluster = out.object_id == k
            if (cluster & truth).sum() / (cluster | truth).sum() < 0.7:
                if road_user:
                    cause = miss_cause(cluster, truth, ground)
                    causes[cause] = causes.get(cause, 0) + 1
                continue
            matched += 1
            found[CLASS_NAMES[obj.class_id]][0] += 1
            good = int(out.class_id[cluster][0]) == obj.class_id
            shown = out.objects[k]
            if shown.rule:
                key = (shown.rule.split(':')[0], CLASS_NAMES[obj.class_id])
                rules_matched[key] = rules_matched.get(key, 0) + 1
            correct += good
            if road_user:
                shown_right[CLASS_NAMES[obj.class_id]][0] += good and not shown.unknown
                tally[0] += good and not shown.unknown
                if shown.unknown or not good:
                    cause = 'one cluster, shown as unknown' if shown.unknown else (
                        'one cluster, wrong class')
                    causes[cause] = causes.get(cause, 0) + 1
            per_class[CLASS_NAMES[obj.class_id]][0] += good
            per_class[CLASS_NAMES[obj.class_id]][1] += 1
    kinds = '+'.join(args.kind)
    print(f'{len(runs)} {kinds} scenes (seeds {args.first_seed}+): {eligible} objects '
          f'<= 40 m with >= 30 points; {matched} ({100 * matched / eligible:.1f} %) found as '
          f'one cluster with IoU >= 0.7; class accuracy on those {100 * correct / matched:.1f} %')
    print('  found as one cluster: '
          + ', '.join(f'{n} {m}/{e}' for n, (m, e) in found.items()))
    print('  classified right: ' + ', '.join(f'{n} {g}/{c}' for n, (g, c) in per_class.items()))
    right = sum(r for r, _ in shown_right.values())
    users = sum(e for _, e in shown_right.values())
    print(f'road users found as one and shown right: {right}/{users} '
          f'({100 * right / max(users, 1):.1f} %): '
          + ', '.join(f'{n} {r}/{e}' for n, (r, e) in shown_right.items())
          + f'; false alarms: {false_alarms}/{not_road_users} '
          f'({100 * false_alarms / max(not_road_users, 1):.1f} %) of the clusters that are '
          'not road users shown as one')
    print(f'road users found as one and shown right, over their returns above the ground cut '
          f'(as bench/real_check.py counts): {seen_right}/{seen_eligible} '
          f'({100 * seen_right / max(seen_eligible, 1):.1f} %)')
    print('by sensor (road users found as one and shown right; false alarms): ' + ', '.join(
        f'{name} {r}/{e} ({100 * r / max(e, 1):.1f} %), {f}/{n}'
        for name, (r, e, f, n) in by_sensor.items() if e or n))
    print(f'road users missed ({users - right}), why: ' + ', '.join(
        f'{cause} {n}' for cause, n in sorted(causes.items(), key=lambda kv: -kv[1])))
    print(f'rules on all {reported} reported objects: {rules_all or "none"}; on matched '
          f'objects (rule, true class): {rules_matched or "none"}')
    print('road-user labels by cluster points (every reported cluster): ' + bands_line(bands))


def largest_cluster(object_id: np.ndarray, truth: np.ndarray) -> int:
    """Return the object id ``object_id`` ((M,) int) gives most of ``truth`` ((M,) bool), or -1."""
    ids = object_id[truth]
    ids = ids[ids >= 0]
    return int(np.bincount(ids).argmax()) if len(ids) else -1


def shown_right_as_one(out, truth: np.ndarray, class_id: int) -> bool:
    """
    Whether ``truth`` ((M,) bool) is found as one cluster (IoU >= 0.7) shown as ``class_id``.

    ``out`` the pipeline's :class:`~pointcam_ros.common.results.SceneResult`.
    """
    k = largest_cluster(out.object_id, truth)
    if k < 0:
        return False
    cluster = out.object_id == k
    shown = out.objects[k]
    return bool((cluster & truth).sum() / (cluster | truth).sum() >= 0.7
                and shown.class_id == class_id and not shown.unknown)


def miss_cause(cluster: np.ndarray, truth: np.ndarray, ground: np.ndarray) -> str:
    """
    Why an object's largest cluster (``cluster``, (M,) bool) does not match it (``truth``).

    ``ground`` (M,) bool: the returns the segmentation cut as ground. When
    the cluster is (80 %) the object's own but holds too little of it: the
    rest mostly ground (the ground cut took the object's lower returns), or
    else split off. ``merged``: the cluster holds (80 %) of the object and
    much else; otherwise both.
    """
    common = (cluster & truth).sum()
    if common >= 0.8 * cluster.sum():
        rest = truth & ~cluster
        if ground[rest].mean() >= 0.5:
            return 'the rest mostly cut as ground'
        return 'split (its largest piece is under IoU 0.7)'
    if common >= 0.8 * truth.sum():
        return 'merged with something else'
    return 'split and merged'


if __name__ == '__main__':
    main()
