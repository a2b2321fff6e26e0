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
Demo: the simulated LiDAR (pointcam_sim) feeding pointcam_node.

For ROS 2 machines. Open RViz with the shipped view::

    ros2 launch pointcam_ros demo.launch.py sensor:=vlp16
    rviz2 -d $(ros2 pkg prefix pointcam_ros)/share/pointcam_ros/config/pointcam.rviz
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument, IncludeLaunchDescription, SetEnvironmentVariable)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from pointcam_ros.ros.dds import large_data_profile, PROFILE_VARIABLES


def generate_launch_description():
    """Start pointcam_sim on topic points and include pointcam.launch.py."""
    share = get_package_share_directory('pointcam_ros')
    return LaunchDescription([
        # Multi-MB scans: large shared-memory segments for the simulator and the node.
        *[SetEnvironmentVariable(name, str(large_data_profile()))
          for name in PROFILE_VARIABLES],
        DeclareLaunchArgument('sensor', default_value='vlp16',
                              description='vlp16, hdl32, hdl64, os1_64 or os1_128'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='auto, cpu, cuda or cuda:N'),
        Node(
            package='pointcam_ros',
            executable='pointcam_sim',
            name='pointcam_sim',
            output='screen',
            parameters=[{'sensor': LaunchConfiguration('sensor')}],
        ),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'pointcam.launch.py')),
            launch_arguments={'input_topic': 'points',
                              'device': LaunchConfiguration('device')}.items(),
        ),
    ])
