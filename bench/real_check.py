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
How the scene pipeline does on labelled real scans: KITTI, SemanticKITTI, Argoverse 2.

``DIR`` is either one KITTI-format folder (velodyne/, label_2/, calib/) or
the real-data folder (``../shared/realdata``: kitti/, semantickitti/,
av2/; see its README and ``bench/realdata.py``). For each set it prints:

* one line per labelled road user with at least ``--min-points`` points
  the pipeline sees (in the region of interest, not ground): scan, type,
  class, points, distance, the point IoU of the best-matching cluster,
  whether it was found (IoU >= 0.5), the prediction of that cluster and its
  confidence (``unknown`` below ``min_confidence``);
* per set, per class found / right, and the false alarms: clusters that
  are not road users shown as one (car, truck, pedestrian, cyclist;
  ``unknown`` is not shown). What "not a road user" means per set:
  KITTI, in the front camera's view and touching no labelled box
  (:mod:`pointcam_ros.learn.kitti`, KITTI labels only that view);
  SemanticKITTI, most points not labelled as a road user (every point is
  labelled, so this is exact; unlabelled points and parked bicycles count
  as not road users); Argoverse 2, no point in any cuboid of any category;
* the same split at ``--far`` metres (objects and false alarms beyond it).

``--set key=value`` changes pipeline parameters, so one command measures
both designs (``--set segmentation=range``); ``--features`` prints every
false alarm's and every found road user's shape (``rules.shape_features``).
``--seeds K`` runs the sets again with the next K - 1 seeds and prints the
range of each figure: the seed draws the ground fit's candidates and the
points each object is classified on, and a borderline object changes
class with them, so a change of one or two counts between two versions can
be chance.

    .venv/bin/python bench/real_check.py ../shared/realdata --set segmentation=range
    .venv/bin/python bench/real_check.py ~/kitti/training --model model.pt --json out.json
"""

import argparse
from dataclasses import replace
import functools
import json
from pathlib import Path
import sys
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from pointcam_ros.common.atomic import write_text_atomic
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.results import SceneResult
from pointcam_ros.formats.kitti import IMAGE_SIZE, KittiFrame, list_frames, read_frame
from pointcam_ros.learn.kitti import analyse_frame, cluster_flags, ROAD_USERS
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.rules import shape_features
from pointcam_ros.perception.segmentation import region_of_interest, segment_scene
import yaml

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (the tests)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_bands import bands_line, empty_bands, size_band  # noqa: E402,I100  (bench/)
import realdata  # noqa: E402,I100  (bench/realdata.py, next to this script)

#: A labelled object counts as found when its best cluster has at least this point IoU.
FOUND_IOU = 0.5
#: Share of a cluster's points that must be clutter for it to count as not a road user,
#: per set (SemanticKITTI: most points; Argoverse 2: all, "no point in any cuboid").
CLUTTER_SHARE = {'semantickitti': 0.5, 'av2': 1.0}
#: ``on_result(points, result)``: what a check hands its caller besides the figures.
OnResult = Callable[[np.ndarray, SceneResult], None]
#: A set's scans: a KITTI folder, or a function returning a SemanticKITTI / Argoverse 2 list.
SetSource = Union[Path, Callable[[], list[realdata.RealScan]]]


def _score_object(result: SceneResult, sizes: np.ndarray, truth: np.ndarray,
                  entry: dict) -> dict:
    """Fill ``entry`` with the IoU, found, prediction of the object ``truth`` (M,) bool."""
    object_id = result.object_id
    entry.update(iou=0.0, found=False, prediction=None, confidence=None, unknown=None,
                 correct=False, rule='')
    ids = object_id[truth]
    ids = ids[ids >= 0]
    if len(ids):
        inter = np.bincount(ids, minlength=len(sizes))
        union = truth.sum() + sizes - inter
        iou = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
        best = int(np.argmax(iou))
        entry['iou'] = round(float(iou[best]), 3)
        entry['found'] = bool(iou[best] >= FOUND_IOU)
        if entry['found']:
            detected = result.objects[best]
            entry.update(prediction=detected.class_name, cluster=best,
                         cluster_points=int(sizes[best]),
                         confidence=round(detected.confidence, 3),
                         unknown=bool(detected.unknown), rule=detected.rule)
            entry['correct'] = (not detected.unknown and detected.class_name == entry['class'])
    return entry


def _cluster_entry(result: SceneResult, k: int, xyz: np.ndarray, height: np.ndarray,
                   features: bool) -> dict:
    """One cluster's prediction (and shape features if asked) for the false-alarm list."""
    detected = result.objects[k]
    entry = {'cluster': k, 'points': int(detected.num_points),
             'distance': round(float(np.hypot(*detected.center[:2])), 2),
             'prediction': detected.class_name, 'confidence': round(detected.confidence, 3),
             'unknown': bool(detected.unknown), 'rule': detected.rule,
             'shown_as_road_user': not detected.unknown and detected.class_name in ROAD_USERS}
    if features:
        rows = result.object_id == k
        entry['features'] = shape_features(xyz[rows], height[rows]).as_dict()
    return entry


def _add_features(objects: list[dict], result: SceneResult, xyz: np.ndarray,
                  height: np.ndarray) -> None:
    """Shape features of the cluster that found each labelled object."""
    for obj in objects:
        if obj['found']:
            rows = result.object_id == obj['cluster']
            obj['features'] = shape_features(xyz[rows], height[rows]).as_dict()


def check_frame(pipeline: ScenePipeline, frame: KittiFrame, min_points: int,
                image_size: Sequence[int] = IMAGE_SIZE, features: bool = False,
                on_result: Optional[OnResult] = None) -> dict:
    """
    Run the pipeline on one KITTI frame; return its objects, false-alarm clusters and counts.

    Keys: ``frame``, ``objects`` (one dict per labelled 3D box, DontCare
    excluded), ``clusters`` (one dict per in-view unlabelled cluster),
    ``unlabelled_in_view`` and ``shown_as_road_user`` (ints). ``on_result``,
    if given, gets the points ``(M, 3)`` float32 and the pipeline's result.
    """
    analysis = analyse_frame(frame, pipeline.config, image_size)
    result = pipeline.process(analysis.xyz)
    if on_result is not None:
        on_result(analysis.xyz, result)
    count = len(result.objects)
    sizes = np.bincount(result.object_id[result.object_id >= 0], minlength=count)
    objects = []
    for box in analysis.boxes:
        truth = box.mask & analysis.visible
        entry = {'frame': frame.name, 'line': box.label.line, 'type': box.label.kind,
                 'class': box.label.class_name, 'points': int(truth.sum()),
                 'distance': round(float(np.hypot(*box.box.center[:2])), 2),
                 'evaluated': bool(truth.sum() >= min_points)}
        objects.append(_score_object(result, sizes, truth, entry))
    in_view, unlabelled = cluster_flags(analysis.xyz, result.object_id, count, frame,
                                        analysis.boxes, image_size)
    clusters = [_cluster_entry(result, int(k), analysis.xyz, analysis.height, features)
                for k in np.flatnonzero(in_view & unlabelled)]
    if features:
        _add_features(objects, result, analysis.xyz, analysis.height)
    return {'frame': frame.name, 'objects': objects, 'clusters': clusters,
            'unlabelled_in_view': len(clusters),
            'shown_as_road_user': sum(c['shown_as_road_user'] for c in clusters)}


def check_scan(pipeline: ScenePipeline, scan: realdata.RealScan, min_points: int,
               features: bool = False, on_result: Optional[OnResult] = None) -> dict:
    """
    Run the pipeline on one SemanticKITTI or Argoverse 2 scan (keys as ``check_frame``).

    ``on_result`` as in ``check_frame``. ``clusters`` lists the clusters
    that are not road users: at least ``CLUTTER_SHARE[scan.set_name]`` of
    their points are ``scan.clutter``; ``unlabelled_in_view`` counts them
    (the key keeps KITTI's name).
    """
    xyz = scan.xyz
    seg = segment_scene(xyz, pipeline.config)
    visible = region_of_interest(xyz, pipeline.config) & ~seg.ground
    result = pipeline.process(xyz)
    if on_result is not None:
        on_result(xyz, result)
    count = len(result.objects)
    inside = result.object_id >= 0
    ids = result.object_id[inside]
    sizes = np.bincount(ids, minlength=count)
    objects = []
    for obj in scan.objects:
        truth = obj.mask & visible
        if not truth.any():
            continue
        entry = {'frame': scan.name, 'line': 0, 'type': obj.label, 'class': obj.name,
                 'points': int(truth.sum()), 'distance': round(obj.distance(xyz), 2),
                 'evaluated': bool(truth.sum() >= min_points)}
        objects.append(_score_object(result, sizes, truth, entry))
    share = np.bincount(ids, weights=scan.clutter[inside], minlength=count) / np.maximum(sizes, 1)
    clutter = share >= CLUTTER_SHARE[scan.set_name] - 1e-9
    clusters = [_cluster_entry(result, int(k), xyz, seg.height, features)
                for k in np.flatnonzero(clutter)]
    if scan.semantic is not None:
        for c in clusters:
            c['semantic'] = int(np.bincount(scan.semantic[result.object_id == c['cluster']])
                                .argmax())
    if features:
        _add_features(objects, result, xyz, seg.height)
    return {'frame': scan.name, 'objects': objects, 'clusters': clusters,
            'unlabelled_in_view': len(clusters),
            'shown_as_road_user': sum(c['shown_as_road_user'] for c in clusters)}


def summarize(frames: Sequence[dict], far: Optional[float] = None) -> dict:
    """
    Totals over checked frames: per class found / correct / unknown, and false alarms.

    With ``far`` (m), only objects and clusters at least that far count.
    """
    per_class: dict[str, dict[str, int]] = {}
    for frame in frames:
        for obj in frame['objects']:
            if not obj['evaluated'] or obj['class'] is None:
                continue
            if far is not None and obj['distance'] < far:
                continue
            stats = per_class.setdefault(obj['class'], {'objects': 0, 'found': 0,
                                                        'correct': 0, 'unknown': 0})
            stats['objects'] += 1
            stats['found'] += obj['found']
            stats['correct'] += obj['correct']
            stats['unknown'] += bool(obj['unknown'])
    total = {key: sum(s[key] for s in per_class.values())
             for key in ('objects', 'found', 'correct', 'unknown')}
    clusters = [c for f in frames for c in f['clusters']
                if far is None or c['distance'] >= far]
    unlabelled = len(clusters)
    shown = sum(c['shown_as_road_user'] for c in clusters)
    shown_as: dict[str, int] = {}
    for c in clusters:
        if c['shown_as_road_user']:
            shown_as[c['prediction']] = shown_as.get(c['prediction'], 0) + 1
    return {'frames': len(frames), 'per_class': per_class, **total,
            'unlabelled_in_view': unlabelled, 'shown_as_road_user': shown,
            'shown_as': shown_as,
            'false_alarm_share': shown / unlabelled if unlabelled else None,
            'labels_by_size': labels_by_size(frames, clusters, far)}


def labels_by_size(frames: Sequence[dict], clusters: Sequence[dict],
                   far: Optional[float] = None) -> dict[str, dict[str, int]]:
    """
    Road-user labels shown, by the size of the cluster they are shown on (``label_bands``).

    Per band: ``right`` and ``wrong_class``, the labels on the clusters that
    found a labelled road user (IoU >= ``FOUND_IOU``) of any size, evaluated
    or not; ``false_alarms``, those on ``clusters`` (the clusters that are
    not road users), of ``not_road_users`` such clusters.
    """
    bands = empty_bands()
    for frame in frames:
        for obj in frame['objects']:
            if (obj['class'] is None or not obj['found'] or obj['unknown']
                    or obj['prediction'] not in ROAD_USERS
                    or (far is not None and obj['distance'] < far)):
                continue
            band = bands[size_band(obj['cluster_points'])]
            band['right' if obj['correct'] else 'wrong_class'] += 1
    for c in clusters:
        band = bands[size_band(c['points'])]
        band['false_alarms'] += c['shown_as_road_user']
        band['not_road_users'] += 1
    return bands


def _range(values: Sequence[float]) -> str:
    """``low-high`` of ``values``, or the one value when they are all the same."""
    low, high = min(values), max(values)
    return f'{low:g}' if low == high else f'{low:g}-{high:g}'


def seed_spread(summaries: Sequence[dict]) -> str:
    """
    One line: the range (and median) of each figure of :func:`summarize` over runs.

    ``summaries``: one per run, each with another ``seed``. The seed draws
    the ground plane's RANSAC candidates and each object's samples, so a
    borderline object can change class from one seed to the next, and the
    clusters move with the ground and with the split's and the merge's
    answers. A figure that does not move is given once, without a median.
    """
    def spread(values: Sequence[float]) -> str:
        if min(values) == max(values):
            return _range(values)
        return f'{_range(values)} (median {float(np.median(values)):g})'

    parts = [f"right {spread([s['correct'] for s in summaries])} of "
             f"{_range([s['objects'] for s in summaries])}"]
    for name in sorted({name for s in summaries for name in s['per_class']}):
        right = [s['per_class'].get(name, {}).get('correct', 0) for s in summaries]
        total = [s['per_class'].get(name, {}).get('objects', 0) for s in summaries]
        parts.append(f'{name} {spread(right)} of {_range(total)}')
    parts.append(f"false alarms {spread([s['shown_as_road_user'] for s in summaries])} of "
                 f"{_range([s['unlabelled_in_view'] for s in summaries])}")
    return '; '.join(parts)


def _share(part: int, whole: int) -> str:
    return f'{part}/{whole} ({100 * part / whole:.1f} %)' if whole else f'{part}/0 (-)'


def _object_line(obj: dict) -> str:
    if obj['found']:
        name = 'unknown' if obj['unknown'] else obj['prediction']
        guess = f"{name:<10} {obj['confidence']:.2f}"
        if obj['unknown']:
            guess += f" ({obj['prediction']})"
    else:
        guess = '-'
    return (f"{obj['frame']:<8} {obj['type']:<14} {obj['class'] or '(not used)':<10} "
            f"{obj['points']:>6} {obj['distance']:>6.1f} {obj['iou']:>5.2f} "
            f"{'yes' if obj['found'] else 'no':<5} {guess}")


def _feature_line(tag: str, frame: str, item: dict) -> str:
    f = item['features']
    guess = 'unknown' if item['unknown'] else item['prediction']
    return (f"{tag:<4} {frame[-12:]:<12} {guess:<10} {item['confidence']:.2f} "
            f"{f['points']:>5} {f['range']:>5.1f} "
            f"{f['length']:>4.1f}x{f['width']:>3.1f}x{f['height']:>3.1f} "
            f"{f['bottom']:>5.2f} {f['top']:>4.2f} {f['thickness']:>5.2f} "
            f"{f['linearity']:>4.2f} {f['planarity']:>4.2f} {f['scattering']:>4.2f} "
            f"{f['verticality']:>4.2f} {f['hull_share']:>4.2f} {f['top_depth']:>4.2f} "
            f"{f['upper_share']:>4.2f} {item.get('semantic', '')} {item.get('rule', '')[:40]}")


def _print_summary(title: str, summary: dict) -> None:
    print(f'  {title}: found (IoU >= {FOUND_IOU}) '
          f"{_share(summary['found'], summary['objects'])}; "
          f"right {_share(summary['correct'], summary['objects'])}; "
          f"unknown {summary['unknown']}")
    for name, stats in sorted(summary['per_class'].items()):
        print(f"    {name:<10} found {_share(stats['found'], stats['objects'])}, "
              f"right {_share(stats['correct'], stats['objects'])}, "
              f"unknown {stats['unknown']}")
    shown_as = ', '.join(f'{n} {c}' for n, c in sorted(summary['shown_as'].items()))
    print('    false alarms: '
          f"{_share(summary['shown_as_road_user'], summary['unlabelled_in_view'])} of the "
          f'clusters that are not road users shown as one ({shown_as or "-"})')
    print('    road-user labels by cluster points (on labelled road users of any size, '
          'and false alarms): ' + bands_line(summary['labels_by_size']))


def _sets(root: Path, wanted: Sequence[str]) -> list[tuple[str, SetSource]]:
    """
    ``(set name, source)`` for the sets found under ``root``.

    The source is a KITTI folder, or a function that returns the set's
    ``RealScan`` list (read on the first call, then kept).
    """
    if (root / 'velodyne').is_dir() or (root / 'training' / 'velodyne').is_dir():
        return [('kitti', root)]
    found: list[tuple[str, SetSource]] = []
    if 'kitti' in wanted and (root / 'kitti' / 'velodyne').is_dir():
        found.append(('kitti', root / 'kitti'))
    if 'semantickitti' in wanted and (root / 'semantickitti').is_dir():
        found.append(('semantickitti', functools.cache(
            lambda: list(realdata.semantic_kitti(root)))))
    if 'av2' in wanted and (root / 'av2').is_dir():
        found.append(('av2', functools.cache(lambda: list(realdata.argoverse(root)))))
    return found


def check_sets(pipeline: ScenePipeline, sets: Sequence[tuple[str, SetSource]],
               args: argparse.Namespace, show: bool) -> dict[str, list[dict]]:
    """
    Check every frame of every set; return the checked frames per set.

    ``sets`` as :func:`_sets` returns (iterated again on each call, so a set
    can be checked once per seed); ``args`` the parsed command line. ``show``:
    print the per-object and per-frame lines (and the shape features with
    ``--features``).
    """
    checked_sets: dict[str, list[dict]] = {}
    for set_name, source in sets:
        frames: list[dict] = []
        if show:
            print(f'\n== {set_name} ==')
        if show and not args.quiet:
            print(f'{"frame":<8} {"type":<14} {"class":<10} {"points":>6} {"dist_m":>6} '
                  f'{"iou":>5} {"found":<5} prediction confidence')
        if set_name == 'kitti':
            names = args.frame_list.read_text().split() if args.frame_list else None
            names = list_frames(source, names)[:args.max_frames]
            checks = (check_frame(pipeline, read_frame(source, name), args.min_points,
                                  tuple(args.image_size), args.features and show)
                      for name in names)
        else:
            scans = source()[:args.max_frames]
            checks = (check_scan(pipeline, scan, args.min_points, args.features and show)
                      for scan in scans)
        for checked in checks:
            frames.append(checked)
            if not show:
                continue
            if not args.quiet:
                for obj in checked['objects']:
                    if obj['evaluated']:
                        print(_object_line(obj))
            share = _share(checked['shown_as_road_user'], checked['unlabelled_in_view'])
            what = ('in-view unlabelled clusters' if set_name == 'kitti'
                    else 'clusters that are not road users')
            print(f"{checked['frame']:<8} false alarms: {share} {what} shown as a road user")
        if show and args.features:
            _print_features(frames)
        checked_sets[set_name] = frames
    return checked_sets


def _print_features(frames: Sequence[dict]) -> None:
    """Print the shape of every false alarm, every ruled cluster and every found road user."""
    print('tag  scan         shown      conf   pts     r  LxWxH         bottom '
          'top  thick  lin  pla  sca  vert hull topd uppr rule')
    for checked in frames:
        for c in checked['clusters']:
            if c['shown_as_road_user'] or c['rule']:
                print(_feature_line('FA', checked['frame'], c))
        for obj in checked['objects']:
            if obj['evaluated'] and obj['found']:
                print(_feature_line('RU:' + obj['class'][:1], checked['frame'], obj))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check the pipeline on labelled real scans; print a table and a summary per set."""
    parser = argparse.ArgumentParser(description='Scene pipeline on labelled real scans '
                                     '(KITTI, SemanticKITTI, Argoverse 2).')
    parser.add_argument('dir', type=Path, help='a KITTI-format folder (velodyne/, label_2/, '
                        'calib/) or the real-data folder (kitti/, semantickitti/, av2/)')
    parser.add_argument('--sets', nargs='+', default=['kitti', 'semantickitti', 'av2'],
                        choices=['kitti', 'semantickitti', 'av2'],
                        help='sets of the real-data folder to check (default: all found)')
    parser.add_argument('--model', help='checkpoint (.pt; default: the params file, else '
                        'the shipped model)')
    parser.add_argument('--params', type=Path, help='pipeline parameter file (YAML)')
    parser.add_argument('--set', nargs='*', default=[], metavar='PARAM=VALUE',
                        help='pipeline parameters to change, e.g. segmentation=range')
    parser.add_argument('--min-points', type=int, default=30,
                        help='labelled objects with fewer visible points are not evaluated '
                        '(default: %(default)s)')
    parser.add_argument('--min-confidence', type=float,
                        help='override min_confidence of the params file')
    parser.add_argument('--device', help="override device of the params file ('cpu', ...)")
    parser.add_argument('--image-size', type=int, nargs=2, default=IMAGE_SIZE,
                        metavar=('WIDTH', 'HEIGHT'), help='default: %(default)s (KITTI)')
    parser.add_argument('--frame-list', type=Path, metavar='TXT',
                        help='only these KITTI frames (one name per line)')
    parser.add_argument('--max-frames', type=int, help='only the first N frames of a set')
    parser.add_argument('--far', type=float, default=60.0,
                        help='also count objects and false alarms at least this far (m)')
    parser.add_argument('--features', action='store_true',
                        help='print the shape features of every false alarm and found object')
    parser.add_argument('--quiet', action='store_true', help='no per-object lines')
    parser.add_argument('--seeds', type=int, default=1, metavar='K',
                        help='also run with the next K - 1 seeds (seed + 1, ...; the seed draws '
                        "the ground fit and each object's samples) and print the range of each "
                        "set's overall figures over the K runs; takes K times as long "
                        '(default: %(default)s)')
    parser.add_argument('--json', type=Path, help='also write every figure to this JSON file')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --json')
    args = parser.parse_args(argv)
    if args.json is not None and args.json.exists() and not args.force:
        parser.error(f'{args.json} exists: pass --force to overwrite it')
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    reports = {}
    spread: dict[str, list[dict]] = {}
    try:
        config = PipelineConfig.from_yaml(args.params) if args.params else PipelineConfig()
        changes: dict[str, Any] = {}
        for item in args.set:
            name, _, value = item.partition('=')
            changes[name] = yaml.safe_load(value)
        if args.model is not None:
            changes['model_path'] = args.model
        if args.min_confidence is not None:
            changes['min_confidence'] = args.min_confidence
        if args.device is not None:
            changes['device'] = args.device
        config = PipelineConfig.from_dict({**config.to_dict(), **changes})
        sets = _sets(args.dir, args.sets)
        if not sets:
            raise FileNotFoundError(f'{args.dir}: no KITTI, SemanticKITTI or Argoverse 2 scans')
        pipeline = ScenePipeline(config)
        for set_name, frames in check_sets(pipeline, sets, args, show=True).items():
            reports[set_name] = {'summary': summarize(frames),
                                 'far': summarize(frames, args.far), 'frames': frames}
        spread = {name: [report['summary']] for name, report in reports.items()}
        for offset in range(1, args.seeds):
            reseeded = ScenePipeline(replace(config, seed=config.seed + offset),
                                     loaded=pipeline.loaded)
            for set_name, frames in check_sets(reseeded, sets, args, show=False).items():
                spread[set_name].append(summarize(frames))
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        print(f'real_check: error: {exc}', file=sys.stderr)
        return 1
    changed = ', '.join(args.set) or 'defaults'
    print(f'\nmodel {pipeline.loaded.path}, min_confidence {config.min_confidence}, '
          f'segmentation {config.segmentation}, max_range {config.max_range} ({changed}); '
          f'objects with >= {args.min_points} points')
    for set_name, report in reports.items():
        print(f"{set_name} ({report['summary']['frames']} scans)")
        _print_summary('all', report['summary'])
        _print_summary(f'at >= {args.far:g} m', report['far'])
        if args.seeds > 1:
            print(f'  over seeds {config.seed}-{config.seed + args.seeds - 1}: '
                  + seed_spread(spread[set_name]))
    if args.json is not None:
        out = {'dir': str(args.dir), 'model': pipeline.loaded.path,
               'config': config.to_dict(), 'min_points': args.min_points,
               'found_iou': FOUND_IOU, 'sets': reports}
        if args.seeds > 1:
            out['seeds'] = {'first': config.seed, 'summaries': spread}
        if len(reports) == 1:  # one KITTI folder: the layout of earlier versions
            only = next(iter(reports.values()))
            out.update(summary=only['summary'], frames=only['frames'])
        write_text_atomic(args.json, json.dumps(out, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
