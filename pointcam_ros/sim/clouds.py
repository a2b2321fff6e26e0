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

"""Simulated scans as driver-layout clouds, and their ground-truth markers."""

import numpy as np
from pointcam_ros.formats.cloud_io import pack_cloud, PackedCloud
from pointcam_ros.formats.markers import box_and_label, delete_all, MarkerSpec
from pointcam_ros.formats.sensor_layouts import LAYOUTS
from pointcam_ros.sim.simulator import CLASS_NAMES, Scan, Scene


def scan_to_cloud(result: Scan) -> PackedCloud:
    """Pack a simulated scan in its sensor's driver layout (organized, NaN for no return)."""
    layout = LAYOUTS[result.sensor.layout]
    xyz = result.xyz.reshape(-1, 3)
    columns = {'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2],
               'intensity': result.intensity.reshape(-1), 'ring': result.ring.reshape(-1)}
    if layout.name == 'velodyne':
        columns['time'] = result.time.reshape(-1)
    else:
        columns['t'] = (result.time.reshape(-1) * 1e9).astype(np.uint32)
        columns['range'] = (np.nan_to_num(np.linalg.norm(xyz, axis=1)) * 1000).astype(
            np.uint32)
    return pack_cloud(columns, layout.fields, layout.point_step, height=result.sensor.beams)


def ground_truth_markers(scene: Scene, mount_height: float) -> list[MarkerSpec]:
    """DELETEALL, then a box and 'gt <class>' text per object, in the sensor frame."""
    specs = [delete_all()]
    for obj in scene.objects:
        center, size = obj.box()
        center[2] -= mount_height
        name = CLASS_NAMES[obj.class_id]
        specs += box_and_label('gt_', obj.object_id, name, center, size, obj.yaw,
                               f'gt {name}', box_alpha=0.15, text_height=0.5, text_lift=1.0)
    return specs
