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

"""Test helpers: a real rclpy node spinning in a thread, and node processes."""

from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class Harness:
    """A test node that publishes clouds and records what pointcam publishes."""

    def __init__(self, namespace: str = '', input_topic: str = 'points'):
        self.node = Node('pointcam_test', namespace=namespace or None)
        self.lock = threading.RLock()  # wait_for conditions may call last_diagnostics
        self.saliency: list[PointCloud2] = []
        self.labels: list[MarkerArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.points_pub = self.node.create_publisher(PointCloud2, input_topic, RELIABLE)
        self._subs = []
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def listen_outputs(self, prefix: str = 'pointcam') -> None:
        """Subscribe to ``<prefix>/saliency`` and ``<prefix>/labels``."""
        self._subs.append(self.node.create_subscription(
            PointCloud2, f'{prefix}/saliency', self._keep(self.saliency), RELIABLE))
        self._subs.append(self.node.create_subscription(
            MarkerArray, f'{prefix}/labels', self._keep(self.labels), RELIABLE))

    def listen_diagnostics(self) -> None:
        """Subscribe to /diagnostics."""
        self._subs.append(self.node.create_subscription(
            DiagnosticArray, '/diagnostics', self._keep(self.diagnostics), 10))

    def listen(self, msg_type: type, topic: str) -> list:
        """Subscribe to ``topic`` (reliable); return the list its messages go to."""
        store: list = []
        self._subs.append(self.node.create_subscription(msg_type, topic, self._keep(store),
                                                        RELIABLE))
        return store

    def clear(self) -> None:
        """Forget every message received so far, as a newly created harness has none."""
        with self.lock:
            for store in (self.saliency, self.labels, self.diagnostics):
                store.clear()

    def _keep(self, store: list) -> Callable:
        def callback(msg):
            with self.lock:
                store.append(msg)
        return callback

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Poll ``condition`` until true or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if condition():
                    return True
            time.sleep(0.05)
        return False

    def wait_for_subscriber(self, timeout: float = 30.0) -> bool:
        """Wait until pointcam subscribes to our ``points``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.points_pub.get_subscription_count() > 0:
                return True
            time.sleep(0.05)
        return False

    def last_diagnostics(self, name: str = '/pointcam: points') -> Optional[dict]:
        """Key/values of the newest DiagnosticStatus called ``name`` (node: topic)."""
        with self.lock:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == name:
                        return {kv.key: kv.value for kv in status.values}
        return None

    def last_status(self, name: str = '/pointcam: points'
                    ) -> Optional[tuple[int, str, dict]]:
        """Level (0 OK, 1 WARN, 2 ERROR), message and key/values of the newest ``name``."""
        with self.lock:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == name:
                        level = status.level
                        level = level[0] if isinstance(level, bytes) else int(level)
                        return level, status.message, {kv.key: kv.value for kv in status.values}
        return None

    def diagnostics_count(self) -> int:
        """Count the DiagnosticArray messages received so far."""
        with self.lock:
            return len(self.diagnostics)

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self.executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()


def _sigint(ignored: bool) -> Callable[[], None]:
    """
    Return a ``preexec_fn`` that gives a child SIGINT ignored or at its default.

    Where a test run starts decides what its children inherit (a background
    CI run: ignored), so tests of Ctrl-C say which case they mean: at the
    default, as a terminal's Ctrl-C finds it, or ignored, as nohup or a
    background start leaves it, where rclpy's own handler still shuts the
    context down.
    """
    handler = signal.SIG_IGN if ignored else signal.SIG_DFL
    return lambda: signal.signal(signal.SIGINT, handler)


def start_process(executable: str, *ros_args: str, install: Optional[Path] = None,
                  sigint_ignored: bool = False) -> subprocess.Popen:
    """
    Start a console script of this venv (or of a colcon install space) with --ros-args.

    SIGINT is at its default in the child, or ignored with ``sigint_ignored``.
    """
    if install is None:
        command = [str(Path(sys.executable).parent / executable)]
        if ros_args:
            command += ['--ros-args', *ros_args]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, preexec_fn=_sigint(sigint_ignored))
    venv_bin = Path(sys.executable).parent
    script = install / 'pointcam_ros' / 'lib' / 'pointcam_ros' / executable
    args = ' '.join(['--ros-args', *ros_args]) if ros_args else ''
    return subprocess.Popen(
        ['bash', '-c', f'export PATH={venv_bin}:$PATH && source {install}/setup.bash && '
         f'exec {script} {args}'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_process(process: subprocess.Popen, timeout: float = 15.0,
                 terminate: bool = True) -> tuple[int, str]:
    """
    SIGTERM (unless ``terminate`` is False), wait, return (exit code, output).

    Kills the process if it has not ended after ``timeout`` seconds.
    """
    if terminate and process.poll() is None:
        process.terminate()
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return -9, output
    return process.returncode, output


def ensure_rclpy() -> None:
    """rclpy.init once per test session (no context manager: Humble lacks it)."""
    if not rclpy.ok():
        rclpy.init()
