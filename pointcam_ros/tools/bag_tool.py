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
only read; the output appears under its name only when complete.

    pointcam_bag drive_bag -o drive_explained [--params config/pointcam.yaml]
"""

import argparse
from collections import Counter
from dataclasses import dataclass, field
import logging
from pathlib import Path
import signal
import time
from typing import Optional, Sequence

from pointcam_ros.common.config import output_prefix, PipelineConfig
from pointcam_ros.formats.bag_io import (
    BagExistsError, check_output, MARKER_ARRAY, POINTCLOUD2, rosbags_cloud, rosbags_markers,
    SafeBagWriter, typestore)
from pointcam_ros.formats.cloud_io import CloudFormatError
from pointcam_ros.formats.markers import object_markers
from pointcam_ros.model.checkpoint import CheckpointError
from pointcam_ros.perception.pipeline import ScanError, ScenePipeline
from rosbags.highlevel import AnyReader
from tqdm import tqdm

LOG = logging.getLogger('pointcam_bag')


class BagError(RuntimeError):
    """An input bag that cannot be read to the end; says which bag and how far it got."""


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

    def describe(self) -> str:
        """Printable summary."""
        per_class = ', '.join(f'{n} {c}' for c, n in self.objects.most_common()) or 'none'
        mean = 1e3 * self.pipeline_seconds / self.scans if self.scans else 0.0
        rate = self.scans / self.total_seconds if self.total_seconds else 0.0
        return (f'{self.scans} scans ({self.rejected} rejected), objects: {per_class}\n'
                f'pipeline {mean:.1f} ms/scan, overall {rate:.2f} scans/s, '
                f'device {self.device}')


def select_topics(reader: AnyReader, wanted: Sequence[str]) -> list[str]:
    """PointCloud2 topics to process: ``wanted``, or the only one; ValueError otherwise."""
    clouds = sorted({c.topic for c in reader.connections if c.msgtype == POINTCLOUD2})
    if wanted:
        missing = [t for t in wanted if t not in clouds]
        if missing:
            raise ValueError(f'topics {missing} are not PointCloud2 topics of the bag; it has '
                             f'{clouds or "none"}')
        return list(wanted)
    if len(clouds) == 1:
        return clouds
    if not clouds:
        raise ValueError('the bag has no sensor_msgs/msg/PointCloud2 topic')
    raise ValueError(f'the bag has several PointCloud2 topics {clouds}: choose with --topics')


def explain_bag(inputs: Sequence[Path], output: Path, pipeline: ScenePipeline,
                topics: Sequence[str] = (), copy_inputs: bool = False,
                overwrite: bool = False, progress: bool = True) -> BagSummary:
    """
    Run ``pipeline`` over the PointCloud2 scans of ``inputs``; write ``output`` (MCAP).

    Raises :class:`BagError` when an input cannot be read (nothing is written),
    ``BagExistsError`` when ``output`` exists and is not to be replaced (see
    :func:`~pointcam_ros.formats.bag_io.check_output`), and ValueError for a bad topic
    choice or an output that is, contains or lies inside an input. A message
    that cannot be deserialised is counted as rejected and skipped.
    """
    output = Path(output)
    check_output(output, inputs, overwrite)
    summary = BagSummary(device=str(pipeline.device))
    started = time.perf_counter()
    store = typestore()
    processed_until = 'the start'
    try:
        reader = AnyReader([Path(p) for p in inputs], default_typestore=store)
        reader.open()
    except Exception as exc:  # noqa: B902 - rosbags raises many types for broken files
        raise BagError(f'{", ".join(map(str, inputs))}: cannot open, the bag is truncated or '
                       f'corrupt ({exc}); nothing was processed or written') from exc
    try:
        chosen = select_topics(reader, topics)
        prefixes = {t: '/' + output_prefix(t, len(chosen) > 1) for t in chosen}
        connections = [c for c in reader.connections if c.topic in chosen]
        total = sum(c.msgcount for c in connections)
        with SafeBagWriter(output, overwrite=overwrite, store=store, inputs=inputs) as writer:
            bar = tqdm(total=total, unit='scan', disable=not progress, desc='explaining')
            messages = reader.messages(connections=connections)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line of ``pointcam_bag``."""
    parser = argparse.ArgumentParser(
        description='Explain the PointCloud2 scans of a rosbag with Grad-CAM.')
    parser.add_argument('inputs', nargs='+', type=Path,
                        help='rosbag2 folder (MCAP or SQLite3) or ROS 1 .bag file(s)')
    parser.add_argument('-o', '--output', type=Path, required=True,
                        help='output rosbag2 (MCAP) folder; must not exist')
    parser.add_argument('--topics', nargs='+', default=[],
                        help='PointCloud2 topics (default: the only one in the bag)')
    parser.add_argument('--params', type=Path,
                        help='node parameter YAML (default: the shipped defaults)')
    parser.add_argument('--model', help='checkpoint; overrides model_path of --params')
    parser.add_argument('--device', help='auto, cpu, cuda; overrides --params')
    parser.add_argument('--copy-inputs', action='store_true',
                        help='copy the input scans into the output bag too')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an earlier pointcam_bag output (once the new one is '
                             'complete; nothing else is ever replaced)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    try:
        config = PipelineConfig.from_yaml(args.params) if args.params else PipelineConfig()
        changes = {k: v for k, v in (('model_path', args.model), ('device', args.device))
                   if v is not None}
        config = config.replace(**changes)
        pipeline = ScenePipeline(config)
        summary = explain_bag(args.inputs, args.output, pipeline, args.topics,
                              args.copy_inputs, args.overwrite, progress=not args.quiet)
    except (BagError, BagExistsError, CheckpointError, ValueError, OSError) as exc:
        LOG.error('%s', exc)
        return 1
    except KeyboardInterrupt as exc:
        LOG.error('interrupted (%s): no output was written', exc or 'SIGINT')
        return 130
    print(summary.describe())
    print(f'wrote {args.output}')
    return 0
