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
Readers of the labelled real scans of ``../shared/realdata`` (see its README).

Each reader yields :class:`RealScan`: the points in the sensor frame and
the labelled road users as point masks, plus what a false alarm means on
that set:

* SemanticKITTI (``semantickitti/sequences/*/velodyne/*.bin`` and
  ``labels/*.label``): every point is labelled; road users are the
  semantic ids of :data:`SEMKITTI` (car, truck, bus, other vehicle,
  person, bicyclist, motorcyclist, moving ones included), one object per
  (semantic id, instance id). ``clutter`` marks every other point (parked
  bicycles, unlabelled points and outliers included, as issue #23 counts).
* Argoverse 2 (``av2/<log>/sensors/lidar/*.feather``, ``annotations.feather``):
  points moved from the ego frame to the up-LiDAR's origin (its
  calibration translation subtracted, rotation kept: the sensor is mounted
  level); road users are the cuboids of :data:`AV2` categories;
  ``clutter`` marks the points in no cuboid of any category.
* KITTI object frames are read by :mod:`pointcam_ros.formats.kitti`
  (``bench/real_check.py`` uses the in-view unlabelled clusters of
  :mod:`pointcam_ros.learn.kitti`).

Needs ``pyarrow`` for Argoverse 2 (:func:`argoverse` raises ImportError
without it). The data are never copied into the repository.
"""

from dataclasses import dataclass
import glob
import math
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

#: SemanticKITTI semantic ids of road users (semantic-kitti.yaml), moving ones included.
SEMKITTI = {10: 'car', 252: 'car', 18: 'truck', 258: 'truck', 13: 'truck', 257: 'truck',
            20: 'truck', 259: 'truck', 30: 'pedestrian', 254: 'pedestrian', 31: 'cyclist',
            253: 'cyclist', 32: 'cyclist', 255: 'cyclist'}
#: Argoverse 2 categories of road users.
AV2 = {'REGULAR_VEHICLE': 'car', 'PEDESTRIAN': 'pedestrian', 'BICYCLIST': 'cyclist',
       'MOTORCYCLIST': 'cyclist', 'WHEELED_RIDER': 'cyclist', 'BOX_TRUCK': 'truck',
       'LARGE_VEHICLE': 'truck', 'BUS': 'truck', 'TRUCK': 'truck', 'TRUCK_CAB': 'truck',
       'ARTICULATED_BUS': 'truck', 'SCHOOL_BUS': 'truck'}


@dataclass
class RealObject:
    """A labelled road user: ``name`` (class), ``label`` (the set's type), ``mask`` (M,) bool."""

    name: str
    label: str
    mask: np.ndarray

    def distance(self, xyz: np.ndarray) -> float:
        """Return how far (m, horizontally) the object's point centroid is from the sensor."""
        return float(np.hypot(*xyz[self.mask, :2].mean(axis=0))) if self.mask.any() else 0.0


@dataclass
class RealScan:
    """
    One labelled real scan in the sensor frame.

    ``xyz`` (M, 3) float32, finite; ``objects`` its road users; ``clutter``
    (M,) bool, the points that are certainly not part of a road user (a
    cluster made mostly of them and shown as a road user is a false alarm).
    """

    set_name: str
    name: str
    xyz: np.ndarray
    objects: list[RealObject]
    clutter: np.ndarray
    semantic: Optional[np.ndarray] = None


def semantic_kitti(root: Path) -> Iterator[RealScan]:
    """Yield the SemanticKITTI scans under ``root`` (the realdata folder); none if absent."""
    for path in sorted(glob.glob(str(root / 'semantickitti/sequences/*/velodyne/*.bin'))):
        xyz = np.fromfile(path, np.float32).reshape(-1, 4)[:, :3]
        label = np.fromfile(path.replace('velodyne', 'labels').replace('.bin', '.label'),
                            np.uint32)
        if len(label) != len(xyz):
            raise ValueError(f'{path}: {len(xyz)} points but {len(label)} labels')
        finite = np.isfinite(xyz).all(axis=1)
        xyz, label = np.ascontiguousarray(xyz[finite]), label[finite]
        semantic, instance = label & 0xFFFF, label >> 16
        objects = []
        for sem, name in SEMKITTI.items():
            of_class = semantic == sem
            for inst in np.unique(instance[of_class]):
                objects.append(RealObject(name, f'semantic {sem}',
                                          of_class & (instance == inst)))
        clutter = ~np.isin(semantic, list(SEMKITTI))
        sequence = Path(path).parent.parent.name
        yield RealScan('semantickitti', f'{sequence}/{Path(path).stem}', xyz, objects, clutter,
                       semantic)


def cuboid_mask(xyz: np.ndarray, row: dict, offset: np.ndarray) -> np.ndarray:
    """
    ``(M,)`` bool: points ``xyz`` (M, 3) (sensor frame) inside one Argoverse 2 cuboid.

    ``row``: the cuboid's annotation columns (ego frame: ``tx_m`` ...,
    ``qw`` ..., ``length_m`` ...); ``offset`` (3,) the sensor's position in
    the ego frame (subtracted from the cuboid's centre).
    """
    qw, qx, qy, qz = row['qw'], row['qx'], row['qy'], row['qz']
    yaw = math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
    center = np.array([row['tx_m'], row['ty_m'], row['tz_m']]) - offset
    d = xyz.astype(np.float64) - center
    c, s = math.cos(yaw), math.sin(yaw)
    along, across = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    return ((np.abs(along) <= row['length_m'] / 2) & (np.abs(across) <= row['width_m'] / 2)
            & (np.abs(d[:, 2]) <= row['height_m'] / 2))


def av2_sensor_offset(root: Path) -> Optional[np.ndarray]:
    """``(3,)`` float64: the up-LiDAR's position in the ego frame, from the first calibration."""
    import pyarrow.feather as feather
    found = sorted(glob.glob(str(root / 'av2/*/calibration/egovehicle_SE3_sensor.feather')))
    if not found:
        return None
    table = feather.read_table(found[0]).to_pydict()
    up = table['sensor_name'].index('up_lidar')
    return np.array([table['tx_m'][up], table['ty_m'][up], table['tz_m'][up]])


def argoverse(root: Path) -> Iterator[RealScan]:
    """
    Yield the Argoverse 2 sweeps under ``root`` (the realdata folder); none if absent.

    Raises ImportError without ``pyarrow``. Every log uses the calibration
    found (the sweeps ship one; the up LiDAR sits at the same place on
    every Argoverse 2 vehicle to a few centimetres).
    """
    logs = sorted(glob.glob(str(root / 'av2/*/annotations.feather')))
    if not logs:
        return
    import pyarrow.feather as feather
    offset = av2_sensor_offset(root)
    if offset is None:
        raise FileNotFoundError(f'{root / "av2"}: no calibration/egovehicle_SE3_sensor.feather')
    for log in logs:
        boxes = feather.read_table(log).to_pydict()
        for sweep in sorted(glob.glob(os.path.join(os.path.dirname(log), 'sensors/lidar/*'))):
            stamp = int(Path(sweep).stem)
            cols = feather.read_table(sweep, columns=['x', 'y', 'z']).to_pydict()
            xyz = (np.stack([cols['x'], cols['y'], cols['z']], 1) - offset).astype(np.float32)
            xyz = np.ascontiguousarray(xyz[np.isfinite(xyz).all(axis=1)])
            objects, in_any = [], np.zeros(len(xyz), bool)
            for i, (when, category) in enumerate(zip(boxes['timestamp_ns'], boxes['category'])):
                if when != stamp:
                    continue
                mask = cuboid_mask(xyz, {k: boxes[k][i] for k in boxes}, offset)
                in_any |= mask
                if category in AV2:
                    objects.append(RealObject(AV2[category], category, mask))
            log_id = Path(log).parent.name[:8]
            yield RealScan('av2', f'{log_id}/{stamp}', xyz, objects, ~in_any)
