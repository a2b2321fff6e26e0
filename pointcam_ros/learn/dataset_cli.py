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
``pointcam_dataset``: build an object data set (.npz), one subcommand per source.

    pointcam_dataset sim --split train --scenes 1500 --out data/train.npz
    pointcam_dataset kitti ~/kitti --frame-list ImageSets/train.txt --out data/kitti_train.npz
    pointcam_dataset merge data/train.npz data/kitti_train.npz --out data/mixed_train.npz

``sim`` simulates scenes of one split (:func:`~pointcam_ros.learn.dataset.build_dataset`),
``kitti`` cuts a KITTI-format folder (read by :mod:`pointcam_ros.formats.kitti`,
cut by :mod:`pointcam_ros.learn.kitti`), ``merge`` concatenates data sets.
The flag forms of earlier versions (``--split ...``, ``--kitti ROOT``,
``--merge A B``) still run, with a deprecation note on stderr.

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
from pointcam_ros.learn.dataset import build_dataset, load_dataset, ObjectDataset
from pointcam_ros.learn.dataset import point_columns, save_dataset, SPLIT_SEEDS


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


def _summary(path: Path, dataset: ObjectDataset, source: str = '') -> str:
    """One line: ``path``, the objects (from ``source``) and their count per class."""
    counts = np.bincount(dataset.labels, minlength=len(dataset.class_names))
    return f'{path}: {len(dataset)} objects{source}; ' + ', '.join(
        f'{n} {c}' for n, c in zip(dataset.class_names, counts))


def _read_frame_list(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise FileNotFoundError(f'{path}: cannot read the frame list ({exc.strerror})') from exc


#: The subcommands, one per source of objects.
COMMANDS = ('sim', 'kitti', 'merge')


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``pointcam_dataset {sim,kitti,merge}``."""
    parser = argparse.ArgumentParser(
        prog='pointcam_dataset',
        description='Build a labelled object data set (.npz): from simulated scenes (sim), '
        'from labelled real scans in the KITTI object format (kitti), or by merging data '
        'sets (merge). pointcam_dataset COMMAND --help shows the options of each.')
    outputs = argparse.ArgumentParser(add_help=False)
    outputs.add_argument('--out', type=Path, required=True, help='data set to write (.npz)')
    outputs.add_argument('--force', action='store_true', help='overwrite an existing --out')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    sim = commands.add_parser(
        'sim', parents=[outputs], help='simulate scenes of one split (needs open3d)',
        description='Build a labelled object data set from simulated LiDAR scans.')
    sim.add_argument('--split', choices=sorted(SPLIT_SEEDS), required=True)
    sim.add_argument('--scenes', type=int, required=True)
    sim.add_argument('--min-points', type=int, default=PipelineConfig.min_cluster_points,
                     help='smallest object kept (default: the pipeline default)')
    sim.add_argument('--scene-kinds', nargs='+', metavar='KIND',
                     help='street, campus and/or open (default: a mix of all three)')
    sim.add_argument('--first-scene', type=int, default=0,
                     help="the split's first scene to use (default 0): sets built from "
                     'disjoint scenes of one split')
    sim.add_argument('--segmentation', choices=('voxel', 'range'),
                     default=PipelineConfig.segmentation,
                     help='segmentation design that cuts the objects out (default: the '
                     "pipeline's)")
    kitti = commands.add_parser(
        'kitti', parents=[outputs], help='cut labelled scans in the KITTI object format',
        description='Build an object data set from labelled real scans in the KITTI object '
        'format.')
    kitti.add_argument('root', type=Path, metavar='ROOT',
                       help='KITTI-format folder with velodyne/, label_2/, calib/ (or with '
                       'training/ holding them)')
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
    merge = commands.add_parser(
        'merge', parents=[outputs], help='concatenate data sets with the same classes',
        description='Concatenate data sets (.npz) with the same class list, in order, e.g. '
        'simulated + KITTI.')
    merge.add_argument('inputs', type=Path, nargs='+', metavar='NPZ',
                       help='data sets to concatenate')
    for command, run in ((sim, _sim), (kitti, _kitti), (merge, _merge)):
        command.set_defaults(run=run, command_parser=command)
    return parser


def modern_argv(argv: Sequence[str]) -> Optional[list[str]]:
    """
    Rewrite a flag-form command line of earlier versions as a subcommand one, or None.

    ``--split ... --scenes ...`` becomes ``sim ...``, ``--kitti ROOT ...``
    becomes ``kitti ROOT ...`` and ``--merge A B ...`` becomes ``merge A B
    ...``. None when ``argv`` is not of the old form (a subcommand, help,
    or nothing).
    """
    argv = list(argv)
    flags = [arg.split('=', 1)[0] for arg in argv]
    if not argv or argv[0] in COMMANDS or argv[0] in ('-h', '--help'):
        return None
    for flag, command in (('--kitti', 'kitti'), ('--merge', 'merge')):
        if flag not in flags:
            continue
        at = flags.index(flag)
        if '=' in argv[at]:
            return [command, argv[at].split('=', 1)[1], *argv[:at], *argv[at + 1:]]
        end = at + 1
        while end < len(argv) and not argv[end].startswith('-') and (
                command == 'merge' or end == at + 1):
            end += 1
        return [command, *argv[at + 1:end], *argv[:at], *argv[end:]]
    if '--split' in flags or '--scenes' in flags:
        return ['sim', *argv]
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pointcam_dataset sim``, ``kitti ROOT`` or ``merge A B ...``; print a summary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    modern = modern_argv(argv)
    if modern is not None:
        print(f'pointcam_dataset: the flag form is deprecated; use: pointcam_dataset '
              f'{" ".join(modern)}', file=sys.stderr)
        argv = modern
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.run(args, args.command_parser)


def _refuse_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    inputs: Mapping[str, Optional[Path]]) -> None:
    """Exit with a usage error if ``--out`` may not be written (before any work)."""
    problem = check_outputs([Output('--out', args.out, '--out')], inputs, args.force)
    if problem:
        parser.error(problem)


def _sim(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``pointcam_dataset sim``: simulate ``--scenes`` scenes of ``--split``."""
    _refuse_outputs(parser, args, {})  # before the first scene is simulated
    if args.scenes < 1 or args.first_scene < 0 or args.first_scene + args.scenes > 1_000_000:
        parser.error("need --scenes >= 1 and --first-scene >= 0 within the split's "
                     '1,000,000 scenes')
    start = SPLIT_SEEDS[args.split] + args.first_scene
    dataset = build_dataset(range(start, start + args.scenes), min_points=args.min_points,
                            kinds=args.scene_kinds, segmentation=args.segmentation)
    save_dataset(dataset, args.out)
    print(_summary(args.out, dataset, f' from {args.scenes} scenes'))
    return 0


def _merge(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``pointcam_dataset merge A B ...``: concatenate data sets."""
    _refuse_outputs(parser, args, {f'input #{i}': path
                                   for i, path in enumerate(args.inputs, start=1)})
    try:
        parts = [load_dataset(path) for path in args.inputs]
        dataset = merge_datasets(parts)
    except (OSError, ValueError) as exc:
        print(f'pointcam_dataset: error: {exc}', file=sys.stderr)
        return 1
    save_dataset(dataset, args.out)
    print(_summary(args.out, dataset) + f' (merged from {len(parts)} files: ' +
          ', '.join(f'{p} {len(d)}' for p, d in zip(args.inputs, parts)) + ')')
    return 0


def _kitti(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``pointcam_dataset kitti ROOT``: cut a KITTI-format folder into objects."""
    _refuse_outputs(parser, args, {'ROOT': args.root, '--frame-list': args.frame_list,
                                   '--params': args.params})
    if args.min_points is not None and args.min_points < 1:
        parser.error('--min-points must be >= 1')
    try:
        from pointcam_ros.learn.kitti import build_kitti_dataset
        config = PipelineConfig.from_yaml(args.params) if args.params else PipelineConfig()
        min_points = args.min_points or config.min_cluster_points
        config = config.replace(min_cluster_points=min_points)
        frames = _read_frame_list(args.frame_list) if args.frame_list else None
        dataset, stats = build_kitti_dataset(
            args.root, min_points, config, tuple(args.image_size),
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
