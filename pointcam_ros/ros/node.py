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

import threading
import time
from typing import Any, Callable, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from pointcam_ros.common.config import (
    ConfigError, node_params, output_prefixes, PipelineConfig)
from pointcam_ros.common.scan_mailbox import Mailbox
from pointcam_ros.common.scan_stats import ScanStats
from pointcam_ros.formats.cloud_io import CloudFormatError
from pointcam_ros.formats.scan_io import explain_cloud
from pointcam_ros.model.registry import family_of
from pointcam_ros.perception.pipeline import object_limit, ScanError, ScenePipeline
from pointcam_ros.ros.ros_main import declare_from_schema, run_main
from pointcam_ros.ros.ros_msgs import message_buffer, to_ros_cloud, to_ros_markers
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray


def model_family(model: Any) -> str:
    """Registry name of ``model``'s family (``pointnet``, ...), else its class name."""
    try:
        return family_of(model)
    except ValueError:  # a model of one's own (the protocol of docs/models.md)
        return type(model).__name__


RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
PIPELINE_NAMES = frozenset(spec.name for spec in PipelineConfig.params())
#: s; how long a stopping node waits for the scan in progress (its daemon thread ends with
#: the process after that). Under 5 s, the time ``ros2 launch`` gives a process between
#: SIGTERM and SIGKILL, so a clean exit is not cut off by a long scan.
STOP_WAIT_S = 4.0
#: ``transport_in`` is counted only for header stamps this much older than the arrival
#: at most (a driver stamping with the same clock); sim time or old bags are left out.
TRANSPORT_PLAUSIBLE_S = 5.0
#: The PointCloud2 type name as ``get_topic_names_and_types`` reports it.
CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'


class PointcamNode(Node):
    """Subscribe to LiDAR scans; publish saliency clouds, label markers and diagnostics."""

    def __init__(self, **kwargs: Any):
        super().__init__('pointcam', **kwargs)
        values = declare_from_schema(self, node_params(), 'pointcam_node')
        topics = values['input_topics']
        prefixes = output_prefixes(topics)  # ConfigError: two inputs, one output topic
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
        self._failed: Optional[PipelineConfig] = None  # the config that could not be applied
        self._lock = threading.Lock()
        # (message, wall time of its arrival, monotonic time of its arrival)
        self._mailbox: Mailbox[tuple[PointCloud2, float, float]] = Mailbox()
        self._stats = ScanStats(topics, self._window, time.monotonic())
        self._outputs = {}
        self._resolved: dict[str, str] = {}  # input topic as given -> resolved name
        self._idle_warned: dict[str, float] = {}  # topic -> monotonic time of the last warning
        # (topic, 'skipped' | 'processed'): first scans already told on the console (worker
        # thread only).
        self._told: set[tuple[str, str]] = set()
        wiring = []
        for topic in topics:
            prefix = prefixes[topic]
            saliency = self.create_publisher(PointCloud2, f'{prefix}/saliency', RELIABLE)
            labels = self.create_publisher(MarkerArray, f'{prefix}/labels', RELIABLE)
            self._outputs[topic] = (saliency, labels)
            subscription = self.create_subscription(
                PointCloud2, topic, lambda msg, t=topic: self.cloud_callback(t, msg),
                qos_profile_sensor_data)
            self._resolved[topic] = subscription.topic_name
            wiring.append(f'{subscription.topic_name} -> {saliency.topic_name}, '
                          f'{labels.topic_name}')
        self.get_logger().info(
            f'device {self.pipeline.device} ({"CUDA" if self.pipeline.device.type == "cuda" else "CPU"}), '  # noqa: E501
            f'model {self.pipeline.loaded.path} ({model_family(self.pipeline.loaded.model)}, '
            f'{len(self.pipeline.class_names)} classes), '
            f'method {config.method}; ' + '; '.join(wiring))
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
                self._stats.worker_errors += 1
                self._stats.config_error = f'{type(exc).__name__}: {exc}'
                self._failed = self._requested
                self.get_logger().error(
                    f'parameters not applied, still using the previous ones: {exc!r}',
                    throttle_duration_sec=5.0)
                return
            self.config = self._requested
            self._stats.config_error, self._failed = '', None

    # --- input -----------------------------------------------------------------------------

    def cloud_callback(self, topic: str, msg: PointCloud2) -> None:
        """Keep only the newest scan per topic and wake the worker."""
        now = time.monotonic()
        replaced = self._mailbox.put(topic, (msg, time.time(), now))
        with self._lock:
            self._stats.received(topic, now, replaced)

    def _work(self) -> None:
        while True:
            taken = self._mailbox.take()
            if taken is None:
                return
            topic, (msg, arrived_wall, arrived) = taken
            try:
                self._apply_requested()
                self._process(topic, msg, arrived_wall, arrived)
            except Exception as exc:  # noqa: B902 - the worker must keep serving
                if not self.context.ok():
                    return  # shutting down: publishing failed because the context is gone
                self._count(topic, 'error', exc)
                self.get_logger().error(f'worker error on {topic}: {exc!r}',
                                        throttle_duration_sec=5.0)

    def _count(self, topic: str, outcome: str, error: Optional[BaseException] = None,
               **details: Any) -> None:
        """Record a scan's outcome in the statistics (see :meth:`ScanStats.count`)."""
        with self._lock:
            self._stats.count(topic, outcome, time.monotonic(), error, **details)

    def _process(self, topic: str, msg: PointCloud2, arrived_wall: float,
                 arrived: float) -> None:
        """
        Decode, explain, encode and publish one scan; time each stage.

        Decode -> process -> encode is one call,
        :func:`~pointcam_ros.formats.scan_io.explain_cloud`, as in the bag tool.
        """
        started = time.monotonic()
        saliency_pub, labels_pub = self._outputs[topic]
        if saliency_pub.get_subscription_count() + labels_pub.get_subscription_count() == 0:
            self._count(topic, 'skipped')
            self._tell_once(topic, 'skipped', lambda: (
                f'scans arrive on {self._resolved[topic]}, but nothing subscribes to '
                f'{saliency_pub.topic_name} or {labels_pub.topic_name}: they are not explained '
                'until something does (RViz, ros2 bag record, a node of yours)'))
            return
        stages = {'mailbox': 1e3 * (started - arrived)}
        since_stamp = arrived_wall - (msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec)
        if 0.0 <= since_stamp < TRANSPORT_PLAUSIBLE_S:  # a stamp of this clock (not sim time)
            stages['transport_in'] = 1e3 * since_stamp
        # Each output only when someone subscribes to it; the saliency cloud is written
        # straight into the message's data.
        try:
            scan = explain_cloud(msg, self.pipeline.process,
                                 encode=bool(saliency_pub.get_subscription_count()),
                                 labels=bool(labels_pub.get_subscription_count()),
                                 buffer=message_buffer,  # decode -> process -> encode
                                 max_points=self.pipeline.config.max_input_points)
        except (CloudFormatError, ScanError) as exc:
            self._count(topic, 'rejected', exc)
            self.get_logger().warning(f'rejected scan on {topic}: {exc}',
                                      throttle_duration_sec=5.0)
            return
        result = scan.result
        processed = time.monotonic()
        built = published = processed
        # The saliency cloud first (the answer RViz and recorders wait for), then the
        # markers.
        if scan.cloud is not None:
            cloud = to_ros_cloud(scan.cloud, msg.header)  # takes the buffer over, no copy
            built = time.monotonic()
            saliency_pub.publish(cloud)
            published = time.monotonic()
        if scan.markers is not None:
            labels_pub.publish(to_ros_markers(scan.markers, msg.header))
        labelled = time.monotonic()
        stages.update(decode=1e3 * (processed - started) - scan.process_ms - scan.encode_ms,
                      pipeline=scan.process_ms, build=scan.encode_ms + 1e3 * (built - processed),
                      publish=1e3 * (published - built), labels=1e3 * (labelled - published))
        self._count(topic, 'processed', latency_ms=1e3 * (labelled - started),
                    capped=result.objects_capped, stages=stages)
        self._tell_once(topic, 'processed', lambda: (
            f'first scan on {self._resolved[topic]} explained: {len(result.objects)} objects in '
            f'{scan.process_ms:.0f} ms (warm-up included); the running figures are on '
            '/diagnostics'))
        if result.objects_capped:
            self.get_logger().warning(
                f'{topic}: {result.objects_capped} clusters over the per-scan cap of '
                f'{object_limit(self.config.method)} objects ({self.config.method}) were not '
                'explained (the largest ones were)', throttle_duration_sec=10.0)

    def _tell_once(self, topic: str, event: str, text: Callable[[], str]) -> None:
        """
        Log ``text()`` at INFO the first time ``event`` happens on ``topic`` (worker thread).

        ``text`` is called only then: the message is not built for every scan.
        """
        if (topic, event) not in self._told:
            self._told.add((topic, event))
            self.get_logger().info(text())

    # --- diagnostics ---------------------------------------------------------------------

    def _warn_idle(self, idle_topics: Sequence[str]) -> None:
        """
        Warn (once per window and topic) that an input receives nothing.

        Names the resolved topic and every PointCloud2 topic this node can see
        with its publisher count, so a wrong name or remapping shows at once.
        """
        now = time.monotonic()
        due = [t for t in idle_topics if now - self._idle_warned.get(t, -1e18) >= self._window]
        if not due:
            return
        own = {saliency.topic_name for saliency, _ in self._outputs.values()}
        seen = []
        for name, types in self.get_topic_names_and_types():
            if CLOUD_TYPE in types and name not in own:
                publishers = self.count_publishers(name)
                if publishers:
                    seen.append(f'{name} ({publishers} publisher{"s" * (publishers > 1)})')
        for topic in due:
            self._idle_warned[topic] = now
            resolved = self._resolved[topic]
            others = [entry for entry in seen if entry.split(' ')[0] != resolved]
            self.get_logger().warning(
                f'no scan on {resolved} for {self._window:g} s or more '
                f'({self.count_publishers(resolved)} publishers); PointCloud2 topics with '
                f'publishers: {", ".join(others) if others else "none other"}. Check the '
                'driver, input_topics and any remapping (-r points:=/your/topic).')

    def diagnostics_callback(self) -> None:
        """Publish one DiagnosticStatus per input topic."""
        now = time.monotonic()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            config = self.config
            snapshot = {topic: self._stats.status(topic, now) for topic in self._stats.topics}
            idle_topics = [topic for topic in self._stats.topics
                           if self._stats.idle_seconds(topic, now) is not None]
        for topic, (level, message, values) in snapshot.items():
            status = DiagnosticStatus()
            status.name = f'{self.get_fully_qualified_name()}: {topic}'
            status.hardware_id = str(self.pipeline.device)
            status.level, status.message = bytes([level]), message
            values.update({
                'input_topic': self._resolved[topic], 'object_cap': object_limit(config.method),
                'device': str(self.pipeline.device), 'model': self.pipeline.loaded.path,
                'model_family': model_family(self.pipeline.loaded.model),
                'method': config.method, 'target_class': config.target_class or '(predicted)'})
            status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            array.status.append(status)
        self._diagnostics.publish(array)
        self._warn_idle(idle_topics)

    def stop(self) -> None:
        """Stop the worker thread: wait for the scan in progress, at most :data:`STOP_WAIT_S`."""
        self._mailbox.close()
        self._worker.join(timeout=STOP_WAIT_S)


SUMMARY = ('Explain LiDAR scans: subscribes to PointCloud2, publishes Grad-CAM saliency '
           'clouds, label markers and /diagnostics.')


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of ``ros2 run pointcam_ros pointcam_node``."""
    return run_main(PointcamNode, 'pointcam', 'pointcam_node', SUMMARY, node_params(), args)
