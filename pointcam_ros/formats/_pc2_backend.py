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
The one import site of the PointCloud2 helper library.

``sensor_msgs_py.point_cloud2`` (shipped with ROS 2) is preferred; where it is
not installed (a plain Python machine) its PyPI port ``pointcloud2`` is used.
Both expose the same ``dtype_from_fields(fields, point_step)`` and
``read_points(cloud, ...)``; the rest of the package imports them from here
only, so results are identical whichever backend is present.
"""

from types import ModuleType


def _load_backend() -> tuple[ModuleType, str]:
    try:
        from sensor_msgs_py import point_cloud2 as backend
        return backend, 'sensor_msgs_py'
    except ImportError:
        pass
    try:
        import pointcloud2 as backend
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            'pointcam_ros needs sensor_msgs_py (ROS 2) or its PyPI port '
            "'pointcloud2': install one with `rosdep install` or "
            '`pip install pointcloud2`') from exc
    return backend, 'pointcloud2'


pc2, BACKEND_NAME = _load_backend()
read_points = pc2.read_points
if hasattr(pc2, 'dtype_from_fields'):
    dtype_from_fields = pc2.dtype_from_fields
else:  # pragma: no cover - sensor_msgs_py releases older than Humble's
    from pointcloud2 import dtype_from_fields

__all__ = ['BACKEND_NAME', 'dtype_from_fields', 'read_points']
