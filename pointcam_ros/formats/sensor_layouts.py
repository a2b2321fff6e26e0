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
PointCloud2 field layouts that real LiDAR drivers publish.

Sources: ros-drivers/velodyne (``PointXYZIRT``), ouster-lidar/ouster-ros
(``os_point.h``, point_type ``original``) and livox_ros_driver2
(``xfer_format`` 0). Used by the simulator to publish in a real driver's
layout and by the tests as fixtures.
"""

from typing import NamedTuple

from pointcam_ros.formats.cloud_io import FieldSpec, FLOAT32, FLOAT64, UINT16, UINT32, UINT8


class SensorLayout(NamedTuple):
    """A driver's point layout: its fields and ``point_step`` in bytes."""

    name: str
    fields: tuple[FieldSpec, ...]
    point_step: int


VELODYNE_XYZIRT = SensorLayout('velodyne', (
    FieldSpec('x', 0, FLOAT32), FieldSpec('y', 4, FLOAT32), FieldSpec('z', 8, FLOAT32),
    FieldSpec('intensity', 12, FLOAT32), FieldSpec('ring', 16, UINT16),
    FieldSpec('time', 18, FLOAT32),  # unaligned on purpose: that is the driver's layout
), 22)

OUSTER_ORIGINAL = SensorLayout('ouster', (
    FieldSpec('x', 0, FLOAT32), FieldSpec('y', 4, FLOAT32), FieldSpec('z', 8, FLOAT32),
    # 4 bytes of padding at 12
    FieldSpec('intensity', 16, FLOAT32), FieldSpec('t', 20, UINT32),
    FieldSpec('reflectivity', 24, UINT16), FieldSpec('ring', 26, UINT16),
    FieldSpec('ambient', 28, UINT16), FieldSpec('range', 32, UINT32),
), 48)

OUSTER_XYZI = SensorLayout('ouster_xyzi', (
    FieldSpec('x', 0, FLOAT32), FieldSpec('y', 4, FLOAT32), FieldSpec('z', 8, FLOAT32),
    FieldSpec('intensity', 16, FLOAT32),
), 32)

LIVOX_CUSTOM = SensorLayout('livox', (
    FieldSpec('x', 0, FLOAT32), FieldSpec('y', 4, FLOAT32), FieldSpec('z', 8, FLOAT32),
    FieldSpec('intensity', 12, FLOAT32), FieldSpec('tag', 16, UINT8),
    FieldSpec('line', 17, UINT8), FieldSpec('timestamp', 18, FLOAT64),
), 26)

LAYOUTS: dict[str, SensorLayout] = {
    layout.name: layout for layout in (VELODYNE_XYZIRT, OUSTER_ORIGINAL, OUSTER_XYZI,
                                       LIVOX_CUSTOM)}
