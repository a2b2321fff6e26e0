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
"""Fast DDS settings for multi-megabyte scans (see resources/fastdds_large_data.xml)."""

import importlib.resources
from pathlib import Path
from typing import MutableMapping

#: Humble's Fast DDS 2.6 reads the first, Jazzy/Kilted the second (and warn about the first).
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def large_data_profile() -> Path:
    """Path of the shipped Fast DDS profile (64 MB shared memory, 4096-fragment port queue)."""
    return Path(str(importlib.resources.files('pointcam_ros') / 'resources'
                    / 'fastdds_large_data.xml'))


def use_large_data_profile(env: MutableMapping[str, str]) -> None:
    """
    Point Fast DDS at the shipped profile in ``env``, unless a profile is already set.

    Sets ``FASTDDS_DEFAULT_PROFILES_FILE`` (the ROS 2 wheels here are Kilted);
    on Humble export ``FASTRTPS_DEFAULT_PROFILES_FILE`` yourself (README).

    Must happen before ``rclpy.init`` in this process, and in the environment
    of every process that exchanges scans (driver/simulator and node).
    """
    if not any(env.get(name) for name in PROFILE_VARIABLES):
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(large_data_profile())
