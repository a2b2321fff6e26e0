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

The subscription callback only stores the newest message per topic (a
newer one replaces an unprocessed older one, which is counted as dropped);
a worker thread does the GPU/CPU work, so the executor stays free for
parameters, diagnostics and shutdown.
"""

from collections import deque
from dataclasses import dataclass, field, fields
import threading
import time
from typing import Any, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from pointcam_ros.common.config import output_prefix, PipelineConfig
from pointcam_ros.formats.cloud_io import CloudFormatError
from pointcam_ros.formats.markers import object_markers
from pointcam_ros.perception.pipeline import ScanError, ScenePipeline
from pointcam_ros.ros.ros_main import spin_node
from pointcam_ros.ros.ros_msgs import to_ros_cloud, to_ros_markers
from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult)
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

DESCRIPTIONS = {
    'mode': "'scene': segment scans into objects; 'object': each cloud is one object",
    'model_path': "checkpoint file (.pt); '' = the model shipped with the package",
    'device': "'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'",
    'method': 'gradcam, gradcam++, xgradcam, hirescam, occlusion or pointshift',
    'target_class': "class to explain for every object; '' = the predicted class",
    'min_confidence': 'objects less confident than this are shown as "unknown (car 0.41)"',
    'cpu_threads': "torch threads on the CPU; 0 = torch's default (all cores)",
    'min_range': 'ignore points closer than this (m)',
    'max_range': 'ignore points farther than this (m)',
    'min_z': 'lowest point height kept, sensor frame (m)',
    'max_z': 'highest point height kept, sensor frame (m)',
    'ground_threshold': 'height above the fitted ground plane still counted as ground (m)',
    'cluster_tolerance': 'horizontal voxel size of the clustering (m)',
    'cluster_z_tolerance': 'vertical voxel size of the clustering (m)',
    'min_cluster_points': 'smaller clusters are not classified',
    'max_cluster_points': 'larger clusters are not classified',
    'min_object_size': 'smallest longest-extent of an object (m)',
    'max_object_size': 'largest longest-extent of an object (m)',
    'max_input_points': 'scans with more points are rejected',
    'seed': 'seed of the per-object resampling',
}
FLOAT_RANGES = {
    'min_range': (0.0, 500.0), 'max_range': (0.1, 1000.0), 'min_z': (-100.0, 100.0),
    'max_z': (-100.0, 100.0), 'ground_threshold': (0.01, 5.0),
    'cluster_tolerance': (0.05, 5.0), 'cluster_z_tolerance': (0.05, 5.0),
    'min_object_size': (0.01, 100.0),
    'max_object_size': (0.05, 1000.0), 'min_confidence': (0.0, 1.0)}
INT_RANGES = {'min_cluster_points': (1, 1_000_000), 'max_cluster_points': (1, 10_000_000),
              'max_input_points': (1, 100_000_000), 'seed': (0, 2**31 - 1),
              'cpu_threads': (0, 256)}
READ_ONLY = ('model_path', 'device', 'cpu_threads')
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class TopicStats:
    """Counters and recent timings of one input topic (guarded by the node's lock)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    errors: int = 0
    skipped: int = 0
    last_reason: str = ''
    input_times: deque = field(default_factory=lambda: deque(maxlen=200))
    output_times: deque = field(default_factory=lambda: deque(maxlen=200))
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=1000))


def _rate(times: deque, now: float, window: float = 5.0) -> float:
    recent = [t for t in times if now - t <= window]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


class PointcamNode(Node):
    """Subscribe to LiDAR scans; publish saliency clouds, label markers and diagnostics."""

    def __init__(self, **kwargs: Any):
        super().__init__('pointcam', **kwargs)
        self._declare_parameters()
        topics = list(self.get_parameter('input_topics').value)
        if not topics or any(not t for t in topics):
            raise ValueError(f'input_topics must be a non-empty list of topic names, got {topics}')
        self.config = PipelineConfig.from_dict(
            {f.name: self.get_parameter(f.name).value for f in fields(PipelineConfig)})
        self.pipeline = ScenePipeline(self.config)
        self.get_logger().info(
            f'device {self.pipeline.device} ({"CUDA" if self.pipeline.device.type == "cuda" else "CPU"}), '  # noqa: E501
            f'model {self.pipeline.loaded.path} ({len(self.pipeline.class_names)} classes), '
            f'method {self.config.method}, inputs {topics}')
        self._lock = threading.Condition()
        self._pending_config: Optional[PipelineConfig] = None
        self._latest: dict[str, PointCloud2] = {}
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
        self.create_timer(self.get_parameter('diagnostics_period').value,
                          self.diagnostics_callback)
        self.add_on_set_parameters_callback(self.parameters_callback)
        self._running = True
        self._worker = threading.Thread(target=self._work, name='pointcam_worker', daemon=True)
        self._worker.start()

    # --- parameters ----------------------------------------------------------------------

    def _declare_parameters(self) -> None:
        self.declare_parameter('input_topics', ['points'], ParameterDescriptor(
            description='PointCloud2 topics to explain', read_only=True))
        self.declare_parameter('diagnostics_period', 1.0, ParameterDescriptor(
            description='seconds between /diagnostics messages', read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0)]))
        for item in fields(PipelineConfig):
            descriptor = ParameterDescriptor(description=DESCRIPTIONS[item.name],
                                             read_only=item.name in READ_ONLY)
            if item.name in FLOAT_RANGES:
                low, high = FLOAT_RANGES[item.name]
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=low, to_value=high)]
            if item.name in INT_RANGES:
                low, high = INT_RANGES[item.name]
                descriptor.integer_range = [IntegerRange(from_value=low, to_value=high)]
            self.declare_parameter(item.name, item.default, descriptor)

    def parameters_callback(self, parameters: Sequence[Any]) -> SetParametersResult:
        """Validate run-time changes as a whole; applied from the next scan on."""
        names = {f.name for f in fields(PipelineConfig)}
        with self._lock:
            base = (self._pending_config or self.config).to_dict()
        changes = {p.name: p.value for p in parameters if p.name in names}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            candidate = PipelineConfig.from_dict({**base, **changes})
            if candidate.target_class and candidate.target_class not in \
                    self.pipeline.class_names:
                raise ValueError(f"target_class '{candidate.target_class}' is not one of "
                                 f'{self.pipeline.class_names}')
        except ValueError as exc:
            self.get_logger().warning(f'rejected parameter change {changes}: {exc}')
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            self._pending_config = candidate
        self.get_logger().info(f'parameters {changes} apply from the next scan')
        return SetParametersResult(successful=True)

    # --- input -----------------------------------------------------------------------------

    def cloud_callback(self, topic: str, msg: PointCloud2) -> None:
        """Keep only the newest scan per topic and wake the worker."""
        with self._lock:
            stats = self._stats[topic]
            stats.received += 1
            stats.input_times.append(time.monotonic())
            if topic in self._latest:
                stats.dropped += 1
            self._latest[topic] = msg
            self._lock.notify()

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._running and not self._latest:
                    self._lock.wait(timeout=0.5)
                if not self._running:
                    return
                topic = next(iter(self._latest))
                msg = self._latest.pop(topic)
                pending, self._pending_config = self._pending_config, None
            if pending is not None:
                self.pipeline.reconfigure(pending)
                self.config = pending
            self._process(topic, msg)

    def _process(self, topic: str, msg: PointCloud2) -> None:
        started = time.monotonic()
        saliency_pub, labels_pub = self._outputs[topic]
        stats = self._stats[topic]
        if saliency_pub.get_subscription_count() + labels_pub.get_subscription_count() == 0:
            with self._lock:
                stats.skipped += 1
            return
        try:
            result, cloud = self.pipeline.process_cloud(msg)
            saliency_pub.publish(to_ros_cloud(cloud, msg.header))
            labels_pub.publish(to_ros_markers(object_markers(result.objects), msg.header))
        except (CloudFormatError, ScanError) as exc:
            with self._lock:
                stats.rejected += 1
                stats.last_reason = str(exc)
            self.get_logger().warning(f'rejected scan on {topic}: {exc}',
                                      throttle_duration_sec=5.0)
            return
        except Exception as exc:  # noqa: B902 - the node must survive any bad scan
            with self._lock:
                stats.errors += 1
                stats.last_reason = f'{type(exc).__name__}: {exc}'
            self.get_logger().error(f'processing a scan on {topic} failed: {exc!r}',
                                    throttle_duration_sec=5.0)
            return
        done = time.monotonic()
        with self._lock:
            stats.processed += 1
            stats.output_times.append(done)
            stats.latencies_ms.append(1e3 * (done - started))

    # --- diagnostics ---------------------------------------------------------------------

    def diagnostics_callback(self) -> None:
        """Publish one DiagnosticStatus per input topic."""
        now = time.monotonic()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            snapshot = {t: (s.received, s.processed, s.dropped, s.rejected, s.errors,
                            s.skipped, s.last_reason, _rate(s.input_times, now),
                            _rate(s.output_times, now), list(s.latencies_ms))
                        for t, s in self._stats.items()}
            config = self.config
        for topic, (received, processed, dropped, rejected, errors, skipped, reason,
                    rate_in, rate_out, latencies) in snapshot.items():
            status = DiagnosticStatus()
            status.name = f'{self.get_fully_qualified_name()}: {topic}'
            status.hardware_id = str(self.pipeline.device)
            p50, p99 = (np.percentile(latencies, [50, 99]) if latencies else (0.0, 0.0))
            if errors:
                status.level, status.message = DiagnosticStatus.ERROR, f'{errors} scans failed'
            elif rejected or dropped:
                status.level = DiagnosticStatus.WARN
                status.message = f'{dropped} dropped, {rejected} rejected'
            else:
                status.level, status.message = DiagnosticStatus.OK, 'ok'
            values = {
                'input_rate_hz': f'{rate_in:.2f}', 'output_rate_hz': f'{rate_out:.2f}',
                'latency_p50_ms': f'{p50:.1f}', 'latency_p99_ms': f'{p99:.1f}',
                'received': received, 'processed': processed, 'dropped': dropped,
                'rejected': rejected, 'errors': errors, 'skipped_no_subscribers': skipped,
                'last_reject_reason': reason, 'device': str(self.pipeline.device),
                'model': self.pipeline.loaded.path, 'method': config.method,
                'target_class': config.target_class or '(predicted)'}
            status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            array.status.append(status)
        self._diagnostics.publish(array)

    def stop(self) -> None:
        """Stop the worker thread (waits for the scan in progress)."""
        with self._lock:
            self._running = False
            self._lock.notify_all()
        self._worker.join(timeout=10.0)


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of ``ros2 run pointcam_ros pointcam_node``."""
    return spin_node(PointcamNode, 'pointcam', args)
