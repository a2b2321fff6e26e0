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

"""rclpy message adapters: :class:`PackedCloud` to ``sensor_msgs/PointCloud2``."""

import array
from typing import Any, Optional

from pointcam_ros.cloud_io import PackedCloud
from sensor_msgs.msg import PointCloud2, PointField


def to_ros_cloud(cloud: PackedCloud, header: Optional[Any]) -> PointCloud2:
    """
    Wrap a packed cloud into an rclpy ``PointCloud2`` with the given header.

    ``data`` is handed over as ``array.array('B')`` so the generated setter
    stores it with one memcpy instead of checking every byte.
    """
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height = cloud.height
    msg.width = cloud.width
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in cloud.fields]
    msg.is_bigendian = bool(cloud.is_bigendian)
    msg.point_step = cloud.point_step
    msg.row_step = cloud.row_step
    data = array.array('B')
    data.frombytes(cloud.data)
    msg.data = data
    msg.is_dense = bool(cloud.is_dense)
    return msg
