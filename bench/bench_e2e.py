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
End-to-end latency of pointcam_node over DDS on loopback, at the sensors' real rates.

For each sensor: start pointcam_node as its own process, publish pre-simulated
scans (driver layout, restamped with the current time) at the sensor's rate
for --duration seconds, and measure publish -> saliency received. Prints
p50/p99 latency, scans without an output (dropped), the node's own
diagnostics, the node's resident memory after warm-up and at the end, and the
answer's split from the node's ``stage_p50_ms``: transport in, waiting in the
mailbox, decode, pipeline, building the ROS messages, publishing, and the
delivery of the outputs (the p50 latency minus the node's stages).
A soak test is the same with a long duration:

    .venv/bin/python bench/bench_e2e.py --sensors vlp16 hdl64 os1_128 --duration 60
    .venv/bin/python bench/bench_e2e.py --sensors vlp16 --duration 600   # soak
    .venv/bin/python bench/bench_e2e.py --sensors hdl64 --rate 20        # a 20 Hz HDL-64E

``--node-param NAME:=VALUE`` (repeatable) sets a node parameter. With a
region of interest that holds no point (``min_range:=0.0 max_range:=0.5``)
the pipeline finds nothing, while decoding, the saliency cloud of every
point and both DDS trips stay the same: the latency is then everything but
the pipeline, per scan, instead of the p50 latency minus the pipeline's
median, two medians of different scans:

    .venv/bin/python bench/bench_e2e.py --sensors hdl64 --rate 5 --node-param min_range:=0.0 \
        --node-param max_range:=0.5

With ``--scans-file`` (bench/record_scans.py) the scans come from the file
and open3d is not needed; without an installed ``pointcam_node`` script the
node runs as ``python -c`` of :func:`pointcam_ros.ros.node.main`.
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from machine import describe, rss_mib
import numpy as np
from pointcam_ros.ros.dds import use_large_data_profile
from pointcam_ros.ros.ros_msgs import to_ros_cloud
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2


def sensor_clouds(name: str, variants: int, recorded) -> tuple[float, list]:
    """Return the rate (Hz) and ``variants`` clouds of ``name``: simulated, or recorded."""
    if recorded is not None:
        if name not in recorded:
            raise SystemExit(f'the scans file has no {name} scans, only {sorted(recorded)}')
        return recorded[name][0], recorded[name][1][:variants]
    from pointcam_ros.sim.clouds import scan_to_cloud  # the simulator needs open3d
    from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
    sensor = SENSORS[name]
    return sensor.rate_hz, [scan_to_cloud(scan(random_scene(7_000 + i), sensor, i))
                            for i in range(variants)]


def node_command() -> list[str]:
    """Start pointcam_node: its console script, or main() of this interpreter's package."""
    exe = Path(sys.executable).parent / 'pointcam_node'
    if exe.exists():
        return [str(exe)]
    return [sys.executable, '-c',
            'import sys; from pointcam_ros.ros.node import main; sys.exit(main())']


def run_sensor(name: str, duration: float, device: str, variants: int,
               recorded=None, rate: float | None = None,
               node_params: tuple[str, ...] = ()) -> None:
    """
    Benchmark one sensor preset against a fresh node process, at ``rate`` Hz if given.

    ``node_params``: ``NAME:=VALUE`` parameters for the node, after ``device``.
    """
    rate_hz, clouds = sensor_clouds(name, variants, recorded)
    rate_hz = rate or rate_hz
    variants = len(clouds)
    messages = [to_ros_cloud(cloud, None) for cloud in clouds]
    for msg in messages:
        msg.header.frame_id = 'lidar'
    log = open(os.environ.get('POINTCAM_BENCH_LOG', os.devnull), 'a')
    params = [arg for item in (f'device:={device}', *node_params) for arg in ('-p', item)]
    node_proc = subprocess.Popen([*node_command(), '--ros-args', *params],
                                 stdout=log, stderr=subprocess.STDOUT)
    node = Node(f'bench_{name}')
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(PointCloud2, 'points', reliable)
    sent: dict = {}
    latencies: list = []
    lock = threading.Lock()

    def on_saliency(msg):
        now = time.monotonic()
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with lock:
            if key in sent:
                latencies.append(1e3 * (now - sent.pop(key)))

    node.create_subscription(PointCloud2, 'pointcam/saliency', on_saliency, reliable)
    diagnostics: dict = {}

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.endswith(': points'):
                with lock:
                    diagnostics.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        while pub.get_subscription_count() == 0:
            if node_proc.poll() is not None:
                raise SystemExit(f'pointcam_node exited with code {node_proc.returncode} '
                                 'before subscribing; set POINTCAM_BENCH_LOG=FILE for its log')
            time.sleep(0.1)
        warm_until = time.monotonic() + 5.0  # model load, first CUDA/torch calls
        period = 1.0 / rate_hz
        published = 0
        rss_start = None
        start = time.monotonic()
        next_time = start
        while time.monotonic() - start < duration + 5.0:
            now = time.monotonic()
            if now < next_time:
                time.sleep(next_time - now)
            next_time += period
            msg = messages[published % variants]
            stamp = node.get_clock().now().to_msg()
            msg.header.stamp = stamp
            measuring = time.monotonic() >= warm_until
            if measuring and rss_start is None:
                rss_start = rss_mib(node_proc.pid)
                with lock:
                    latencies.clear()
                    sent.clear()
                published = 0
            with lock:
                if measuring:
                    sent[(stamp.sec, stamp.nanosec)] = time.monotonic()
            pub.publish(msg)
            published += measuring
        time.sleep(2.0)
        rss_end = rss_mib(node_proc.pid)
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()
        node_proc.terminate()
        node_proc.wait(timeout=20)
        log.close()
    with lock:
        received = len(latencies)
        values = list(latencies)
        stages = json.loads(diagnostics.get('stage_p50_ms', '{}'))
    p50, p99 = np.percentile(values, [50, 99]) if values else (float('nan'),) * 2
    points = messages[0].width * messages[0].height
    print(f'{name}: {points} points/scan at {rate_hz:.0f} Hz for {duration:.0f} s: '
          f'published {published}, answered {received}, dropped {published - received}; '
          f'latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; node RSS {rss_start:.0f} MiB -> '
          f'{rss_end:.0f} MiB ({100 * (rss_end / rss_start - 1):+.1f} %)', flush=True)
    if stages:
        inside = sum(stages.values())
        parts = ', '.join(f'{stage} {ms:.1f}' for stage, ms in stages.items())
        # The saliency cloud is published before the markers are built: 'labels' is not
        # part of its latency.
        inside -= stages.get('labels', 0.0)
        print(f'  split of the answer (node medians, ms; since the node started): {parts}; '
              f'delivery of the saliency cloud (p50 latency minus the stages before its '
              f'publication) {p50 - inside:.1f}; all but the pipeline and the mailbox '
              f'{p50 - stages.get("pipeline", 0.0) - stages.get("mailbox", 0.0):.1f}',
              flush=True)


def main():
    """Run the sensors one after another."""
    parser = argparse.ArgumentParser(description='end-to-end latency over DDS')
    parser.add_argument('--sensors', nargs='+', default=None,
                        help='default: vlp16 hdl64 os1_128, or those in --scans-file')
    parser.add_argument('--duration', type=float, default=60.0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--variants', type=int, default=20, help='distinct scans to cycle')
    parser.add_argument('--scans-file', type=Path, default=None,
                        help='recorded scans (bench/record_scans.py); no open3d needed')
    parser.add_argument('--rate', type=float, default=None,
                        help="publish rate in Hz (default: each sensor's own)")
    parser.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                        help='a node parameter (repeatable), e.g. max_range:=0.5')
    args = parser.parse_args()
    bad = [item for item in args.node_param if ':=' not in item or item.startswith(':=')]
    if bad:
        parser.error(f'--node-param takes NAME:=VALUE, got {bad[0]!r}')
    if args.rate is not None and not 0.1 <= args.rate <= 100:
        parser.error('--rate must lie in [0.1, 100] Hz')
    recorded = None
    if args.scans_file is not None:
        from record_scans import load_scans
        recorded = load_scans(args.scans_file)
    if args.sensors is None:
        args.sensors = list(recorded) if recorded else ['vlp16', 'hdl64', 'os1_128']
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    use_large_data_profile(os.environ)  # multi-MB scans; see README
    rclpy.init()
    try:
        print(f'device: {describe(args.device)}', flush=True)
        for name in args.sensors:
            run_sensor(name, args.duration, args.device, args.variants, recorded, args.rate,
                       tuple(args.node_param))
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
