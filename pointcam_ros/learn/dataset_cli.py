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
``pointcam_dataset`` for real data: cut a KITTI-format folder, or merge data sets.

    pointcam_dataset --kitti ~/kitti --frame-list ImageSets/train.txt --out data/kitti_train.npz
    pointcam_dataset --merge data/train.npz data/kitti_train.npz --out data/mixed_train.npz

(``pointcam_dataset --split ...`` simulates scenes: see :mod:`pointcam_ros.learn.train`,
whose ``dataset_main`` hands ``--kitti`` and ``--merge`` command lines to :func:`main`.)

:func:`check_outputs` is the overwrite rule of ``pointcam_dataset`` and
``pointcam_train``: no existing file is replaced without ``--force``, and no
output is ever one of the command's inputs.
"""

import argparse
import os
from pathlib import Path
import sys
from typing import Mapping, NamedTuple, Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.learn.dataset import load_dataset, ObjectDataset, point_columns, save_dataset


class Output(NamedTuple):
    """A file a command writes: its name in messages, path, the option that sets it, a hint."""

    label: str  # e.g. '--report' or 'the report (<out>.json)'
    path: Path
    option: str  # the option to change to write elsewhere, e.g. '--out'
    hint: str = ''  # added to the message when it exists, e.g. 'or --resume ...'


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (same resolved path, or hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return False


def check_outputs(outputs: Sequence[Output], inputs: Mapping[str, Optional[Path]],
                  force: bool, exempt: Sequence[Path] = ()) -> Optional[str]:
    """
    Return why a command may not write ``outputs``, or None if it may; check before any work.

    Refused, whatever ``force``: an output that is the same file as one of
    ``inputs`` (option -> path, None for an option not given), two outputs
    that are one file, an output that is a directory. Refused without
    ``force``: an output that exists, unless it is in ``exempt`` (the files
    of a run being resumed).
    """
    for number, out in enumerate(outputs):
        for option, path in inputs.items():
            if path is not None and same_file(out.path, path):
                return (f'{out.label} {out.path} is the same file as {option} {path}: an '
                        'output never replaces an input, not even with --force; choose '
                        f'another {out.option}')
        for other in outputs[:number]:
            if same_file(out.path, other.path):
                return (f'{out.label} and {other.label} are both {out.path}: choose another '
                        f'{out.option}')
        if out.path.is_dir():
            return f'{out.label} {out.path} is a directory: give a file name'
    for out in outputs:
        if out.path.exists() and not force and not any(same_file(out.path, keep)
                                                       for keep in exempt):
            return (f'{out.label} {out.path} exists: pass --force to overwrite it, or choose '
                    f'another {out.option}' + (f', {out.hint}' if out.hint else ''))
    return None


def merge_datasets(datasets: Sequence[ObjectDataset]) -> ObjectDataset:
    """
    Concatenate data sets with the same class list, in order.

    Raises ValueError when the class lists differ (labels are indices into
    them, so mixing would silently relabel objects).
    """
    if not datasets:
        raise ValueError('nothing to merge: give at least one data set')
    names = list(datasets[0].class_names)
    for number, data in enumerate(datasets[1:], start=2):
        if list(data.class_names) != names:
            raise ValueError(f'data set {number} has classes {list(data.class_names)}, the '
                             f'first has {names}: only data sets with the same class list '
                             '(same order) can be merged')
    point_columns([data.points[0] for data in datasets if len(data)])
    return ObjectDataset(
        points=[p for data in datasets for p in data.points],
        labels=np.concatenate([np.asarray(d.labels, np.int64) for d in datasets]),
        distance=np.concatenate([np.asarray(d.distance, np.float32) for d in datasets]),
        seeds=np.concatenate([np.asarray(d.seeds, np.int64) for d in datasets]),
        class_names=names)


def _summary(path: Path, dataset: ObjectDataset) -> str:
    counts = np.bincount(dataset.labels, minlength=len(dataset.class_names))
    return f'{path}: {len(dataset)} objects; ' + ', '.join(
        f'{n} {c}' for n, c in zip(dataset.class_names, counts))


def _read_frame_list(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise FileNotFoundError(f'{path}: cannot read the frame list ({exc.strerror})') from exc


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``pointcam_dataset --kitti`` / ``--merge``."""
    parser = argparse.ArgumentParser(
        prog='pointcam_dataset',
        description='Build an object data set from labelled real scans in the KITTI object '
        'format (--kitti), or merge data sets (--merge). Simulated data: pointcam_dataset '
        '--split ...')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--kitti', type=Path, metavar='ROOT',
                        help='KITTI-format folder with velodyne/, label_2/, calib/ (or with '
                        'training/ holding them)')
    source.add_argument('--merge', type=Path, nargs='+', metavar='NPZ',
                        help='data sets (.npz) to concatenate, e.g. simulated + KITTI')
    parser.add_argument('--out', type=Path, required=True, help='data set to write (.npz)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --out')
    kitti = parser.add_argument_group('--kitti options')
    kitti.add_argument('--frame-list', type=Path, metavar='TXT',
                       help='only these frames: one name per line, e.g. KITTI '
                       'ImageSets/train.txt (default: every scan in velodyne/)')
    kitti.add_argument('--min-points', type=int,
                       help='smallest labelled object kept, in points the pipeline sees, and '
                       'smallest cluster (default: min_cluster_points of --params, else '
                       f'{PipelineConfig.min_cluster_points})')
    kitti.add_argument('--params', type=Path,
                       help='pipeline parameter file (YAML) whose segmentation cuts the '
                       'scans (default: the pipeline defaults)')
    kitti.add_argument('--image-size', type=int, nargs=2, default=(1242, 375),
                       metavar=('WIDTH', 'HEIGHT'),
                       help='camera image size in pixels (default: %(default)s, KITTI)')
    kitti.add_argument('--no-background', action='store_true',
                       help='leave out the background clusters (KITTI labels no poles or '
                       'trees, so its background holds them)')
    kitti.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pointcam_dataset --kitti ROOT`` or ``--merge A B ...``; print a summary."""
    parser = build_parser()
    args = parser.parse_args(argv)
    inputs = {'--kitti': args.kitti, '--frame-list': args.frame_list, '--params': args.params}
    inputs.update({f'--merge #{i}': path for i, path in enumerate(args.merge or (), start=1)})
    problem = check_outputs([Output('--out', args.out, '--out')], inputs, args.force)
    if problem:
        parser.error(problem)
    if args.min_points is not None and args.min_points < 1:
        parser.error('--min-points must be >= 1')
    try:
        if args.merge:
            parts = [load_dataset(path) for path in args.merge]
            dataset = merge_datasets(parts)
            save_dataset(dataset, args.out)
            print(_summary(args.out, dataset) + f' (merged from {len(parts)} files: ' +
                  ', '.join(f'{p} {len(d)}' for p, d in zip(args.merge, parts)) + ')')
            return 0
        from pointcam_ros.learn.kitti import build_kitti_dataset
        config = PipelineConfig.from_yaml(args.params) if args.params else PipelineConfig()
        min_points = args.min_points or config.min_cluster_points
        config = config.replace(min_cluster_points=min_points)
        frames = _read_frame_list(args.frame_list) if args.frame_list else None
        dataset, stats = build_kitti_dataset(
            args.kitti, min_points, config, tuple(args.image_size),
            background=not args.no_background, frames=frames, progress=not args.no_progress)
    except (OSError, ValueError) as exc:
        print(f'pointcam_dataset: error: {exc}', file=sys.stderr)
        return 1
    save_dataset(dataset, args.out)
    print(_summary(args.out, dataset) + f' from {stats.frames} KITTI frames; not used: '
          f'{stats.too_few_points} labelled objects with < {min_points} visible points, '
          f'{stats.skipped_types} of skipped types (Misc, Tram)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
