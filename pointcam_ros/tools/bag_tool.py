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
``pointcam_bag``: explain a recorded drive offline, bag in, bag out.

Reads rosbag2 bags (MCAP or SQLite3) or ROS 1 ``.bag`` files with
``rosbags`` (no ROS install needed), runs the same :class:`ScenePipeline`
and configuration as the node on every PointCloud2 scan, and writes a new
rosbag2 MCAP bag with the saliency clouds and label markers on the node's
topic names (``/pointcam/saliency``, ``/pointcam/labels``; with several
input topics ``/pointcam/<topic>/...``), stamped with the original
timestamps; ``--copy-inputs`` copies the input topics too. The input is
only read; the output appears under its name only when complete. Input
topics are the bag's PointCloud2 topics that are not pointcam outputs
(:func:`is_pointcam_topic`), so a bag recorded next to the node works too.

    pointcam_bag drive_bag -o drive_explained [--params config/pointcam.yaml]

Several bags, a folder of bags or ``--each``: OUTPUT is a folder with one
explained bag per input and ``summary.json``, on ``--jobs N`` local worker
processes or a Ray cluster (``--ray``); see :mod:`pointcam_ros.tools.fleet`.

    pointcam_bag drives/ -o explained/ --jobs 4 [--resume]
    pointcam_bag drives/*.bag -o explained/ --ray auto --gpus-per-task 0.5
"""

import argparse
from collections import Counter
from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import signal
import sys
import time
from typing import Callable, Optional, Sequence

from pointcam_ros.common.config import ConfigError, output_prefixes, PipelineConfig
from pointcam_ros.formats.bag_io import (
    BagExistsError, check_output, EXPLANATION, is_bag, MARKER_ARRAY, POINTCLOUD2,
    rosbags_cloud, rosbags_markers, SafeBagWriter, typestore)
from pointcam_ros.formats.cloud_io import CloudFormatError
from pointcam_ros.formats.markers import object_markers
from pointcam_ros.model.checkpoint import CheckpointError
from pointcam_ros.perception.pipeline import ScanError, ScenePipeline
from rosbags.highlevel import AnyReader
import torch
from tqdm import tqdm

LOG = logging.getLogger('pointcam_bag')


class BagError(RuntimeError):
    """An input bag that cannot be read to the end; says which bag and how far it got."""


class UsageError(ValueError):
    """
    The command asks for something that cannot work (clashing names or topics).

    Found before any work: nothing was processed or written. The command
    line reports it as a usage error (exit code 2).
    """


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C, so the partial output is removed."""


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


@dataclass
class BagSummary:
    """What a run did."""

    scans: int = 0
    rejected: int = 0
    objects: Counter = field(default_factory=Counter)
    pipeline_seconds: float = 0.0
    total_seconds: float = 0.0
    device: str = ''
    cpu_threads: int = 0  # torch threads the run used (torch.get_num_threads())

    def describe(self) -> str:
        """Printable summary."""
        per_class = ', '.join(f'{n} {c}' for c, n in self.objects.most_common()) or 'none'
        mean = 1e3 * self.pipeline_seconds / self.scans if self.scans else 0.0
        rate = self.scans / self.total_seconds if self.total_seconds else 0.0
        return (f'{self.scans} scans ({self.rejected} rejected), objects: {per_class}\n'
                f'pipeline {mean:.1f} ms/scan, overall {rate:.2f} scans/s, '
                f'device {self.device}, {self.cpu_threads} torch threads')


def is_pointcam_topic(topic: str) -> bool:
    """
    Tell whether ``topic`` is an output of pointcam rather than a sensor's.

    That is any topic under a ``pointcam`` namespace, at any depth:
    ``/pointcam/saliency``, ``/pointcam/front_points/saliency``,
    ``/robot/pointcam/saliency``.
    """
    return 'pointcam' in [p for p in topic.split('/') if p][:-1]


def select_topics(reader: AnyReader, wanted: Sequence[str]) -> list[str]:
    """
    PointCloud2 topics to process: ``wanted``, or the only sensor topic; ValueError otherwise.

    pointcam's own outputs (:func:`is_pointcam_topic`) are never chosen
    automatically, so an explained bag, or one recorded next to the node,
    still has a single input; name them in ``wanted`` to explain them anyway.
    """
    clouds = sorted({c.topic for c in reader.connections if c.msgtype == POINTCLOUD2})
    if wanted:
        missing = [t for t in wanted if t not in clouds]
        if missing:
            raise ValueError(f'topics {missing} are not PointCloud2 topics of the bag; it has '
                             f'{clouds or "none"}')
        return list(wanted)
    sensors = [t for t in clouds if not is_pointcam_topic(t)]
    outputs = sorted(set(clouds) - set(sensors))
    if len(sensors) == 1:
        return sensors
    if not sensors and outputs:
        raise ValueError(f'the bag has only pointcam output topics {outputs} (it is already '
                         'explained): name them with --topics to explain them anyway')
    if not sensors:
        raise ValueError('the bag has no sensor_msgs/msg/PointCloud2 topic')
    ignored = f' (pointcam outputs {outputs} are ignored)' if outputs else ''
    raise ValueError(f'the bag has several PointCloud2 topics {sensors}{ignored}: choose '
                     'with --topics')


OUTPUT_SUFFIXES = ('saliency', 'labels')
"""Topics written under each input's output namespace."""


def output_topics(topics: Sequence[str], copy_inputs: bool = False) -> dict[str, str]:
    """
    Output namespace (``/pointcam`` or ``/pointcam/<topic>``) of each input topic.

    Raises :class:`UsageError` when two input topics map to one namespace
    (``/lidar/front`` and ``/lidar_front``, see
    :func:`~pointcam_ros.common.config.output_prefixes`), or when
    ``copy_inputs`` would copy an input onto a topic that also gets an
    explanation (``--topics /pointcam/saliency --copy-inputs``).
    """
    try:
        prefixes = {t: '/' + p for t, p in output_prefixes(list(topics), '--topics').items()}
    except ConfigError as exc:
        raise UsageError(f'{exc}; nothing was processed or written') from exc
    if copy_inputs:
        written = {f'{p}/{s}' for p in prefixes.values() for s in OUTPUT_SUFFIXES}
        shared = sorted(t for t in topics if t in written)
        if shared:
            raise UsageError(f'--copy-inputs would copy {", ".join(shared)} onto the topic(s) '
                             'its explanation is written to: drop --copy-inputs, or explain '
                             'another topic; nothing was processed or written')
    return prefixes


def check_inputs(inputs: Sequence[Path]) -> None:
    """
    Raise :class:`BagError` for an input that does not exist or is not a bag.

    A bag is a rosbag2 folder holding ``metadata.yaml`` or a ROS 1 ``.bag``
    file (:func:`~pointcam_ros.formats.bag_io.is_bag`); whether its contents
    can be read is found out when it is opened.
    """
    for path in map(Path, inputs):
        if not os.path.lexists(path):
            raise BagError(f'{path} does not exist: check the path; nothing was processed '
                           'or written')
        if is_bag(path):
            continue
        if path.is_dir() and any(is_bag(p) for p in path.iterdir()):
            hint = ('it is a folder of bags: explain each into a folder with '
                    f'pointcam_bag {path} -o OUT_DIR')
        elif path.is_dir():
            hint = ('a folder needs the metadata.yaml of rosbag2 (a recording that was cut '
                    'off may lack it: recreate it with `ros2 bag reindex`)')
        elif path.suffix in ('.mcap', '.db3'):
            hint = 'give the folder that holds it and its metadata.yaml'
        else:
            hint = 'give a rosbag2 folder (with metadata.yaml) or a ROS 1 .bag file'
        raise BagError(f'{path} is not a rosbag: {hint}; nothing was processed or written')


def explain_bag(inputs: Sequence[Path], output: Path, pipeline: ScenePipeline,
                topics: Sequence[str] = (), copy_inputs: bool = False,
                overwrite: bool = False, progress: bool = True,
                on_scan: Optional[Callable[[int, int], None]] = None,
                desc: str = 'explaining') -> BagSummary:
    """
    Run ``pipeline`` over the PointCloud2 scans of ``inputs``; write ``output`` (MCAP).

    Several ``inputs`` are read as one recording (e.g. split ROS 1 bags),
    merged by time. ``progress`` shows a bar titled ``desc``; ``on_scan(done,
    total)`` is called after every input message (for a scheduler's own display).

    Raises :class:`BagError` when an input is missing, is not a bag or cannot
    be read (nothing is written),
    ``BagExistsError`` when ``output`` exists and is not to be replaced (see
    :func:`~pointcam_ros.formats.bag_io.check_output`), :class:`UsageError` for
    topics whose outputs would clash (:func:`output_topics`), and ValueError for
    a bad topic choice or an output that is, contains or lies inside an input;
    all before any scan is processed. A message that cannot be deserialised is
    counted as rejected and skipped. The output is marked as an explanation of
    ``inputs`` (what ``--overwrite`` may replace and ``--resume`` compares).
    """
    output = Path(output)
    check_output(output, inputs, overwrite)
    resolved = [Path(p).resolve() for p in inputs]
    twice = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if twice:
        raise UsageError(f'{", ".join(twice)} given more than once (its scans would be read '
                         'twice): give each bag once; nothing was processed or written')
    summary = BagSummary(device=str(pipeline.device), cpu_threads=torch.get_num_threads())
    started = time.perf_counter()
    store = typestore()
    processed_until = 'the start'
    check_inputs(inputs)
    try:
        reader = AnyReader([Path(p) for p in inputs], default_typestore=store)
        reader.open()
    except Exception as exc:  # noqa: B902 - rosbags raises many types for broken files
        raise BagError(f'{", ".join(map(str, inputs))}: cannot open, the bag is truncated or '
                       f'corrupt ({exc}); nothing was processed or written') from exc
    try:
        chosen = select_topics(reader, topics)
        prefixes = output_topics(chosen, copy_inputs)
        connections = [c for c in reader.connections if c.topic in chosen]
        total = sum(c.msgcount for c in connections)
        with SafeBagWriter(output, overwrite=overwrite, store=store, inputs=inputs,
                           kind=EXPLANATION) as writer:
            bar = tqdm(total=total, unit='scan', disable=not progress, desc=desc)
            messages = reader.messages(connections=connections)
            seen = 0
            while True:
                try:
                    connection, timestamp, rawdata = next(messages)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: B902 - rosbags raises many types
                    raise BagError(
                        f'{", ".join(map(str, inputs))} is truncated or corrupt ({exc}); '
                        f'{summary.scans} scans were processed, up to {processed_until}; '
                        'no output was written') from exc
                bar.update(1)
                seen += 1
                if on_scan is not None:
                    on_scan(seen, total)
                try:
                    msg = reader.deserialize(rawdata, connection.msgtype)
                except Exception as exc:  # noqa: B902 - rosbags raises many types
                    summary.rejected += 1
                    LOG.warning('skipping the message at %d ns on %s: it cannot be '
                                'deserialised as %s (%s)', timestamp, connection.topic,
                                connection.msgtype, exc)
                    continue
                if copy_inputs:
                    writer.write_raw(connection.topic, connection.msgtype, timestamp, rawdata)
                mark = time.perf_counter()
                try:
                    result, cloud = pipeline.process_cloud(msg)
                except (CloudFormatError, ScanError) as exc:
                    summary.rejected += 1
                    LOG.warning('skipping scan at %d ns on %s: %s', timestamp, connection.topic,
                                exc)
                    continue
                summary.pipeline_seconds += time.perf_counter() - mark
                prefix = prefixes[connection.topic]
                writer.write(f'{prefix}/saliency', POINTCLOUD2, timestamp,
                             rosbags_cloud(store, cloud, msg.header))
                writer.write(f'{prefix}/labels', MARKER_ARRAY, timestamp,
                             rosbags_markers(store, object_markers(result.objects), msg.header))
                summary.scans += 1
                summary.objects.update(o.class_name for o in result.objects)
                processed_until = f'{timestamp} ns'
            bar.close()
    finally:
        reader.close()
    summary.total_seconds = time.perf_counter() - started
    return summary


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
    fleet.add_argument('--jobs', type=int,
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
    from pointcam_ros.tools import fleet  # here: fleet imports this module
    if args.each and args.merge:
        parser.error('--each and --merge exclude each other')
    several = args.each or (len(args.inputs) > 1 and not args.merge) or (
        len(args.inputs) == 1 and fleet.is_folder_of_bags(args.inputs[0]) and not args.merge)
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
        return _main_several(args, fleet) if several else _main_one(args)
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


def _main_several(args: argparse.Namespace, fleet) -> int:
    """Explain each bag into the folder ``args.output``; 1 if any bag failed."""
    options = fleet.FleetOptions(tuple(args.topics), args.copy_inputs, args.overwrite,
                                 args.resume, progress=not args.quiet)
    try:
        config = _config(args)
        if args.ray is not None:
            backend = fleet.RayBackend(args.ray or None, args.jobs, args.gpus_per_task,
                                       args.cpus_per_task)
        else:
            backend = fleet.LocalBackend(args.jobs or 1)
        summary = fleet.explain_bags(args.inputs, args.output, config, options, backend)
    except UsageError:
        raise
    except (fleet.FleetError, BagExistsError, CheckpointError, ValueError, OSError) as exc:
        LOG.error('%s', exc)
        return 1
    except KeyboardInterrupt as exc:
        LOG.error('interrupted (%s): finished bags are kept, unfinished ones left no output; '
                  'see %s; rerun with --resume to go on', str(exc) or 'SIGINT',
                  args.output / fleet.SUMMARY_NAME)
        return 130
    print(summary.describe())
    print(f'wrote {args.output / fleet.SUMMARY_NAME}')
    return 1 if summary.count('failed') else 0


if __name__ == '__main__':
    sys.exit(main())
