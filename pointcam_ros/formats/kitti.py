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
The KITTI object format: velodyne scans, labels and calibration, read and checked.

Layout of a KITTI-format folder ``ROOT`` (or ``ROOT/training``)::

    velodyne/NNNNNN.bin   float32 x y z reflectance, sensor frame (x forward, y left, z up)
    label_2/NNNNNN.txt    one object per line: type truncated occluded alpha
                          left top right bottom (2D box, px) h w l (m) x y z rotation_y
                          (x y z: bottom centre of the box, rectified camera frame)
    calib/NNNNNN.txt      P0..P3 (3x4), R0_rect (3x3), Tr_velo_to_cam (3x4)

Frames: rectified camera from velodyne is ``X_rect = R0 @ Tr @ X_velo``
(homogeneous, each padded to 4x4); image pixels are ``P2 @ X_rect``. A label
box goes to the velodyne frame through the inverse: its centre is
``(x, y - h/2, z)`` in the camera frame, its heading (the length axis,
``(cos ry, 0, -sin ry)`` in the camera frame) is carried by the linear part
of the inverse and gives the yaw about the velodyne z axis; with KITTI's
axis permutation this is ``yaw = -rotation_y - pi/2``. ``l`` runs along the
heading, ``w`` across it, ``h`` up.

Numpy only. Cutting frames into the object data set is
:mod:`pointcam_ros.learn.kitti` (``pointcam_dataset kitti``).
"""

from dataclasses import dataclass
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

#: KITTI object type -> class name; every other type is not used as an example.
KITTI_TYPES = {'Car': 'car', 'Van': 'car', 'Truck': 'truck', 'Pedestrian': 'pedestrian',
               'Person_sitting': 'pedestrian', 'Cyclist': 'cyclist'}
#: Types that are labelled but not used as examples (their clusters are not background).
SKIPPED_TYPES = ('DontCare', 'Misc', 'Tram')
#: KITTI's image size (width, height) in pixels; calib files do not state it.
IMAGE_SIZE = (1242, 375)
#: Number of values on each calib line the module uses.
_CALIB_KEYS = {'P2': (3, 4), 'R0_rect': (3, 3), 'Tr_velo_to_cam': (3, 4)}


class KittiFormatError(ValueError):
    """A KITTI file that cannot be read; the message names the file (and line) and the fix."""


@dataclass(frozen=True)
class KittiCalib:
    """Calibration of one frame: ``p2`` (3, 4), ``r0`` (3, 3), ``tr`` (3, 4) float64."""

    p2: np.ndarray
    r0: np.ndarray
    tr: np.ndarray

    @property
    def velo_to_rect(self) -> np.ndarray:
        """``(4, 4)`` float64: rectified camera frame from velodyne frame (``R0 @ Tr``)."""
        r0, tr = np.eye(4), np.eye(4)
        r0[:3, :3] = self.r0
        tr[:3, :] = self.tr
        return r0 @ tr

    @property
    def rect_to_velo(self) -> np.ndarray:
        """``(4, 4)`` float64: velodyne frame from rectified camera frame."""
        return np.linalg.inv(self.velo_to_rect)

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """
        Project ``(N, 3)`` velodyne points into image 2.

        Returns pixels ``(N, 2)`` float64 (u right, v down) and the depth
        ``(N,)`` float64 (third homogeneous coordinate; > 0 in front of the camera).
        """
        xyz = np.asarray(xyz, np.float64)
        matrix = self.p2 @ self.velo_to_rect  # (3, 4)
        image = xyz @ matrix[:, :3].T + matrix[:, 3]
        depth = image[:, 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            pixels = image[:, :2] / depth[:, None]
        return pixels, depth

    def in_view(self, xyz: np.ndarray, image_size: Sequence[int] = IMAGE_SIZE) -> np.ndarray:
        """``(N,)`` bool: points in front of camera 2 that project inside the image."""
        pixels, depth = self.project(xyz)
        width, height = image_size
        return ((depth > 0) & (pixels[:, 0] >= 0) & (pixels[:, 0] < width)
                & (pixels[:, 1] >= 0) & (pixels[:, 1] < height))


@dataclass(frozen=True)
class KittiObject:
    """
    One line of a label file.

    ``bbox`` (4,) left, top, right, bottom px; ``dimensions`` (3,) h, w, l (m);
    ``location`` (3,) bottom centre in the rectified camera frame (m);
    ``rotation_y`` (rad) about the camera's y axis; ``line`` 1-based.
    """

    kind: str
    truncated: float
    occluded: int
    alpha: float
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: float
    line: int

    @property
    def class_name(self) -> Optional[str]:
        """Class of the shipped class list, or None for a type that is not used."""
        return KITTI_TYPES.get(self.kind)


@dataclass(frozen=True)
class VeloBox:
    """
    An upright box in the velodyne frame.

    ``center`` (3,) float64 (m); ``size`` (3,) float64 length, width, height
    (m); ``yaw`` (rad) of the length axis about z, in ``[-pi, pi)``.
    """

    center: np.ndarray
    size: np.ndarray
    yaw: float

    def contains(self, xyz: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """``(N,)`` bool: points ``(N, 3)`` inside the box grown by ``margin`` on each side."""
        offset = np.asarray(xyz, np.float64) - self.center
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        along = offset[:, 0] * c + offset[:, 1] * s
        across = -offset[:, 0] * s + offset[:, 1] * c
        half = self.size / 2 + margin
        return ((np.abs(along) <= half[0]) & (np.abs(across) <= half[1])
                & (np.abs(offset[:, 2]) <= half[2]))


def box_in_velodyne(obj: KittiObject, calib: KittiCalib) -> VeloBox:
    """Carry the 3D box of a label line into the velodyne frame (see the module docstring)."""
    height, width, length = (float(v) for v in obj.dimensions)
    x, y, z = (float(v) for v in obj.location)
    transform = calib.rect_to_velo
    center = transform[:3, :3] @ np.array([x, y - height / 2, z]) + transform[:3, 3]
    heading = transform[:3, :3] @ np.array([math.cos(obj.rotation_y), 0.0,
                                            -math.sin(obj.rotation_y)])
    yaw = math.atan2(heading[1], heading[0])
    yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
    return VeloBox(center=center, size=np.array([length, width, height]), yaw=yaw)


def read_velodyne(path: os.PathLike) -> np.ndarray:
    """Read a velodyne ``.bin`` file: ``(N, 4)`` float32 x, y, z, reflectance."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such scan file (KITTI layout: '
                                'ROOT/velodyne/NNNNNN.bin)')
    size = path.stat().st_size
    if size % 16:
        raise KittiFormatError(f'{path}: {size} bytes is not a whole number of points '
                               '(16 bytes each: float32 x, y, z, reflectance); is the file '
                               'truncated?')
    return np.fromfile(path, dtype='<f4').reshape(-1, 4)


def _floats(path: Path, number: int, text: str, expected: int, what: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split()], np.float64)
    except ValueError as exc:
        raise KittiFormatError(f'{path}:{number}: {what}: {exc}') from exc
    if len(values) != expected:
        raise KittiFormatError(f'{path}:{number}: {what} needs {expected} numbers, '
                               f'got {len(values)}')
    if not np.isfinite(values).all():
        raise KittiFormatError(f'{path}:{number}: {what} has a non-finite number')
    return values


def read_calib(path: os.PathLike) -> KittiCalib:
    """
    Read a ``calib/NNNNNN.txt`` file (``KEY: v1 v2 ...`` lines).

    ``P2``, ``R0_rect`` and ``Tr_velo_to_cam`` (KITTI raw data's name
    ``Tr_velo_cam`` is accepted too) are required; other keys are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such calib file (KITTI layout: '
                                'ROOT/calib/NNNNNN.txt, one per scan)')
    found: dict[str, np.ndarray] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        key, sep, rest = raw.partition(':')
        key = key.strip()
        if not sep or not key or ' ' in key:
            raise KittiFormatError(f"{path}:{number}: expected 'KEY: numbers', got {raw!r}")
        key = 'Tr_velo_to_cam' if key == 'Tr_velo_cam' else key
        if key in _CALIB_KEYS:
            shape = _CALIB_KEYS[key]
            found[key] = _floats(path, number, rest, shape[0] * shape[1], key).reshape(shape)
    missing = [key for key in _CALIB_KEYS if key not in found]
    if missing:
        raise KittiFormatError(f'{path}: missing {", ".join(missing)} (a KITTI object calib '
                               'file has P0-P3, R0_rect and Tr_velo_to_cam)')
    calib = KittiCalib(p2=found['P2'], r0=found['R0_rect'], tr=found['Tr_velo_to_cam'])
    if abs(np.linalg.det(calib.velo_to_rect)) < 1e-6:
        raise KittiFormatError(f'{path}: R0_rect @ Tr_velo_to_cam is singular, so labels '
                               'cannot be carried into the velodyne frame')
    return calib


def read_labels(path: os.PathLike) -> list[KittiObject]:
    """
    Read a ``label_2/NNNNNN.txt`` file: one :class:`KittiObject` per non-empty line.

    Lines have 15 values (16 in result files: a trailing score is ignored).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such label file (KITTI layout: '
                                'ROOT/label_2/NNNNNN.txt, one per scan; write an empty file '
                                'for a scan without objects)')
    objects = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise KittiFormatError(f'{path}:{number}: a label line has 15 values (type, '
                                   'truncated, occluded, alpha, 2D box, h w l, x y z, '
                                   f'rotation_y), got {len(parts)}: {raw!r}')
        values = _floats(path, number, ' '.join(parts[1:15]), 14, f'label {parts[0]!r}')
        obj = KittiObject(kind=parts[0], truncated=float(values[0]), occluded=int(values[1]),
                          alpha=float(values[2]), bbox=values[3:7], dimensions=values[7:10],
                          location=values[10:13], rotation_y=float(values[13]), line=number)
        if obj.kind != 'DontCare' and not (obj.dimensions > 0).all():
            raise KittiFormatError(f'{path}:{number}: {obj.kind} has a box size h w l = '
                                   f'{values[7:10].tolist()}; all must be > 0')
        objects.append(obj)
    return objects


@dataclass
class KittiFrame:
    """One frame: ``points`` (N, 4) float32, its labels and calibration."""

    name: str
    index: int
    points: np.ndarray
    labels: list[KittiObject]
    calib: KittiCalib


def kitti_folder(root: os.PathLike) -> Path:
    """Return the folder holding ``velodyne/``: ``root`` or ``root/training``."""
    root = Path(root)
    for candidate in (root, root / 'training'):
        if (candidate / 'velodyne').is_dir():
            return candidate
    raise FileNotFoundError(f'{root}: no velodyne/ folder in it or in {root / "training"} '
                            '(expected KITTI layout: velodyne/, label_2/, calib/)')


def list_frames(root: os.PathLike, names: Optional[Iterable[str]] = None) -> list[str]:
    """Frame names (``NNNNNN``) of ``root``: all scans in velodyne/ or the given ``names``."""
    folder = kitti_folder(root)
    for sub in ('label_2', 'calib'):
        if not (folder / sub).is_dir():
            raise FileNotFoundError(f'{folder / sub}: missing folder (a labelled KITTI '
                                    'folder has velodyne/, label_2/ and calib/)')
    if names is None:
        return sorted(p.stem for p in (folder / 'velodyne').glob('*.bin'))
    return [str(n).strip() for n in names if str(n).strip()]


def read_frame(root: os.PathLike, name: str) -> KittiFrame:
    """Read scan, labels and calibration of frame ``name`` (e.g. ``'000042'``)."""
    folder = kitti_folder(root)
    points = read_velodyne(folder / 'velodyne' / f'{name}.bin')
    labels = read_labels(folder / 'label_2' / f'{name}.txt')
    calib = read_calib(folder / 'calib' / f'{name}.txt')
    index = int(name) if name.isdigit() else -1
    return KittiFrame(name=name, index=index, points=points, labels=labels, calib=calib)
