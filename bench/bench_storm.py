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
Adversarial storm: thousands of hostile PointCloud2 messages to a pointcam_node process.

Hostile messages of every kind (missing, overlapping or duplicate fields,
wrong point_step / row_step, truncated or oversized data, NaN-only,
empty, huge coordinates, float64 beyond float32, big-endian garbage,
unknown datatypes, absurd widths...) are interleaved with valid VLP-16
scans and published over real DDS at a bounded rate. Prints whether the
node survived, valid scans answered / sent, the node's reject counts by
reason (from /diagnostics), its RSS before and after, and whether valid
scans are still answered after the storm::

    .venv/bin/python bench/bench_storm.py --messages 5000 --rate 200
    .venv/bin/python bench/bench_storm.py --soak --messages 100000 --rate 1000

``--soak`` sends only clouds with duplicate fields of random names (every
reject message is new text): the node's memory must stay flat.

The test suite runs a short version (test_node.py::test_storm_short).
"""

import argparse
import array
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional

from diagnostic_msgs.msg import DiagnosticArray
from machine import rss_mib
import numpy as np
from pointcam_ros.ros.dds import use_large_data_profile
from pointcam_ros.ros.ros_msgs import to_ros_cloud
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField

F32, F64, U8 = PointField.FLOAT32, PointField.FLOAT64, PointField.UINT8
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def _cloud(fields: list, point_step: int, data: bytes, width: int, height: int = 1,
           row_step: Optional[int] = None, bigendian: bool = False) -> PointCloud2:
    msg = PointCloud2()
    msg.height, msg.width = height, width
    msg.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    msg.point_step = point_step
    msg.row_step = width * point_step if row_step is None else row_step
    msg.is_bigendian = bigendian
    msg.is_dense = False
    payload = array.array('B')
    payload.frombytes(data)
    msg.data = payload
    return msg


XYZ = [('x', 0, F32, 1), ('y', 4, F32, 1), ('z', 8, F32, 1)]


def _xyz_bytes(xyz: np.ndarray, dtype: str = '<f4', step: int = 12) -> bytes:
    out = np.zeros((len(xyz), step), np.uint8)
    size = np.dtype(dtype).itemsize
    out[:, :3 * size] = np.ascontiguousarray(xyz, dtype=dtype).view(np.uint8).reshape(
        len(xyz), 3 * size)
    return out.tobytes()


def hostile_kinds(rng: np.random.Generator) -> dict[str, Callable[[], PointCloud2]]:
    """Builders of every hostile message kind (a few hundred points each)."""
    n = 500
    pts = rng.uniform(-20, 20, (n, 3)).astype(np.float32)
    good = _xyz_bytes(pts)
    return {
        'no_fields': lambda: _cloud([], 12, good, n),
        'missing_z': lambda: _cloud(XYZ[:2], 12, good, n),
        'overlapping_fields': lambda: _cloud(
            [('x', 0, F32, 1), ('y', 2, F32, 1), ('z', 4, F32, 1)], 12, good, n),
        'duplicate_field': lambda: _cloud(XYZ + [('x', 0, F32, 1)], 12, good, n),
        'field_past_point_step': lambda: _cloud(
            [('x', 0, F32, 1), ('y', 4, F32, 1), ('z', 10, F32, 1)], 12, good, n),
        'offset_huge': lambda: _cloud([('x', 2**32 - 8, F32, 1)] + XYZ[1:], 12, good, n),
        'point_step_zero': lambda: _cloud(XYZ, 0, good, n, row_step=12 * n),
        'point_step_small': lambda: _cloud(XYZ, 4, good, n, row_step=12 * n),
        'row_step_small': lambda: _cloud(XYZ, 12, good, n, row_step=12 * n - 1),
        'row_step_huge': lambda: _cloud(XYZ, 12, good, n, row_step=2**31),
        'truncated_data': lambda: _cloud(XYZ, 12, good[:len(good) // 2], n),
        'data_not_multiple': lambda: _cloud(XYZ, 12, good[:-5], n),
        'extra_data': lambda: _cloud(XYZ, 12, good + bytes(1000), n),
        'width_huge': lambda: _cloud(XYZ, 12, good, 2**32 - 1, row_step=0),
        'height_huge': lambda: _cloud(XYZ, 12, good, n, height=2**31),
        'height_zero': lambda: _cloud(XYZ, 12, b'', n, height=0),
        'empty': lambda: _cloud(XYZ, 12, b'', 0),
        'nan_only': lambda: _cloud(XYZ, 12, _xyz_bytes(np.full((n, 3), np.nan)), n),
        'inf_points': lambda: _cloud(XYZ, 12, _xyz_bytes(
            np.where(rng.random((n, 3)) < 0.5, np.inf, pts)), n),
        'huge_coordinates': lambda: _cloud(XYZ, 12, _xyz_bytes(
            rng.uniform(-3e38, 3e38, (n, 3))), n),
        'float64_beyond_float32': lambda: _cloud(
            [('x', 0, F64, 1), ('y', 8, F64, 1), ('z', 16, F64, 1)], 24,
            _xyz_bytes(rng.uniform(-1e300, 1e300, (n, 3)), '<f8', 24), n),
        'bigendian_garbage': lambda: _cloud(XYZ, 12, rng.bytes(12 * n), n, bigendian=True),
        'random_bytes': lambda: _cloud(XYZ, 12, rng.bytes(12 * n), n),
        'wrong_datatype': lambda: _cloud([('x', 0, U8, 1)] + XYZ[1:], 12, good, n),
        'unknown_datatype': lambda: _cloud([('x', 0, 42, 1)] + XYZ[1:], 12, good, n),
        'count_zero': lambda: _cloud([('x', 0, F32, 0)] + XYZ[1:], 12, good, n),
        'count_huge': lambda: _cloud([('x', 0, F32, 2**31)] + XYZ[1:], 12, good, n),
        'xyz_count_3': lambda: _cloud([('x', 0, F32, 3)], 12, good, n),
        'identical_points': lambda: _cloud(XYZ, 12, _xyz_bytes(np.tile(pts[:1], (n, 1))), n),
        'single_point': lambda: _cloud(XYZ, 12, good[:12], 1),
        'organized_with_padding': lambda: _cloud(XYZ, 12, (good[:12 * 50] + bytes(4)) * 10,
                                                 50, height=10, row_step=12 * 50 + 4),
        'duplicate_random_name': lambda: random_name_cloud(rng, n),
    }


def random_name_cloud(rng: np.random.Generator, n: int) -> PointCloud2:
    """Build a cloud whose extra field, of a fresh random name, appears twice (rejected)."""
    name = ''.join(chr(c) for c in rng.integers(97, 123, 12))
    fields = XYZ + [(name, 12, F32, 1), (name, 16, F32, 1)]
    return _cloud(fields, 20, bytes(20 * n), n)


def soak_kinds(rng: np.random.Generator) -> dict[str, Callable[[], PointCloud2]]:
    """Build only clouds with random field names: each reject message is new text."""
    return {'duplicate_random_name': lambda: random_name_cloud(rng, 50)}


class StormClient:
    """A real rclpy node that publishes the storm and records what the node answers."""

    def __init__(self, namespace: str):
        self.node = Node('storm_client', namespace=namespace)
        self.lock = threading.Lock()
        self.answered: set = set()  # stamps (sec, nanosec) with a saliency cloud
        self.diagnostics: Optional[dict] = None
        self.level = None
        self.status_name = f'{namespace}/pointcam: points'
        self.pub = self.node.create_publisher(PointCloud2, 'points', RELIABLE)
        self.node.create_subscription(PointCloud2, 'pointcam/saliency', self._on_saliency,
                                      RELIABLE)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_saliency(self, msg: PointCloud2) -> None:
        with self.lock:
            self.answered.add((msg.header.stamp.sec, msg.header.stamp.nanosec))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == self.status_name:
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.level = int.from_bytes(status.level, 'little') \
                        if isinstance(status.level, bytes) else int(status.level)

    def wait_for_fresh_diagnostics(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a diagnostics message newer than the last one seen."""
        with self.lock:
            seen = self.diagnostics
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.diagnostics is not seen:
                    return True
            time.sleep(0.05)
        return False

    def send(self, msg: PointCloud2, stamp: int) -> None:
        """Publish ``msg`` with header stamp ``(stamp, 0)``."""
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp, 0
        msg.header.frame_id = 'lidar'
        self.pub.publish(msg)

    def is_answered(self, stamp: int) -> bool:
        """Tell whether the saliency cloud of ``stamp`` arrived."""
        with self.lock:
            return (stamp, 0) in self.answered

    def send_until_answered(self, msg: PointCloud2, stamp: int, timeout: float) -> bool:
        """Publish (again every 2 s) until answered; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(msg, stamp)
            until = min(deadline, time.monotonic() + 2.0)
            while time.monotonic() < until:
                if self.is_answered(stamp):
                    return True
                time.sleep(0.02)
        return False

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()


def run_storm(messages: int = 5000, rate: float = 200.0, valid_every: int = 10,
              seed: int = 0, namespace: str = '/storm', log_path: Optional[Path] = None,
              startup_timeout: float = 90.0, soak: bool = False) -> dict:
    """
    Start pointcam_node, publish the storm, return what happened (see the module docstring).

    Needs ``rclpy.init()`` done and the large-data DDS profile in the environment.
    Every ``valid_every``-th message is a valid VLP-16 scan; the others cycle
    through :func:`hostile_kinds` in random order (``soak``: :func:`soak_kinds`
    only). RSS is sampled after the first 10 % of the messages (``rss_warm_mib``,
    once every error path has run) and at the end.
    """
    rng = np.random.default_rng(seed)
    kinds = soak_kinds(rng) if soak else hostile_kinds(rng)
    names = sorted(kinds)
    sim = scan(random_scene(4242), SENSORS['vlp16'], 1)
    valid = to_ros_cloud(scan_to_cloud(sim), None)
    log_path = log_path or Path(tempfile.mkdtemp(prefix='storm_')) / 'node.log'
    log = open(log_path, 'w')
    exe = str(Path(sys.executable).parent / 'pointcam_node')
    proc = subprocess.Popen([exe, '--ros-args', '-r', f'__ns:={namespace}',
                             '-p', 'device:=cpu', '-p', 'diagnostics_window:=5.0'],
                            stdout=log, stderr=subprocess.STDOUT)
    client = StormClient(namespace)
    out: dict = {'messages': messages, 'rate_hz': rate, 'log': str(log_path)}
    try:
        deadline = time.monotonic() + startup_timeout
        while client.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        stamp = 1
        if not client.send_until_answered(valid, stamp, max(1.0, deadline - time.monotonic())):
            raise RuntimeError(f'pointcam_node never answered a valid scan; see {log_path}')
        out['rss_before_mib'] = rss_mib(proc.pid)
        sent_kind: dict[int, str] = {}
        period = 1.0 / rate
        start = next_time = time.monotonic()
        warm_at = max(1, messages // 10)
        for i in range(messages):
            if i == warm_at:
                out['rss_warm_mib'] = rss_mib(proc.pid)
            stamp += 1
            kind = 'valid' if i % valid_every == 0 else names[int(rng.integers(len(names)))]
            msg = valid if kind == 'valid' else kinds[kind]()
            sent_kind[stamp] = kind
            client.send(msg, stamp)
            next_time += period
            pause = next_time - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        out['storm_s'] = time.monotonic() - start
        after = []  # the node may still hold a scan of the storm: each send retries
        for _ in range(5):
            stamp += 1
            after.append(client.send_until_answered(valid, stamp, 20.0))
        client.wait_for_fresh_diagnostics(5.0)  # with the counts of the scans just answered
        out['alive'] = proc.poll() is None
        out['rss_after_mib'] = rss_mib(proc.pid) if out['alive'] else float('nan')
        with client.lock:
            answered = set(client.answered)
            out['diagnostics'] = dict(client.diagnostics or {})
        by_kind: dict[str, list[int]] = {}
        for s, kind in sent_kind.items():
            entry = by_kind.setdefault(kind, [0, 0])
            entry[0] += 1
            entry[1] += (s, 0) in answered
        out['sent_answered_by_kind'] = by_kind
        out['valid_sent'], out['valid_answered'] = by_kind.get('valid', [0, 0])
        out['answered_after_storm'] = sum(after)
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
        try:
            out['exit_code'] = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out['exit_code'] = proc.wait()
        log.close()
    text = log_path.read_text()
    out['tracebacks_in_log'] = text.count('Traceback')
    out['log_lines'] = text.count('\n')
    return out


def print_summary(out: dict) -> None:
    """Print the storm's figures (CLI only)."""
    diag = out['diagnostics']
    print(f"storm: {out['messages']} messages at {out['rate_hz']:g} Hz in "
          f"{out['storm_s']:.1f} s")
    print(f"node alive after the storm: {out['alive']}; exit code on SIGTERM "
          f"{out['exit_code']}; tracebacks in its log: {out['tracebacks_in_log']} "
          f"({out['log_lines']} log lines)")
    print(f"valid scans answered / sent during the storm: {out['valid_answered']} / "
          f"{out['valid_sent']} (the others were replaced by newer messages: "
          f"newest scan wins); after the storm: {out['answered_after_storm']} / 5")
    print(f"node counters: received {diag.get('received')}, processed "
          f"{diag.get('processed')}, rejected {diag.get('rejected')}, dropped "
          f"{diag.get('dropped')}, errors {diag.get('errors')}, worker_errors "
          f"{diag.get('worker_errors')}")
    print('rejects by kind:')
    for reason, count in json.loads(diag.get('reject_reasons', '{}')).items():
        print(f'  {count:6d}  {reason}')
    print('sent / answered by kind:')
    for kind, (sent, answered) in sorted(out['sent_answered_by_kind'].items()):
        print(f'  {kind:24s} {sent:5d} {answered:5d}')
    warm = out.get('rss_warm_mib', out['rss_before_mib'])
    print(f"node RSS {out['rss_before_mib']:.1f} MiB before, {warm:.1f} MiB after the first "
          f"10 % of the storm, {out['rss_after_mib']:.1f} MiB after: "
          f"{out['rss_after_mib'] - warm:+.1f} MiB over the last 90 %")


def main() -> int:
    """Run the storm against a fresh pointcam_node and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--messages', type=int, default=5000)
    parser.add_argument('--rate', type=float, default=200.0, help='messages per second')
    parser.add_argument('--valid-every', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--soak', action='store_true',
                        help='hostile messages are all duplicate fields of random names '
                             '(each reject text is new): the memory soak')
    args = parser.parse_args()
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    use_large_data_profile(os.environ)
    rclpy.init()
    try:
        out = run_storm(args.messages, args.rate, args.valid_every, args.seed, soak=args.soak)
    finally:
        rclpy.try_shutdown()
    print_summary(out)
    return 0 if out['alive'] and out['answered_after_storm'] == 5 else 1


if __name__ == '__main__':
    sys.exit(main())
