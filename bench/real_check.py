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
How the scene pipeline does on labelled real scans (KITTI object format).

Runs :class:`ScenePipeline` over every frame of a KITTI-format folder
(velodyne/, label_2/, calib/) and prints:

* one line per labelled object with at least ``--min-points`` points the
  pipeline sees (in its box, inside the region of interest, not ground):
  frame, KITTI type, class, points, distance, the IoU (over points) of the
  best-matching cluster, whether it was found (IoU >= 0.5), the prediction
  of that cluster and its confidence (``unknown`` below ``min_confidence``);
* per frame and overall, the false-alarm share: of the clusters in the
  camera's view that are not labelled objects (the data set builder's
  background, see :mod:`pointcam_ros.learn.kitti`), the share shown as a
  road user (car, truck, pedestrian, cyclist; ``unknown`` is not shown).

    .venv/bin/python bench/real_check.py ~/kitti/training --model model.pt \
        --params config/pointcam.yaml --json real_check.json
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.common.atomic import write_text_atomic
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.learn.kitti import (
    analyse_frame, cluster_flags, IMAGE_SIZE, KittiFrame, list_frames, read_frame, ROAD_USERS)
from pointcam_ros.perception.pipeline import ScenePipeline

#: A labelled object counts as found when its best cluster has at least this point IoU.
FOUND_IOU = 0.5


def check_frame(pipeline: ScenePipeline, frame: KittiFrame, min_points: int,
                image_size: Sequence[int] = IMAGE_SIZE) -> dict:
    """
    Run the pipeline on one frame; return its objects, false-alarm clusters and counts.

    Keys: ``frame``, ``objects`` (one dict per labelled 3D box, DontCare
    excluded), ``clusters`` (one dict per in-view unlabelled cluster),
    ``unlabelled_in_view`` and ``shown_as_road_user`` (ints).
    """
    analysis = analyse_frame(frame, pipeline.config, image_size)
    result = pipeline.process(analysis.xyz)
    object_id = result.object_id
    count = len(result.objects)
    sizes = np.bincount(object_id[object_id >= 0], minlength=count)
    objects = []
    for box in analysis.boxes:
        truth = box.mask & analysis.visible
        entry = {'frame': frame.name, 'line': box.label.line, 'type': box.label.kind,
                 'class': box.label.class_name, 'points': int(truth.sum()),
                 'distance': round(float(np.hypot(*box.box.center[:2])), 2),
                 'evaluated': bool(truth.sum() >= min_points), 'iou': 0.0, 'found': False,
                 'prediction': None, 'confidence': None, 'unknown': None, 'correct': False}
        ids = object_id[truth]
        ids = ids[ids >= 0]
        if len(ids):
            inter = np.bincount(ids, minlength=count)
            union = truth.sum() + sizes - inter
            iou = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
            best = int(np.argmax(iou))
            entry['iou'] = round(float(iou[best]), 3)
            entry['found'] = bool(iou[best] >= FOUND_IOU)
            if entry['found']:
                detected = result.objects[best]
                entry.update(prediction=detected.class_name,
                             confidence=round(detected.confidence, 3),
                             unknown=bool(detected.unknown))
                entry['correct'] = (not detected.unknown
                                    and detected.class_name == entry['class'])
        objects.append(entry)
    in_view, unlabelled = cluster_flags(analysis.xyz, object_id, count, frame, analysis.boxes,
                                        image_size)
    clusters = []
    for k in np.flatnonzero(in_view & unlabelled):
        detected = result.objects[int(k)]
        shown = not detected.unknown and detected.class_name in ROAD_USERS
        clusters.append({'cluster': int(k), 'points': int(detected.num_points),
                         'distance': round(float(np.hypot(*detected.center[:2])), 2),
                         'prediction': detected.class_name,
                         'confidence': round(detected.confidence, 3),
                         'unknown': bool(detected.unknown), 'shown_as_road_user': shown})
    return {'frame': frame.name, 'objects': objects, 'clusters': clusters,
            'unlabelled_in_view': len(clusters),
            'shown_as_road_user': sum(c['shown_as_road_user'] for c in clusters)}


def summarize(frames: Sequence[dict]) -> dict:
    """Totals over checked frames: per class found / correct / unknown, and false alarms."""
    per_class: dict[str, dict[str, int]] = {}
    for frame in frames:
        for obj in frame['objects']:
            if not obj['evaluated'] or obj['class'] is None:
                continue
            stats = per_class.setdefault(obj['class'], {'objects': 0, 'found': 0,
                                                        'correct': 0, 'unknown': 0})
            stats['objects'] += 1
            stats['found'] += obj['found']
            stats['correct'] += obj['correct']
            stats['unknown'] += bool(obj['unknown'])
    total = {key: sum(s[key] for s in per_class.values())
             for key in ('objects', 'found', 'correct', 'unknown')}
    unlabelled = sum(f['unlabelled_in_view'] for f in frames)
    shown = sum(f['shown_as_road_user'] for f in frames)
    return {'frames': len(frames), 'per_class': per_class, **total,
            'unlabelled_in_view': unlabelled, 'shown_as_road_user': shown,
            'false_alarm_share': shown / unlabelled if unlabelled else None}


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check the pipeline on a KITTI-format folder; print a table and a summary."""
    parser = argparse.ArgumentParser(description='Scene pipeline on labelled real scans '
                                     '(KITTI object format).')
    parser.add_argument('dir', type=Path, help='folder with velodyne/, label_2/, calib/')
    parser.add_argument('--model', help='checkpoint (.pt; default: the params file, else '
                        'the shipped model)')
    parser.add_argument('--params', type=Path, help='pipeline parameter file (YAML)')
    parser.add_argument('--min-points', type=int, default=30,
                        help='labelled objects with fewer visible points are not evaluated '
                        '(default: %(default)s)')
    parser.add_argument('--min-confidence', type=float,
                        help='override min_confidence of the params file')
    parser.add_argument('--device', help="override device of the params file ('cpu', ...)")
    parser.add_argument('--image-size', type=int, nargs=2, default=IMAGE_SIZE,
                        metavar=('WIDTH', 'HEIGHT'), help='default: %(default)s (KITTI)')
    parser.add_argument('--frame-list', type=Path, metavar='TXT',
                        help='only these frames (one name per line)')
    parser.add_argument('--max-frames', type=int, help='only the first N frames')
    parser.add_argument('--json', type=Path, help='also write every figure to this JSON file')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --json')
    args = parser.parse_args(argv)
    if args.json is not None and args.json.exists() and not args.force:
        parser.error(f'{args.json} exists: pass --force to overwrite it')
    try:
        config = PipelineConfig.from_yaml(args.params) if args.params else PipelineConfig()
        changes = {}
        if args.model is not None:
            changes['model_path'] = args.model
        if args.min_confidence is not None:
            changes['min_confidence'] = args.min_confidence
        if args.device is not None:
            changes['device'] = args.device
        config = config.replace(**changes)
        names = None
        if args.frame_list is not None:
            names = args.frame_list.read_text().split()
        names = list_frames(args.dir, names)[:args.max_frames]
        pipeline = ScenePipeline(config)
        frames = []
        print(f'{"frame":<8} {"type":<14} {"class":<10} {"points":>6} {"dist_m":>6} '
              f'{"iou":>5} {"found":<5} prediction confidence')
        for name in names:
            checked = check_frame(pipeline, read_frame(args.dir, name), args.min_points,
                                  tuple(args.image_size))
            frames.append(checked)
            for obj in checked['objects']:
                if obj['evaluated']:
                    print(_object_line(obj))
            skipped = sum(not obj['evaluated'] for obj in checked['objects'])
            share = _share(checked['shown_as_road_user'], checked['unlabelled_in_view'])
            print(f'{name:<8} false alarms: {share} '
                  'in-view unlabelled clusters shown as a road user'
                  + (f'; {skipped} labelled objects with < {args.min_points} points not '
                     'evaluated' if skipped else ''))
    except (OSError, ValueError, RuntimeError) as exc:
        print(f'real_check: error: {exc}', file=sys.stderr)
        return 1
    summary = summarize(frames)
    print(f"\n{summary['frames']} frames, model {pipeline.loaded.path}, "
          f'min_confidence {config.min_confidence}, objects with >= {args.min_points} points')
    print(f"  found (IoU >= {FOUND_IOU}): {_share(summary['found'], summary['objects'])}; "
          f"correct class: {_share(summary['correct'], summary['objects'])}; "
          f"unknown: {summary['unknown']}")
    for name, stats in sorted(summary['per_class'].items()):
        print(f"  {name:<10} found {_share(stats['found'], stats['objects'])}, "
              f"correct {_share(stats['correct'], stats['objects'])}, "
              f"unknown {stats['unknown']}")
    print('  false alarms: '
          f"{_share(summary['shown_as_road_user'], summary['unlabelled_in_view'])} of the "
          'in-view unlabelled clusters shown as car, truck, pedestrian or cyclist')
    if args.json is not None:
        report = {'dir': str(args.dir), 'model': pipeline.loaded.path,
                  'config': config.to_dict(), 'min_points': args.min_points,
                  'found_iou': FOUND_IOU, 'summary': summary, 'frames': frames}
        write_text_atomic(args.json, json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
