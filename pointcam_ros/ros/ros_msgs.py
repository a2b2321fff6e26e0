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

"""rclpy message adapters: packed clouds and marker descriptions to ROS messages."""

import array
from typing import Any, Optional, Sequence

from pointcam_ros.formats.cloud_io import PackedCloud
from pointcam_ros.formats.markers import MarkerSpec
from sensor_msgs.msg import PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray


def to_ros_cloud(cloud: PackedCloud, header: Optional[Any]) -> PointCloud2:
    """
    Wrap a packed cloud into an rclpy ``PointCloud2`` with the given header.

    ``data`` is handed over as ``array.array('B')`` so the generated setter
    stores it with one memcpy instead of checking every byte; a cloud whose
    data already is one is not copied.
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
    data = cloud.data
    if not (isinstance(data, array.array) and data.typecode == 'B'):
        data = array.array('B')
        data.frombytes(cloud.data)
    msg.data = data
    msg.is_dense = bool(cloud.is_dense)
    return msg


def message_buffer(size: int) -> array.array:
    """
    Return ``size`` zero bytes as ``array.array('B')``: data a ``PointCloud2`` takes over.

    The node's saliency cloud is written straight into it
    (``explain_cloud(..., buffer=message_buffer)``), and :func:`to_ros_cloud`
    hands it to the message without a copy: one copy of the points instead
    of three on the node's hot path.
    """
    return array.array('B', bytes(size))


def to_ros_markers(specs: Sequence[MarkerSpec], header: Any) -> MarkerArray:
    """Build a ``visualization_msgs/MarkerArray`` from marker descriptions."""
    out = MarkerArray()
    for spec in specs:
        marker = Marker()
        marker.header = header
        marker.ns = spec.ns
        marker.id = spec.marker_id
        marker.type = spec.marker_type
        marker.action = spec.action
        (marker.pose.position.x, marker.pose.position.y,
         marker.pose.position.z) = spec.position
        (marker.pose.orientation.x, marker.pose.orientation.y, marker.pose.orientation.z,
         marker.pose.orientation.w) = spec.orientation
        marker.scale.x, marker.scale.y, marker.scale.z = spec.scale
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = spec.color
        marker.text = spec.text
        out.markers.append(marker)
    return out
