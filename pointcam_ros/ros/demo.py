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

Starts ``pointcam_sim`` and ``pointcam_node``, records the input scans, the
saliency clouds, the label markers, the simulator's ground truth and
/diagnostics into a rosbag2 MCAP bag for ``--duration`` seconds, then writes
a PNG snapshot of the last explained scan and prints a summary: scans in and
out, drops, end-to-end latency (scan stamp to saliency received) p50/p99 and
per-class accuracy of the labels against the simulator's ground truth.
"""

import argparse
from collections import defaultdict
from dataclasses import dataclass, field
import os
from pathlib import Path
import shutil
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from pointcam_ros.formats.bag_io import MARKER_ARRAY, POINTCLOUD2, SafeBagWriter
from pointcam_ros.formats.cloud_io import read_cloud
from pointcam_ros.ros.dds import use_large_data_profile
from pointcam_ros.tools.render import render_scan
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

TOPICS = {  # topic -> (type, rosbag2 type name, QoS)
    'points': (PointCloud2, POINTCLOUD2, qos_profile_sensor_data),
    'pointcam/saliency': (PointCloud2, POINTCLOUD2, None),
    'pointcam/labels': (MarkerArray, MARKER_ARRAY, None),
    'pointcam_sim/ground_truth': (MarkerArray, MARKER_ARRAY, None),
    '/diagnostics': (DiagnosticArray, 'diagnostic_msgs/msg/DiagnosticArray', None),
}


@dataclass
class Recording:
    """What the recorder saw (filled from the executor thread under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict = field(default_factory=lambda: defaultdict(int))
    latencies_ms: list = field(default_factory=list)
    truth: dict = field(default_factory=dict)  # stamp -> [(center, class)]
    labels: dict = field(default_factory=dict)  # stamp -> [(center, class)]
    last_saliency: Optional[PointCloud2] = None
    diagnostics: dict = field(default_factory=dict)


def _stamp(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _boxes(msg: MarkerArray) -> list[tuple[np.ndarray, str]]:
    out = []
    for marker in msg.markers:
        if marker.type == 9 and marker.text:  # TEXT_VIEW_FACING
            name = marker.text.split()[1] if marker.text.startswith('gt ') else \
                marker.text.split()[0]
            p = marker.pose.position
            out.append((np.array([p.x, p.y, p.z]), name))
    return out


class Recorder(Node):
    """Subscribes to the demo topics and writes every message to the bag."""

    def __init__(self, writer: SafeBagWriter, recording: Recording):
        super().__init__('pointcam_demo_recorder')
        self.writer = writer
        self.recording = recording
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for topic, (msg_type, bag_type, qos) in TOPICS.items():
            self.create_subscription(
                msg_type, topic,
                lambda msg, t=topic, b=bag_type: self.message_callback(t, b, msg),
                qos or reliable)

    def message_callback(self, topic: str, bag_type: str, msg) -> None:
        """Record one message and the figures the summary needs."""
        now_ns = time.time_ns()
        rec = self.recording
        with rec.lock:
            rec.counts[topic] += 1
            self.writer.write_raw(topic.lstrip('/'), bag_type, now_ns, serialize_message(msg))
            if topic == 'pointcam/saliency':
                rec.latencies_ms.append((now_ns - _stamp(msg.header)) / 1e6)
                rec.last_saliency = msg
            elif topic == 'pointcam/labels' and msg.markers:
                rec.labels[_stamp(msg.markers[0].header)] = _boxes(msg)
            elif topic == 'pointcam_sim/ground_truth' and msg.markers:
                rec.truth[_stamp(msg.markers[0].header)] = _boxes(msg)
            elif topic == '/diagnostics':
                for status in msg.status:
                    if status.name.endswith('pointcam: points'):
                        rec.diagnostics = {kv.key: kv.value for kv in status.values}


def class_accuracy(recording: Recording, max_distance: float = 1.5) -> dict:
    """Per ground-truth class: (labelled correctly, matched) over all recorded scans."""
    result: dict = defaultdict(lambda: [0, 0])
    for stamp, labels in recording.labels.items():
        truth = recording.truth.get(stamp)
        if not truth:
            continue
        centers = np.array([c[:2] for c, _ in truth])
        for center, name in labels:
            dist = np.linalg.norm(centers - center[:2], axis=1)
            best = int(np.argmin(dist))
            if dist[best] <= max_distance:
                result[truth[best][1]][1] += 1
                result[truth[best][1]][0] += int(name == truth[best][1])
    return dict(result)


def _executable(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f'{name} not found next to {sys.executable} or on PATH: '
                                'install pointcam_ros (scripts/setup.sh) first')
    return found


def summary(recording: Recording, duration: float) -> str:
    """Printable summary of a recording."""
    rec = recording
    lines = [f'scans in (sim -> recorder): {rec.counts["points"]} in {duration:.0f} s',
             f'saliency clouds out: {rec.counts["pointcam/saliency"]}, label arrays: '
             f'{rec.counts["pointcam/labels"]}']
    diag = rec.diagnostics
    if diag:
        lines.append(f"node: received {diag.get('received')}, processed "
                     f"{diag.get('processed')}, dropped (stale) {diag.get('dropped')}, "
                     f"rejected {diag.get('rejected')}, device {diag.get('device')}, "
                     f"processing p50 {diag.get('latency_p50_ms')} ms / p99 "
                     f"{diag.get('latency_p99_ms')} ms")
    if rec.latencies_ms:
        p50, p99 = np.percentile(rec.latencies_ms, [50, 99])
        lines.append(f'end-to-end latency (scan stamp -> saliency received): '
                     f'p50 {p50:.0f} ms, p99 {p99:.0f} ms')
    accuracy = class_accuracy(rec)
    total = [sum(v[i] for v in accuracy.values()) for i in (0, 1)]
    if total[1]:
        lines.append(f'labels vs simulator ground truth: {total[0]}/{total[1]} = '
                     f'{total[0] / total[1]:.3f}')
        for name, (good, count) in sorted(accuracy.items()):
            lines.append(f'  {name:<11} {good:>5}/{count:<5} {good / count:.3f}')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; see the module docstring."""
    parser = argparse.ArgumentParser(description='pointcam_ros demo: sim + node, recorded.')
    parser.add_argument('--duration', type=float, default=20.0, help='seconds to record')
    parser.add_argument('--sensor', default='vlp16', help='simulated sensor preset')
    parser.add_argument('--out', type=Path, default=Path('demo_output'), help='output folder')
    parser.add_argument('--device', default='auto')
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bag_path = args.out / f'demo_{time.strftime("%Y%m%d_%H%M%S")}'
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_LOCALHOST_ONLY', '1')
    use_large_data_profile(env)  # scans are 0.6-12 MB; see resources/fastdds_large_data.xml
    os.environ.update(env)
    rclpy.init()
    recording = Recording()
    processes = []
    try:
        with SafeBagWriter(bag_path) as writer:
            recorder = Recorder(writer, recording)
            executor = SingleThreadedExecutor()
            executor.add_node(recorder)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            processes.append(subprocess.Popen(
                [_executable('pointcam_node'), '--ros-args', '-p', f'device:={args.device}'],
                env=env))
            processes.append(subprocess.Popen(
                [_executable('pointcam_sim'), '--ros-args', '-p', f'sensor:={args.sensor}'],
                env=env))
            print(f'recording {args.duration:.0f} s of {args.sensor} scans to {bag_path} ...',
                  flush=True)
            time.sleep(args.duration)
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                process.wait(timeout=20)
            executor.shutdown()
            spinner.join(timeout=5)
            with recording.lock:
                recorder.destroy_node()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        rclpy.try_shutdown()
    print(summary(recording, args.duration))
    if recording.last_saliency is not None:
        msg = recording.last_saliency
        cloud = read_cloud(msg, ['intensity', 'object_id'])
        labels = recording.labels.get(_stamp(msg.header), [])
        png = args.out / 'demo_snapshot.png'
        render_scan(cloud.xyz, cloud.extras['intensity'], cloud.extras['object_id'],
                    [(c, n) for c, n in labels], png,
                    title=f'pointcam_ros demo: {args.sensor}, Grad-CAM saliency')
        print(f'snapshot: {png}')
    print(f'bag: {bag_path} (ros2 bag play / rosbags)')
    return 0
