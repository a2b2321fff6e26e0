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

from typing import Any, Optional, Sequence

from pointcam_ros.common.config import Param
from pointcam_ros.ros.ros_main import declare_from_schema, run_main
from pointcam_ros.ros.ros_msgs import to_ros_cloud, to_ros_markers
from pointcam_ros.sim.clouds import ground_truth_markers, scan_to_cloud
from pointcam_ros.sim.simulator import move_objects, random_scene, scan, SCENE_KINDS, SENSORS
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray


SIM_PARAMS = (
    Param('sensor', 'vlp16', 'sensor preset (beams, field of view, driver layout)',
          choices=tuple(SENSORS), read_only=True),
    Param('rate', 0.0, "scans per second; 0 = the sensor's own rate", unit='Hz', low=0.0,
          high=100.0, read_only=True),
    Param('seed', 0, 'seed of the first scene', low=0, high=2**31 - 1, read_only=True),
    Param('scene', 'street', 'scene kind: a street with buildings and parked cars, a campus '
          'with trees and hedges, or open ground', choices=tuple(SCENE_KINDS), read_only=True),
    Param('frame_id', 'lidar', 'frame_id of the published scans'),
    Param('mount_height', 1.8, 'sensor height above the ground', unit='m', low=0.1, high=10.0),
    Param('scene_period', 10.0, 'time before a new scene is generated', unit='s', low=0.1,
          high=3600.0),
)


class SimNode(Node):
    """Publishes simulated scans at the preset's rate."""

    def __init__(self, **kwargs: Any):
        super().__init__('pointcam_sim', **kwargs)
        values = declare_from_schema(self, SIM_PARAMS, 'pointcam_sim')
        self.add_on_set_parameters_callback(self.parameters_callback)
        name = values['sensor']
        self.sensor = SENSORS[name]
        self.kind = values['scene']
        rate = values['rate'] or self.sensor.rate_hz
        self.seed = values['seed']
        self.scan_count = 0
        self.scene = random_scene(self.seed, self.kind)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.points_pub = self.create_publisher(PointCloud2, 'points', qos)
        self.truth_pub = self.create_publisher(MarkerArray, 'pointcam_sim/ground_truth', qos)
        self.create_timer(1.0 / rate, self.timer_callback)
        self.get_logger().info(f'simulating {name} at {rate:.1f} Hz on '
                               f'{self.points_pub.topic_name}')

    def parameters_callback(self, parameters: Sequence[Any]) -> SetParametersResult:
        """Check run-time changes with the schema (unknown names are left to rclpy)."""
        specs = {spec.name: spec for spec in SIM_PARAMS}
        for parameter in parameters:
            if not parameter.name:
                return SetParametersResult(successful=False, reason='empty parameter name')
            if parameter.name in specs:
                try:
                    specs[parameter.name].check(parameter.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

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
    return run_main(SimNode, 'pointcam_sim', 'pointcam_sim',
                    'Publish simulated LiDAR scans (PointCloud2, real driver layouts) and '
                    'ground-truth markers.', SIM_PARAMS, args)
