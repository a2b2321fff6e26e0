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
``pointcam_demo``: the simulated LiDAR and pointcam_node as two processes, recorded.

Starts ``pointcam_sim`` and ``pointcam_node``, waits for the first saliency
cloud of a scan the recorder received too (start-up is not counted), then
records the input scans, the saliency clouds, the label markers, the
simulator's ground truth and /diagnostics into a rosbag2 MCAP bag for
``--duration`` seconds. It then stops the
simulator, lets the node finish its last scan and report its final
diagnostics, writes a PNG snapshot of the last explained scan (top view
plus close-ups of the largest objects) and prints a summary: what the
recorder really received and over how long, what the node reports, drops,
end-to-end latency (scan stamp to saliency received) p50/p99 and per-class
accuracy of the labels against the simulator's ground truth.
``--model-path`` runs the node with a checkpoint of any model family (its
``model_path`` parameter); the summary names the family the node reports.

Bag topics are absolute and the same as ``pointcam_bag`` writes:
``/points``, ``/pointcam/saliency``, ``/pointcam/labels``,
``/pointcam_sim/ground_truth``, ``/diagnostics``.
"""

import argparse
from collections import defaultdict, deque
from dataclasses import dataclass, field
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from pointcam_ros.common.geometry import nearest_in_plane
from pointcam_ros.formats.bag_io import MARKER_ARRAY, POINTCLOUD2, SafeBagWriter
from pointcam_ros.formats.cloud_io import read_cloud
from pointcam_ros.ros.dds import use_large_data_profile
from pointcam_ros.tools.render import render_snapshot
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

POINTS = '/points'
SALIENCY = '/pointcam/saliency'
LABELS = '/pointcam/labels'
TRUTH = '/pointcam_sim/ground_truth'
DIAGNOSTICS = '/diagnostics'
TOPICS = {  # topic (absolute, as in the bag) -> (type, rosbag2 type name, QoS)
    POINTS: (PointCloud2, POINTCLOUD2, qos_profile_sensor_data),
    SALIENCY: (PointCloud2, POINTCLOUD2, None),
    LABELS: (MarkerArray, MARKER_ARRAY, None),
    TRUTH: (MarkerArray, MARKER_ARRAY, None),
    DIAGNOSTICS: (DiagnosticArray, 'diagnostic_msgs/msg/DiagnosticArray', None),
}
TEXT_VIEW_FACING = 9
#: Scan stamps the recorder remembers before it starts (60 s at 10 Hz): the first saliency
#: cloud starts the recording if it explains one of them, however slow the model.
SEEN_SCANS = 600


@dataclass
class Recording:
    """What the recorder saw (filled from the executor thread under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict = field(default_factory=lambda: defaultdict(int))
    #: topic -> [first, last] header stamp (ns) of the messages received.
    stamps: dict = field(default_factory=dict)
    #: topic -> [first, last] wall time (time.monotonic()) of reception.
    received: dict = field(default_factory=dict)
    latencies_ms: list = field(default_factory=list)
    truth: dict = field(default_factory=dict)  # stamp -> [(center, class)]
    labels: dict = field(default_factory=dict)  # stamp -> [(center, class)]
    label_texts: dict = field(default_factory=dict)  # stamp -> {object id: (center, text)}
    last_saliency: Optional[PointCloud2] = None
    diagnostics: dict = field(default_factory=dict)
    diagnostics_at: float = 0.0  # time.monotonic() when ``diagnostics`` arrived

    def last_received(self, topic: str) -> float:
        """Wall time (monotonic) of the last message on ``topic``; 0.0 if none."""
        with self.lock:
            return self.received.get(topic, (0.0, 0.0))[1]


def _stamp(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _header(msg: Any) -> Any:
    """Return the header of a message, or of a MarkerArray's first marker (None if none)."""
    if hasattr(msg, 'header'):
        return msg.header
    markers = getattr(msg, 'markers', None)
    return markers[0].header if markers else None


def _boxes(msg: MarkerArray) -> list[tuple[np.ndarray, str]]:
    out = []
    for marker in msg.markers:
        if marker.type == TEXT_VIEW_FACING and marker.text:
            name = marker.text.split()[1] if marker.text.startswith('gt ') else \
                marker.text.split()[0]
            p = marker.pose.position
            out.append((np.array([p.x, p.y, p.z]), name))
    return out


def _label_texts(msg: MarkerArray) -> dict[int, tuple[np.ndarray, str]]:
    """Object id (marker id) -> (text position (3,), text) of a label MarkerArray."""
    out = {}
    for marker in msg.markers:
        if marker.type == TEXT_VIEW_FACING and marker.text:
            p = marker.pose.position
            out[int(marker.id)] = (np.array([p.x, p.y, p.z]), marker.text)
    return out


def _span(pair: Optional[Sequence[float]]) -> float:
    return 0.0 if pair is None else pair[1] - pair[0]


class Recorder(Node):
    """Subscribes to the demo topics and writes every message to the bag."""

    def __init__(self, writer: SafeBagWriter, recording: Recording):
        super().__init__('pointcam_demo_recorder')
        self.writer = writer
        self.recording = recording
        # Set by the first saliency cloud of a scan this recorder received too.
        self.recording_on = threading.Event()
        # The last scans and ground truths before it, so the scan that first saliency
        # cloud explains (and those queued behind it) are recorded too.
        self._preroll: dict[str, deque] = {POINTS: deque(maxlen=20), TRUTH: deque(maxlen=20)}
        # Stamps of the scans received before it, longer: a slow model (DGCNN on a CPU,
        # seconds per scan) answers scans older than the preroll holds.
        self._seen_scans: deque = deque(maxlen=SEEN_SCANS)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for topic, (msg_type, bag_type, qos) in TOPICS.items():
            self.create_subscription(
                msg_type, topic,
                lambda msg, t=topic, b=bag_type: self.message_callback(t, b, msg),
                qos or reliable)

    def message_callback(self, topic: str, bag_type: str, msg: Any) -> None:
        """Record one message and the figures the summary needs."""
        now_ns, now = time.time_ns(), time.monotonic()
        if not self.recording_on.is_set():
            if topic in self._preroll:
                self._preroll[topic].append((topic, bag_type, msg, now_ns, now))
                if topic == POINTS:
                    self._seen_scans.append(_stamp(msg.header))
                return
            if topic != SALIENCY:
                return
            first = _stamp(msg.header)
            if not any(stamp <= first for stamp in self._seen_scans):
                # This recorder does not see the scans yet (its best-effort subscription
                # can match seconds after the node's): starting now would count saliency
                # clouds of scans it never received.
                return
            self.recording_on.set()  # the first explained scan it also saw starts it
            for queue in self._preroll.values():
                for item in queue:
                    header = _header(item[2])
                    if header is not None and _stamp(header) >= first:
                        self._record(*item)
            self._preroll.clear()
        self._record(topic, bag_type, msg, now_ns, now)

    def _record(self, topic: str, bag_type: str, msg: Any, now_ns: int, now: float) -> None:
        rec = self.recording
        with rec.lock:
            rec.counts[topic] += 1
            self.writer.write_raw(topic, bag_type, now_ns, serialize_message(msg))
            rec.received.setdefault(topic, [now, now])[1] = now
            header = _header(msg)
            if header is not None:
                stamp = _stamp(header)
                rec.stamps.setdefault(topic, [stamp, stamp])[1] = stamp
            if topic == SALIENCY:
                rec.latencies_ms.append((now_ns - _stamp(msg.header)) / 1e6)
                rec.last_saliency = msg
            elif topic == LABELS and msg.markers:
                stamp = _stamp(msg.markers[0].header)
                rec.labels[stamp] = _boxes(msg)
                rec.label_texts[stamp] = _label_texts(msg)
            elif topic == TRUTH and msg.markers:
                rec.truth[_stamp(msg.markers[0].header)] = _boxes(msg)
            elif topic == DIAGNOSTICS:
                for status in msg.status:
                    if status.name.endswith('pointcam: points'):
                        rec.diagnostics = {kv.key: kv.value for kv in status.values}
                        rec.diagnostics_at = now


def class_accuracy(recording: Recording, max_distance: float = 1.5) -> dict:
    """
    Per ground-truth class: [labelled correctly, matched, of them "unknown"], all scans.

    A label matches the true object whose centre is nearest in the ground
    plane, within ``max_distance`` m; an "unknown" label counts as not correct.
    """
    result: dict = defaultdict(lambda: [0, 0, 0])
    for stamp, labels in recording.labels.items():
        truth = recording.truth.get(stamp)
        if not truth:
            continue
        centers = np.array([c[:2] for c, _ in truth])
        for center, name in labels:
            best = nearest_in_plane(centers, center, max_distance)
            if best >= 0:
                result[truth[best][1]][1] += 1
                result[truth[best][1]][0] += int(name == truth[best][1])
                result[truth[best][1]][2] += int(name == 'unknown')
    return dict(result)


def _executable(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f'{name} not found next to {sys.executable} or on PATH: '
                                'install pointcam_ros (scripts/setup.sh) first')
    return found


def summary(recording: Recording, wall_s: float, final_diagnostics: bool,
            drain_s: float = 0.0) -> str:
    """
    Printable summary of a recording.

    ``wall_s``: wall time from the first saliency cloud to stopping the
    simulator; ``drain_s``: the wait after that for the simulator to exit
    and the node to finish;
    ``final_diagnostics``: whether the node's diagnostics were published
    after it had processed its last scan.
    """
    rec = recording
    scan_span = _span(rec.stamps.get(POINTS)) / 1e9
    out_span = _span(rec.received.get(SALIENCY))
    lines = [f'recorded {wall_s:.1f} s wall from the first saliency cloud (start-up not '
             f'counted), then {drain_s:.1f} s to stop the simulator and let the node finish',
             f'scans in (sim -> recorder): {rec.counts[POINTS]}, stamps spanning '
             f'{scan_span:.1f} s',
             f'saliency clouds out (node -> recorder): {rec.counts[SALIENCY]}, received over '
             f'{out_span:.1f} s; label arrays: {rec.counts[LABELS]}']
    diag = rec.diagnostics
    if diag:
        when = ('final, after its last scan' if final_diagnostics
                else 'last report, may lag behind the counts above')
        lines.append(f'node reported ({when}; counts since it started, start-up '
                     f"included): received {diag.get('received')}, processed "
                     f"{diag.get('processed')}, dropped (stale) {diag.get('dropped')}, "
                     f"rejected {diag.get('rejected')}, device {diag.get('device')}, "
                     f"model family {diag.get('model_family')}, "
                     f"processing p50 {diag.get('latency_p50_ms')} ms / p99 "
                     f"{diag.get('latency_p99_ms')} ms")
    if rec.latencies_ms:
        p50, p99 = np.percentile(rec.latencies_ms, [50, 99])
        lines.append(f'end-to-end latency (scan stamp -> saliency received): '
                     f'p50 {p50:.0f} ms, p99 {p99:.0f} ms')
    accuracy = class_accuracy(rec)
    good, count, unknown = [sum(v[i] for v in accuracy.values()) for i in (0, 1, 2)]
    if count:
        lines.append(f'labels vs simulator ground truth: {good}/{count} = {good / count:.3f}')
        for name, (right, matched, _) in sorted(accuracy.items()):
            lines.append(f'  {name:<11} {right:>5}/{matched:<5} {right / matched:.3f}')
        named = count - unknown
        lines.append(f'  labels that name a class: {good}/{named} = {good / max(named, 1):.3f} '
                     f'right; "unknown": {unknown}/{count} = {unknown / count:.3f}')
    return '\n'.join(lines)


def _wait(condition, timeout: float, processes: Sequence[subprocess.Popen] = ()) -> bool:
    """Poll ``condition()`` every 50 ms up to ``timeout`` s; False early if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if any(p.poll() is not None for p in processes):
            return False
        time.sleep(0.05)
    return condition()


def _drain(recording: Recording, quiet_s: float = 1.5, timeout: float = 15.0) -> bool:
    """
    After the simulator stopped: wait until the node is idle and reports once more.

    Idle = no saliency cloud for ``quiet_s``; then waits for a /diagnostics
    message received after that (the node publishes them about once a
    second). Returns whether such final diagnostics arrived.
    """
    deadline = time.monotonic() + timeout
    _wait(lambda: time.monotonic() - recording.last_received(SALIENCY) >= quiet_s, timeout)
    idle_since = recording.last_received(SALIENCY)
    remaining = max(0.0, deadline - time.monotonic())

    def fresh() -> bool:
        with recording.lock:
            return recording.diagnostics_at > idle_since + 0.2 and bool(recording.diagnostics)
    return _wait(fresh, max(remaining, 3.0))


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run_processes(args: argparse.Namespace, env: dict, recorder: Recorder,
                   bag_path: Path) -> Optional[tuple[float, float, bool]]:
    """
    Start pointcam_node and pointcam_sim, record, stop them; always leaves none running.

    Returns (seconds recorded, seconds draining, final diagnostics seen), or
    None when no saliency cloud arrived within ``args.startup_timeout``. A
    Ctrl-C (or SIGTERM) while recording ends the recording early: what was
    recorded is kept and summarised as usual.
    """
    processes: list[subprocess.Popen] = []
    try:
        params = ['-p', f'device:={args.device}']
        if args.model_path:
            params += ['-p', f'model_path:={args.model_path}']
        node = subprocess.Popen([_executable('pointcam_node'), '--ros-args', *params], env=env)
        processes.append(node)
        sim = subprocess.Popen(
            [_executable('pointcam_sim'), '--ros-args', '-p', f'sensor:={args.sensor}'],
            env=env)
        processes.append(sim)
        print(f'starting pointcam_sim ({args.sensor}) and pointcam_node; waiting for the '
              'first saliency cloud ...', flush=True)
        started = time.monotonic()
        if not _wait(recorder.recording_on.is_set, args.startup_timeout, processes):
            died = [f'{name} exited with {p.returncode}' for name, p in
                    (('pointcam_node', node), ('pointcam_sim', sim)) if p.poll() is not None]
            print(f'no saliency cloud within {time.monotonic() - started:.0f} s'
                  f"{': ' + ', '.join(died) if died else ''}; see the log lines above",
                  file=sys.stderr)
            return None
        began = time.monotonic()
        print(f'first saliency cloud after {began - started:.1f} s; recording '
              f'{args.duration:.0f} s to {bag_path} ...', flush=True)
        try:
            time.sleep(args.duration)
        except KeyboardInterrupt:
            print(f'interrupted after {time.monotonic() - began:.1f} s of recording; stopping '
                  'the simulator and keeping what was recorded', file=sys.stderr, flush=True)
        stopped = time.monotonic()
        sim.terminate()
        sim.wait(timeout=20)
        final = _drain(recorder.recording)
        drain_s = time.monotonic() - stopped
        node.terminate()
        node.wait(timeout=20)
        return stopped - began, drain_s, final
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; see the module docstring."""
    parser = argparse.ArgumentParser(description='pointcam_ros demo: sim + node, recorded.')
    parser.add_argument('--duration', type=float, default=20.0,
                        help='seconds to record, counted from the first saliency cloud')
    parser.add_argument('--sensor', default='vlp16', help='simulated sensor preset')
    parser.add_argument('--out', type=Path, default=Path('demo_output'), help='output folder')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--model-path', default='',
                        help="the node's model_path: a checkpoint of any model family "
                        '(default: the shipped PointNet)')
    parser.add_argument('--startup-timeout', type=float, default=120.0,
                        help='seconds to wait for the first saliency cloud')
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bag_path = args.out / f'demo_{time.strftime("%Y%m%d_%H%M%S")}'
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_LOCALHOST_ONLY', '1')
    use_large_data_profile(env)  # scans are 0.6-12 MB; see resources/fastdds_large_data.xml
    os.environ.update(env)
    # Ctrl-C and SIGTERM reach this process as KeyboardInterrupt, not as an rclpy shutdown
    # that would stop the recorder's executor under it (Humble has these options too).
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _record_and_report(args, env, bag_path)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, the bag is not kept
        print('interrupted; the unfinished recording was removed', file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        rclpy.try_shutdown()


def _record_and_report(args: argparse.Namespace, env: dict, bag_path: Path) -> int:
    """Record (see :func:`_run_processes`), then print the summary and the snapshot."""
    recording = Recording()
    outcome: Optional[tuple[float, float, bool]] = None
    with SafeBagWriter(bag_path) as writer:
        recorder = Recorder(writer, recording)
        executor = SingleThreadedExecutor()
        executor.add_node(recorder)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            outcome = _run_processes(args, env, recorder, bag_path)
        finally:
            executor.shutdown()
            spinner.join(timeout=5)
            with recording.lock:
                recorder.destroy_node()
    if outcome is None:
        return 1
    wall_s, drain_s, final = outcome
    print(summary(recording, wall_s, final, drain_s))
    if recording.last_saliency is not None:
        msg = recording.last_saliency
        cloud = read_cloud(msg, ['intensity', 'object_id'])
        texts = recording.label_texts.get(_stamp(msg.header), {})
        png = args.out / 'demo_snapshot.png'
        render_snapshot(cloud.xyz, cloud.extras['intensity'], cloud.extras['object_id'],
                        texts, png, title=f'pointcam_ros demo: {args.sensor}, last explained '
                        'scan, Grad-CAM saliency (top view)')
        print(f'snapshot: {png}')
    print(f'bag: {bag_path} (ros2 bag play / rosbags)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
