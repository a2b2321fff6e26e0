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
Fast DDS settings for multi-megabyte scans (see resources/fastdds_large_data.xml).

``eval "$(python3 -m pointcam_ros.ros.dds)"`` exports the shipped profile under
the variable the sourced ROS distribution reads. Imports no rclpy.
"""

import importlib.resources
import os
from pathlib import Path
import shlex
import sys
from typing import Mapping, MutableMapping

#: Humble's Fast DDS 2.6 reads the first, Jazzy/Kilted the second (and warn about the first).
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
#: ROS distributions whose Fast DDS reads only ``FASTRTPS_DEFAULT_PROFILES_FILE``.
FASTRTPS_DISTROS = ('foxy', 'galactic', 'humble')


def large_data_profile() -> Path:
    """Path of the shipped Fast DDS profile (64 MB shared memory, 4096-fragment port queue)."""
    return Path(str(importlib.resources.files('pointcam_ros') / 'resources'
                    / 'fastdds_large_data.xml'))


def profile_variable(env: Mapping[str, str]) -> str:
    """
    Return the one variable the running distribution's Fast DDS reads for its profile.

    ``ROS_DISTRO`` (set by ``setup.bash``) humble or older: the old
    ``FASTRTPS_DEFAULT_PROFILES_FILE``; Jazzy, Kilted and the PyPI wheels (no
    ``ROS_DISTRO``, Kilted): ``FASTDDS_DEFAULT_PROFILES_FILE``, which does not
    print the deprecation warning the old name gets there.
    """
    old = env.get('ROS_DISTRO', '').strip().lower() in FASTRTPS_DISTROS
    return PROFILE_VARIABLES[0] if old else PROFILE_VARIABLES[1]


def use_large_data_profile(env: MutableMapping[str, str]) -> None:
    """
    Point Fast DDS at the shipped profile in ``env``, unless a profile is already set.

    Sets the variable of :func:`profile_variable`. Must happen before
    ``rclpy.init`` in this process, and in the environment of every process
    that exchanges scans (driver/simulator and node).
    """
    if not any(env.get(name) for name in PROFILE_VARIABLES):
        env[profile_variable(env)] = str(large_data_profile())


def export_line(env: Mapping[str, str]) -> str:
    """Shell line that exports the profile under the variable of :func:`profile_variable`."""
    return f'export {profile_variable(env)}={shlex.quote(str(large_data_profile()))}'


def main() -> int:
    """``python3 -m pointcam_ros.ros.dds``: print the export line (``eval "$(...)"``)."""
    print(export_line(os.environ))
    return 0


if __name__ == '__main__':
    sys.exit(main())
