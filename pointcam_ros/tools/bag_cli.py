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
``pointcam_bag``: explain a recorded drive offline, bag in, bag out (the command line).

One bag (or several read as one recording with ``--merge``): OUTPUT is the
explained bag, written by :func:`~pointcam_ros.tools.bag_tool.explain_bag`
(see :mod:`pointcam_ros.tools.bag_tool` for what is read and written).

    pointcam_bag drive_bag -o drive_explained [--params config/pointcam.yaml]

Several bags, a folder of bags or ``--each``: OUTPUT is a folder with one
explained bag per input and ``summary.json``, on ``--jobs N`` local worker
processes or a Ray cluster (``--ray``); see :mod:`pointcam_ros.tools.fleet`.

    pointcam_bag drives/ -o explained/ --jobs 4 [--resume]
    pointcam_bag drives/*.bag -o explained/ --ray auto --gpus-per-task 0.5

Exit codes: 0 done, 1 an error (or, with several bags, a failed bag), 2 a
usage error (nothing was processed or written), 130 interrupted.
"""

import argparse
import logging
from pathlib import Path
import signal
import sys
from typing import Optional, Sequence

from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import BagExistsError
from pointcam_ros.model.checkpoint import CheckpointError
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.tools.bag_tool import (
    BagError, explain_bag, Interrupted, output_topics, UsageError)
from pointcam_ros.tools.fleet import (
    Backend, explain_bags, FleetError, FleetOptions, is_folder_of_bags, LocalBackend, RayBackend,
    SUMMARY_NAME)

LOG = logging.getLogger('pointcam_bag')


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _positive_int(text: str) -> int:
    """Parse an ``argparse`` integer of at least 1 (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be an integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Explain the PointCloud2 scans of rosbags with Grad-CAM. One bag: OUTPUT '
                    'is the explained bag. Several bags, a folder of bags, or --each: OUTPUT '
                    'is a folder that gets one explained bag per input (named after it) and '
                    'summary.json.')
    parser.add_argument('inputs', nargs='+', type=Path,
                        help='rosbag2 folder(s) (MCAP or SQLite3), ROS 1 .bag file(s), or '
                             'folder(s) of bags')
    parser.add_argument('-o', '--output', type=Path, required=True,
                        help='output rosbag2 (MCAP) folder, or with several bags the output '
                             'folder; an output bag must not exist')
    parser.add_argument('--topics', nargs='+', default=[],
                        help='PointCloud2 topics (default: the only one in the bag that is '
                             'not a pointcam output)')
    parser.add_argument('--params', type=Path,
                        help='node parameter YAML (default: the shipped defaults)')
    parser.add_argument('--model', help='checkpoint; overrides model_path of --params')
    parser.add_argument('--device', help='auto, cpu, cuda; overrides --params')
    parser.add_argument('--cpu-threads', type=int,
                        help='torch threads on the CPU; overrides --params (several bags: '
                             'default cores / jobs per worker)')
    parser.add_argument('--copy-inputs', action='store_true',
                        help='copy the input scans into the output bag too')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an earlier pointcam_bag explanation (once the new one '
                             'is complete) that holds only its own files; recordings, links '
                             'and anything else are never replaced')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    fleet = parser.add_argument_group('several bags')
    fleet.add_argument('--each', action='store_true',
                       help='one output bag per input inside the OUTPUT folder, even for one '
                            'bag (implied by several inputs or a folder of bags)')
    fleet.add_argument('--merge', action='store_true',
                       help='read several inputs as one recording (e.g. split ROS 1 bags) '
                            'into one output bag, as before')
    fleet.add_argument('--jobs', type=_positive_int,
                       help='worker processes (default 1; with --ray: as many as the '
                            "cluster's CPUs or GPUs allow)")
    fleet.add_argument('--resume', action='store_true',
                       help='skip bags whose complete output exists and was explained from '
                            'the same input (path, file sizes and times); redo the others')
    fleet.add_argument('--ray', nargs='?', const='', metavar='ADDRESS',
                       help="run on a Ray cluster: 'auto', an address, or none for a local "
                            'one (put it after the bags, or write --ray=ADDRESS)')
    fleet.add_argument('--gpus-per-task', type=float, default=0.0,
                       help='with --ray: GPUs per worker (they then use device cuda)')
    fleet.add_argument('--cpus-per-task', type=float, default=1.0,
                       help='with --ray: CPUs per worker (and its torch threads)')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line of ``pointcam_bag``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.each and args.merge:
        parser.error('--each and --merge exclude each other')
    several = args.each or (len(args.inputs) > 1 and not args.merge) or (
        len(args.inputs) == 1 and is_folder_of_bags(args.inputs[0]) and not args.merge)
    fleet_only = [name for name, given in (
        ('--jobs', args.jobs is not None), ('--resume', args.resume),
        ('--ray', args.ray is not None), ('--gpus-per-task', bool(args.gpus_per_task)))
        if given]
    if args.ray is None and (args.gpus_per_task or args.cpus_per_task != 1.0):
        parser.error('--gpus-per-task and --cpus-per-task are for --ray; local workers use '
                     '--jobs, --device and --cpu-threads')
    if fleet_only and not several:
        parser.error(f'{", ".join(fleet_only)} explain several bags into a folder: give '
                     'several bags, a folder of bags, or --each')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    if args.topics:
        try:
            output_topics(args.topics, args.copy_inputs)
        except UsageError as exc:
            return _usage_error(parser, exc)
    previous = {signum: signal.signal(signum, _raise_interrupted)
                for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:  # main() may run inside another program (tests, notebooks): restore its handlers
        return _main_several(args) if several else _main_one(args)
    except UsageError as exc:
        return _usage_error(parser, exc)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _usage_error(parser: argparse.ArgumentParser, exc: Exception) -> int:
    """Report a command that cannot work as argparse does (usage line, exit code 2)."""
    parser.print_usage(sys.stderr)
    LOG.error('%s', exc)
    return 2


def _main_one(args: argparse.Namespace) -> int:
    """Explain one bag (or several read as one recording) into ``args.output``."""
    try:
        pipeline = ScenePipeline(_config(args))
        summary = explain_bag(args.inputs, args.output, pipeline, args.topics,
                              args.copy_inputs, args.overwrite, progress=not args.quiet)
    except UsageError:
        raise
    except (BagError, BagExistsError, CheckpointError, ValueError, OSError) as exc:
        LOG.error('%s', exc)
        return 1
    except KeyboardInterrupt as exc:
        LOG.error('interrupted (%s): no output was written', str(exc) or 'SIGINT')
        return 130
    print(summary.describe())
    print(f'wrote {args.output}')
    return 0


def _config(args: argparse.Namespace) -> PipelineConfig:
    """--params, then --model, --device and --cpu-threads on top."""
    config = PipelineConfig.from_yaml(args.params) if args.params else PipelineConfig()
    changes = {k: v for k, v in (('model_path', args.model), ('device', args.device),
                                 ('cpu_threads', args.cpu_threads)) if v is not None}
    return config.replace(**changes)


def _main_several(args: argparse.Namespace) -> int:
    """Explain each bag into the folder ``args.output``; 1 if any bag failed."""
    options = FleetOptions(tuple(args.topics), args.copy_inputs, args.overwrite, args.resume,
                           progress=not args.quiet)
    try:
        config = _config(args)
        if args.ray is not None:
            backend: Backend = RayBackend(args.ray or None, args.jobs, args.gpus_per_task,
                                          args.cpus_per_task)
        else:
            backend = LocalBackend(args.jobs or 1)
        summary = explain_bags(args.inputs, args.output, config, options, backend)
    except UsageError:
        raise
    except (FleetError, BagExistsError, CheckpointError, ValueError, OSError) as exc:
        LOG.error('%s', exc)
        return 1
    except KeyboardInterrupt as exc:
        LOG.error('interrupted (%s): finished bags are kept, unfinished ones left no output; '
                  'see %s; rerun with --resume to go on', str(exc) or 'SIGINT',
                  args.output / SUMMARY_NAME)
        return 130
    print(summary.describe())
    print(f'wrote {args.output / SUMMARY_NAME}')
    return 1 if summary.count('failed') else 0


if __name__ == '__main__':
    sys.exit(main())
