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
``pointcam_bag``'s work: explain a recorded drive offline, bag in, bag out.

Reads rosbag2 bags (MCAP or SQLite3) or ROS 1 ``.bag`` files with
``rosbags`` (no ROS install needed), runs the same :class:`ScenePipeline`
and configuration as the node on every PointCloud2 scan, and writes a new
rosbag2 MCAP bag with the saliency clouds and label markers on the node's
topic names (``/pointcam/saliency``, ``/pointcam/labels``; with several
input topics ``/pointcam/<topic>/...``), stamped with the original
timestamps; ``copy_inputs`` copies the input topics too. The input is
only read; the output appears under its name only when complete. Input
topics are the bag's PointCloud2 topics that are not pointcam outputs
(:func:`is_pointcam_topic`), so a bag recorded next to the node works too.

The command line is :mod:`pointcam_ros.tools.bag_cli`; several bags at once
(a fleet's drives, on local processes or Ray) are
:mod:`pointcam_ros.tools.fleet`, which explains each with :func:`explain_bag`.
"""

from collections import Counter
from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import time
from typing import Callable, Optional, Sequence

from pointcam_ros.common.config import ConfigError, output_prefixes
from pointcam_ros.formats.bag_io import (
    check_output, EXPLANATION, is_bag, MARKER_ARRAY, POINTCLOUD2, rosbags_cloud,
    rosbags_markers, SafeBagWriter, typestore)
from pointcam_ros.formats.cloud_io import CloudFormatError
from pointcam_ros.formats.scan_io import explain_cloud
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
                    scan = explain_cloud(  # decode -> process -> encode
                        msg, pipeline.process, max_points=pipeline.config.max_input_points)
                except (CloudFormatError, ScanError) as exc:
                    summary.rejected += 1
                    LOG.warning('skipping scan at %d ns on %s: %s', timestamp, connection.topic,
                                exc)
                    continue
                summary.pipeline_seconds += time.perf_counter() - mark
                prefix = prefixes[connection.topic]
                writer.write(f'{prefix}/saliency', POINTCLOUD2, timestamp,
                             rosbags_cloud(store, scan.cloud, msg.header))
                writer.write(f'{prefix}/labels', MARKER_ARRAY, timestamp,
                             rosbags_markers(store, scan.markers, msg.header))
                summary.scans += 1
                summary.objects.update(o.class_name for o in scan.result.objects)
                processed_until = f'{timestamp} ns'
            bar.close()
    finally:
        reader.close()
    summary.total_seconds = time.perf_counter() - started
    return summary
