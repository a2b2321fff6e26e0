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
Launch pointcam_node on a LiDAR topic.

For ROS 2 machines (Humble, Jazzy, Kilted); launch is not installable
from PyPI, so this file is not run by the pip-only test suite.

    ros2 launch pointcam_ros pointcam.launch.py input_topic:=/velodyne_points
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    """Declare the arguments and the pointcam_node with its parameter file."""
    share = get_package_share_directory('pointcam_ros')
    default_params = os.path.join(share, 'config', 'pointcam.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('input_topic', default_value='points',
                              description='PointCloud2 topic to explain'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML file with the node parameters'),
        DeclareLaunchArgument('model_path', default_value='',
                              description='Checkpoint (.pt); empty = shipped default model'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='auto, cpu, cuda or cuda:N'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock (bag playback, simulation)'),
        Node(
            package='pointcam_ros',
            executable='pointcam_node',
            name='pointcam',
            output='screen',
            parameters=[
                LaunchConfiguration('params_file'),
                {
                    'model_path': LaunchConfiguration('model_path'),
                    'device': LaunchConfiguration('device'),
                    'use_sim_time': LaunchConfiguration('use_sim_time'),
                },
            ],
            remappings=[('points', LaunchConfiguration('input_topic'))],
        ),
    ])
