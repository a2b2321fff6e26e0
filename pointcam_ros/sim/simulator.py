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
A LiDAR simulator: procedurally generated streets, campuses and lots scanned with real beams.

This module gathers the simulator's public names; the work is done in
:mod:`~pointcam_ros.sim.sensors` (beam patterns and noise of the presets),
:mod:`~pointcam_ros.sim.surfaces` (triangles with materials, porous foliage),
:mod:`~pointcam_ros.sim.objects` (vehicles, people, poles, vegetation,
buildings, fences, furniture), :mod:`~pointcam_ros.sim.scenes` (scene
layouts) and :mod:`~pointcam_ros.sim.raycast` (open3d ray casting plus
the sensor's flaws). A scan is organized like the drivers publish it:
``(beams, columns)`` with NaN where a beam returned nothing. Every point
carries its ground-truth object id and class. Everything is deterministic
for a seed.
"""

from pointcam_ros.sim.objects import CLASS_NAMES
from pointcam_ros.sim.raycast import Scan, scan
from pointcam_ros.sim.scenes import (
    GROUND_ID, move_objects, random_scene, Scene, scene_kind_for_seed, SCENE_KINDS,
    SceneObject)
from pointcam_ros.sim.sensors import SensorPreset, SENSORS

__all__ = ['CLASS_NAMES', 'GROUND_ID', 'move_objects', 'random_scene', 'Scan', 'scan',
           'Scene', 'scene_kind_for_seed', 'SCENE_KINDS', 'SceneObject', 'SensorPreset',
           'SENSORS']
