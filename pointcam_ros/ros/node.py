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
``pointcam_node``: the live ROS 2 node, a thin adapter over :class:`ScenePipeline`.

Topics (relative, so under the node's namespace), for one input topic::

    points                   (sub) sensor_msgs/PointCloud2, sensor-data QoS, depth 1
    pointcam/saliency        (pub) sensor_msgs/PointCloud2: x y z intensity label object_id
    pointcam/labels          (pub) visualization_msgs/MarkerArray: boxes + "car 0.93"
    /diagnostics             (pub) diagnostic_msgs/DiagnosticArray, ~1 Hz

With several ``input_topics``, each gets ``pointcam/<topic>/saliency`` and
``pointcam/<topic>/labels``, where ``<topic>`` is the input name with ``/``
replaced by ``_`` (``/lidar/front`` -> ``pointcam/lidar_front/saliency``).

The subscription callback only stores the newest message per topic in a
:class:`~pointcam_ros.common.scan_mailbox.Mailbox` (a newer one replaces an
unprocessed older one, which is counted as dropped); a worker thread does
the GPU/CPU work, so the executor stays free for parameters, diagnostics and
shutdown. Any exception in the worker is logged (throttled), counted and
shown as ERROR in /diagnostics, and the worker goes on with the next scan.

The /diagnostics level follows the last ``diagnostics_window`` seconds:
ERROR for failed scans or parameters that could not be applied, WARN for
rejected or dropped scans, OK otherwise; the counters stay cumulative.
Parameters: ``pointcam_node --help`` or :func:`~pointcam_ros.common.config.markdown_table`.
"""

from collections import Counter, deque
from dataclasses import dataclass, field
import json
import re
import threading
import time
from typing import Any, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from pointcam_ros.common.config import (
    ConfigError, node_params, output_prefix, PipelineConfig)
from pointcam_ros.common.scan_mailbox import Mailbox
from pointcam_ros.formats.cloud_io import CloudFormatError
from pointcam_ros.formats.markers import object_markers
from pointcam_ros.perception.pipeline import ScanError, ScenePipeline
from pointcam_ros.ros.ros_main import declare_from_schema, run_main
from pointcam_ros.ros.ros_msgs import to_ros_cloud, to_ros_markers
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
PIPELINE_NAMES = frozenset(spec.name for spec in PipelineConfig.params())
_NUMBER = re.compile(r'-?\d+(\.\d+)?(e[-+]?\d+)?|nan|inf', re.IGNORECASE)


def reason_key(message: str) -> str:
    """Group reject messages by kind: numbers become ``N`` (``'row_step N is ...'``)."""
    return _NUMBER.sub('N', message)[:100]


@dataclass
class TopicStats:
    """Counters, recent outcomes and timings of one input topic (guarded by the node's lock)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    errors: int = 0
    skipped: int = 0
    last_reason: str = ''
    reasons: Counter = field(default_factory=Counter)  # reject/error kind -> count
    recent: deque = field(default_factory=deque)  # (monotonic time, outcome)
    input_times: deque = field(default_factory=lambda: deque(maxlen=200))
    output_times: deque = field(default_factory=lambda: deque(maxlen=200))
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=1000))

    def note(self, outcome: str, now: float, window: float) -> None:
        """Record ``outcome`` (processed, rejected, error, dropped, skipped) at ``now``."""
        self.recent.append((now, outcome))
        while self.recent and now - self.recent[0][0] > window:
            self.recent.popleft()

    def window_counts(self, now: float, window: float) -> Counter:
        """Outcomes of the last ``window`` seconds."""
        return Counter(outcome for t, outcome in self.recent if now - t <= window)


def _rate(times: deque, now: float, window: float = 5.0) -> float:
    recent = [t for t in times if now - t <= window]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


class PointcamNode(Node):
    """Subscribe to LiDAR scans; publish saliency clouds, label markers and diagnostics."""

    def __init__(self, **kwargs: Any):
        super().__init__('pointcam', **kwargs)
        values = declare_from_schema(self, node_params())
        topics = values['input_topics']
        self._window = values['diagnostics_window']
        config = PipelineConfig.from_dict({k: v for k, v in values.items()
                                           if k in PIPELINE_NAMES})
        try:
            self.pipeline = ScenePipeline(config.replace(target_class=''))
        except ValueError as exc:  # resolve_device: unknown or unavailable device
            raise ConfigError('device', str(exc)) from exc
        self._check_target(config)
        self.pipeline.reconfigure(config)
        self.config = config  # applied to the pipeline
        self._requested = config  # what the parameters say (applied from the next scan)
        self._config_error = ''  # why _requested could not be applied, '' when it was
        self._failed: Optional[PipelineConfig] = None  # the config that could not be applied
        self._worker_errors = 0
        self.get_logger().info(
            f'device {self.pipeline.device} ({"CUDA" if self.pipeline.device.type == "cuda" else "CPU"}), '  # noqa: E501
            f'model {self.pipeline.loaded.path} ({len(self.pipeline.class_names)} classes), '
            f'method {config.method}, inputs {topics}')
        self._lock = threading.Lock()
        self._mailbox: Mailbox[PointCloud2] = Mailbox()
        self._stats = {topic: TopicStats() for topic in topics}
        self._outputs = {}
        for topic in topics:
            prefix = output_prefix(topic, len(topics) > 1)
            self._outputs[topic] = (
                self.create_publisher(PointCloud2, f'{prefix}/saliency', RELIABLE),
                self.create_publisher(MarkerArray, f'{prefix}/labels', RELIABLE))
            self.create_subscription(
                PointCloud2, topic, lambda msg, t=topic: self.cloud_callback(t, msg),
                qos_profile_sensor_data)
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(values['diagnostics_period'], self.diagnostics_callback)
        self.add_on_set_parameters_callback(self.parameters_callback)
        self._worker = threading.Thread(target=self._work, name='pointcam_worker', daemon=True)
        self._worker.start()

    # --- parameters ----------------------------------------------------------------------

    def _check_target(self, config: PipelineConfig) -> None:
        if config.target_class and config.target_class not in self.pipeline.class_names:
            raise ConfigError('target_class', f"'{config.target_class}' is not a class of "
                                              f'the model: {self.pipeline.class_names}')

    def parameters_callback(self, parameters: Sequence[Any]) -> SetParametersResult:
        """Validate run-time changes as a whole with the schema; applied from the next scan."""
        if any(not p.name for p in parameters):
            return SetParametersResult(successful=False, reason='empty parameter name')
        changes = {p.name: p.value for p in parameters if p.name in PIPELINE_NAMES}
        if not changes:
            return SetParametersResult(successful=True)
        with self._lock:
            try:
                candidate = PipelineConfig.from_dict({**self._requested.to_dict(), **changes})
                self._check_target(candidate)
            except ValueError as exc:
                self.get_logger().warning(f'rejected parameter change {changes}: {exc}')
                return SetParametersResult(successful=False, reason=str(exc))
            self._requested = candidate
        self.get_logger().info(f'parameters {changes} apply from the next scan')
        return SetParametersResult(successful=True)

    def _apply_requested(self) -> None:
        """Reconfigure the pipeline if the parameters changed (under the lock, see #2)."""
        with self._lock:
            if self._requested is self.config or self._requested is self._failed:
                return
            try:
                self.pipeline.reconfigure(self._requested)
            except Exception as exc:  # noqa: B902 - shown as ERROR, the old config stays
                self._worker_errors += 1
                self._config_error = f'{type(exc).__name__}: {exc}'
                self._failed = self._requested
                self.get_logger().error(
                    f'parameters not applied, still using the previous ones: {exc!r}',
                    throttle_duration_sec=5.0)
                return
            self.config = self._requested
            self._config_error, self._failed = '', None

    # --- input -----------------------------------------------------------------------------

    def cloud_callback(self, topic: str, msg: PointCloud2) -> None:
        """Keep only the newest scan per topic and wake the worker."""
        now = time.monotonic()
        replaced = self._mailbox.put(topic, msg)
        with self._lock:
            stats = self._stats[topic]
            stats.received += 1
            stats.input_times.append(now)
            if replaced:
                stats.dropped += 1
                stats.note('dropped', now, self._window)

    def _work(self) -> None:
        while True:
            taken = self._mailbox.take()
            if taken is None:
                return
            topic, msg = taken
            try:
                self._apply_requested()
                self._process(topic, msg)
            except Exception as exc:  # noqa: B902 - the worker must keep serving
                self._count(topic, 'error', f'{type(exc).__name__}: {exc}')
                self.get_logger().error(f'worker error on {topic}: {exc!r}',
                                        throttle_duration_sec=5.0)

    def _count(self, topic: str, outcome: str, reason: str = '',
               latency_ms: Optional[float] = None) -> None:
        now = time.monotonic()
        with self._lock:
            stats = self._stats[topic]
            stats.note(outcome, now, self._window)
            if outcome == 'processed':
                stats.processed += 1
                stats.output_times.append(now)
                stats.latencies_ms.append(latency_ms)
            elif outcome == 'skipped':
                stats.skipped += 1
            else:
                if outcome == 'rejected':
                    stats.rejected += 1
                else:
                    stats.errors += 1
                    self._worker_errors += 1
                stats.last_reason = reason
                stats.reasons[reason_key(reason)] += 1

    def _process(self, topic: str, msg: PointCloud2) -> None:
        started = time.monotonic()
        saliency_pub, labels_pub = self._outputs[topic]
        if saliency_pub.get_subscription_count() + labels_pub.get_subscription_count() == 0:
            self._count(topic, 'skipped')
            return
        try:
            result, cloud = self.pipeline.process_cloud(msg)
        except (CloudFormatError, ScanError) as exc:
            self._count(topic, 'rejected', str(exc))
            self.get_logger().warning(f'rejected scan on {topic}: {exc}',
                                      throttle_duration_sec=5.0)
            return
        saliency_pub.publish(to_ros_cloud(cloud, msg.header))
        labels_pub.publish(to_ros_markers(object_markers(result.objects), msg.header))
        self._count(topic, 'processed', latency_ms=1e3 * (time.monotonic() - started))

    # --- diagnostics ---------------------------------------------------------------------

    def _level(self, window: Counter) -> tuple[bytes, str]:
        """Level and message from the outcomes of the recent window (see module docstring)."""
        span = f'in the last {self._window:g} s'
        if self._config_error:
            return DiagnosticStatus.ERROR, f'parameters not applied: {self._config_error}'
        if window['error']:
            return DiagnosticStatus.ERROR, f'{window["error"]} scans failed {span}'
        if window['rejected'] or window['dropped']:
            return DiagnosticStatus.WARN, (f'{window["dropped"]} dropped, '
                                           f'{window["rejected"]} rejected {span}')
        if window['processed']:
            return DiagnosticStatus.OK, f'{window["processed"]} scans explained {span}'
        return DiagnosticStatus.OK, f'no scan to explain {span}'

    def diagnostics_callback(self) -> None:
        """Publish one DiagnosticStatus per input topic."""
        now = time.monotonic()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            config = self.config
            node_values = {'worker_errors': self._worker_errors,
                           'config_error': self._config_error}
            snapshot = {}
            for topic, s in self._stats.items():
                window = s.window_counts(now, self._window)
                level, message = self._level(window)
                snapshot[topic] = (level, message, {
                    'input_rate_hz': f'{_rate(s.input_times, now):.2f}',
                    'output_rate_hz': f'{_rate(s.output_times, now):.2f}',
                    'latencies': list(s.latencies_ms),
                    'received': s.received, 'processed': s.processed, 'dropped': s.dropped,
                    'rejected': s.rejected, 'errors': s.errors,
                    'skipped_no_subscribers': s.skipped,
                    'window_s': f'{self._window:g}', 'window_processed': window['processed'],
                    'window_dropped': window['dropped'],
                    'window_rejected': window['rejected'], 'window_errors': window['error'],
                    'last_reject_reason': s.last_reason,
                    'reject_reasons': json.dumps(dict(s.reasons.most_common(20)))})
        for topic, (level, message, values) in snapshot.items():
            status = DiagnosticStatus()
            status.name = f'{self.get_fully_qualified_name()}: {topic}'
            status.hardware_id = str(self.pipeline.device)
            status.level, status.message = level, message
            latencies = values.pop('latencies')
            p50, p99 = (np.percentile(latencies, [50, 99]) if latencies else (0.0, 0.0))
            values.update({
                'latency_p50_ms': f'{p50:.1f}', 'latency_p99_ms': f'{p99:.1f}',
                **node_values, 'device': str(self.pipeline.device),
                'model': self.pipeline.loaded.path, 'method': config.method,
                'target_class': config.target_class or '(predicted)'})
            status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            array.status.append(status)
        self._diagnostics.publish(array)

    def stop(self) -> None:
        """Stop the worker thread (waits for the scan in progress)."""
        self._mailbox.close()
        self._worker.join(timeout=10.0)


SUMMARY = ('Explain LiDAR scans: subscribes to PointCloud2, publishes Grad-CAM saliency '
           'clouds, label markers and /diagnostics.')


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of ``ros2 run pointcam_ros pointcam_node``."""
    return run_main(PointcamNode, 'pointcam', 'pointcam_node', SUMMARY, node_params(), args)
