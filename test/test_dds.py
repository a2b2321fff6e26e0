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

"""The DDS profile is exported under the variable the running distribution reads."""

import os
from pathlib import Path
import subprocess
import sys

from pointcam_ros.ros.dds import export_line, large_data_profile, profile_variable
from pointcam_ros.ros.dds import use_large_data_profile
import pytest

pytestmark = pytest.mark.ros
_RCLPY_NODE = ("import rclpy; rclpy.init(); n = rclpy.create_node('dds_check'); "
               'n.destroy_node(); rclpy.shutdown()')


@pytest.mark.parametrize('distro, variable', [
    ('humble', 'FASTRTPS_DEFAULT_PROFILES_FILE'), ('Humble', 'FASTRTPS_DEFAULT_PROFILES_FILE'),
    ('jazzy', 'FASTDDS_DEFAULT_PROFILES_FILE'), ('kilted', 'FASTDDS_DEFAULT_PROFILES_FILE'),
    (None, 'FASTDDS_DEFAULT_PROFILES_FILE')])  # the PyPI wheels are Kilted
def test_the_variable_follows_the_distribution(distro, variable):
    env = {} if distro is None else {'ROS_DISTRO': distro}
    assert profile_variable(env) == variable
    assert export_line(env) == f'export {variable}={large_data_profile()}'
    use_large_data_profile(env)
    assert env[variable] == str(large_data_profile()) and Path(env[variable]).is_file()
    other = {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'}
    use_large_data_profile(other)  # a profile the user set is kept
    assert other == {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'}


def _node_output(extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE',
                        'ROS_DISTRO')}
    env.update(extra_env)
    result = subprocess.run([sys.executable, '-c', _RCLPY_NODE], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_documented_export_gives_no_deprecation_warning():
    """``eval "$(python3 -m pointcam_ros.ros.dds)"`` then a real rclpy node: no warning."""
    line = subprocess.run([sys.executable, '-m', 'pointcam_ros.ros.dds'], capture_output=True,
                          text=True, timeout=60, check=True,
                          env={k: v for k, v in os.environ.items() if k != 'ROS_DISTRO'}).stdout
    name, value = line.strip().removeprefix('export ').split('=', 1)
    assert 'deprecated' not in _node_output({name: value})
    # The old name, as the docs once said, does warn on this (Kilted) Fast DDS.
    assert 'deprecated' in _node_output({'FASTRTPS_DEFAULT_PROFILES_FILE': value})
