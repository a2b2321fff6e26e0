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
``pointcam_sim``: publish simulated LiDAR scans like a real driver does.

Publishes ``points`` (sensor_msgs/PointCloud2, organized beams x columns, in
the preset's real driver layout: Velodyne XYZIRT for vlp16/hdl32/hdl64,
Ouster 48-byte for os1_*) at the sensor's rate, with moving cars, people
and cyclists, plus ``pointcam_sim/ground_truth`` (MarkerArray: one box and
"gt <class>" text per object). A new scene is generated every
``scene_period`` seconds.
"""

from typing import Any, Optional

from pointcam_ros.ros.ros_main import spin_node
from pointcam_ros.ros.ros_msgs import to_ros_cloud, to_ros_markers
from pointcam_ros.sim.clouds import ground_truth_markers, scan_to_cloud
from pointcam_ros.sim.simulator import move_objects, random_scene, scan, SCENE_KINDS, SENSORS
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray


class SimNode(Node):
    """Publishes simulated scans at the preset's rate."""

    def __init__(self, **kwargs: Any):
        super().__init__('pointcam_sim', **kwargs)
        self.declare_parameter('sensor', 'vlp16', ParameterDescriptor(
            description=f'sensor preset: {", ".join(SENSORS)}', read_only=True))
        self.declare_parameter('rate', 0.0, ParameterDescriptor(
            description="scans per second; 0 = the sensor's own rate", read_only=True))
        self.declare_parameter('seed', 0, ParameterDescriptor(description='first scene seed'))
        self.declare_parameter('scene', 'street', ParameterDescriptor(
            description=f'scene kind: {", ".join(SCENE_KINDS)}', read_only=True))
        self.declare_parameter('frame_id', 'lidar', ParameterDescriptor(
            description='frame_id of the published scans'))
        self.declare_parameter('mount_height', 1.8, ParameterDescriptor(
            description='sensor height above the ground (m)'))
        self.declare_parameter('scene_period', 10.0, ParameterDescriptor(
            description='seconds before a new scene is generated'))
        name = self.get_parameter('sensor').value
        if name not in SENSORS:
            raise ValueError(f"unknown sensor '{name}': choose one of {sorted(SENSORS)}")
        self.sensor = SENSORS[name]
        self.kind = self.get_parameter('scene').value
        if self.kind not in SCENE_KINDS:
            raise ValueError(f"unknown scene '{self.kind}': choose one of {SCENE_KINDS}")
        rate = self.get_parameter('rate').value or self.sensor.rate_hz
        self.seed = int(self.get_parameter('seed').value)
        self.scan_count = 0
        self.scene = random_scene(self.seed, self.kind)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.points_pub = self.create_publisher(PointCloud2, 'points', qos)
        self.truth_pub = self.create_publisher(MarkerArray, 'pointcam_sim/ground_truth', qos)
        self.create_timer(1.0 / rate, self.timer_callback)
        self.get_logger().info(f'simulating {name} at {rate:.1f} Hz on '
                               f'{self.points_pub.topic_name}')

    def timer_callback(self) -> None:
        """Advance the scene, scan it and publish the cloud and the ground truth."""
        period = self.get_parameter('scene_period').value
        scans_per_scene = max(1, int(round(period * self.sensor.rate_hz)))
        if self.scan_count and self.scan_count % scans_per_scene == 0:
            self.seed += 1
            self.scene = random_scene(self.seed, self.kind)
        else:
            move_objects(self.scene, 1.0 / self.sensor.rate_hz, self.seed + self.scan_count)
        mount = float(self.get_parameter('mount_height').value)
        result = scan(self.scene, self.sensor, self.seed * 100_003 + self.scan_count,
                      mount_height=mount)
        header = Header()
        header.stamp = self.get_clock().now().to_msg()
        header.frame_id = self.get_parameter('frame_id').value
        self.points_pub.publish(to_ros_cloud(scan_to_cloud(result), header))
        self.truth_pub.publish(to_ros_markers(ground_truth_markers(self.scene, mount), header))
        self.scan_count += 1


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of ``ros2 run pointcam_ros pointcam_sim``."""
    return spin_node(SimNode, 'pointcam_sim', args)
