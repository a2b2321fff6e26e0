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
Labelled real scans in the KITTI object format, cut into the project's object data set.

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

What the data set gets, per frame:

* Each labelled object of a mapped type (:data:`KITTI_TYPES`): the points in
  its box that the pipeline would see (inside the region of interest and
  not ground, by the pipeline's own :func:`segment_scene`), if at least
  ``min_points``. DontCare, Misc and Tram are not used as examples.
* Background: the pipeline's own clusters that lie in the front camera's
  view (at least half of their points project in front of the camera and
  inside the image) and are not labelled, i.e. touch no labelled 3D box
  of any type (boxes grown by :data:`OVERLAP_MARGIN`) and do not lie
  (half of their points or more) in a DontCare region of the image.
  KITTI only labels objects seen by that camera, so clusters outside its
  view may be unlabelled cars and are never used.

Mind what "background" means here: KITTI does not label poles, trees,
signs or walls, so they all become ``background``, while the simulated
data set labels poles and trees as their own classes (``--no-background``
leaves them out).
"""

from dataclasses import dataclass, field
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.learn.dataset import ObjectDataset
from pointcam_ros.model.preprocess import with_heights
from pointcam_ros.perception.segmentation import region_of_interest, segment_scene
from pointcam_ros.sim.simulator import CLASS_NAMES
from tqdm import tqdm

#: KITTI object type -> class name; every other type is not used as an example.
KITTI_TYPES = {'Car': 'car', 'Van': 'car', 'Truck': 'truck', 'Pedestrian': 'pedestrian',
               'Person_sitting': 'pedestrian', 'Cyclist': 'cyclist'}
#: Types that are labelled but not used as examples (their clusters are not background).
SKIPPED_TYPES = ('DontCare', 'Misc', 'Tram')
#: Classes a labelled road user can have; a background cluster shown as one is a false alarm.
ROAD_USERS = ('car', 'truck', 'pedestrian', 'cyclist')
#: KITTI's image size (width, height) in pixels; calib files do not state it.
IMAGE_SIZE = (1242, 375)
#: Metres by which labelled boxes grow (each side) when deciding that a cluster is unlabelled.
OVERLAP_MARGIN = 0.25
#: Share of a cluster's points that must be in the camera's view (resp. DontCare region).
VIEW_SHARE = 0.5
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


@dataclass
class LabelledBox:
    """A labelled object of a frame: its line, its box and ``mask`` (M,) of points in it."""

    label: KittiObject
    box: VeloBox
    mask: np.ndarray


@dataclass
class FrameAnalysis:
    """
    A frame as the pipeline sees it, next to its labels.

    ``xyz`` (M, 3) float32 finite points; ``cluster`` (M,) int32 cluster id
    (-1 none) and ``visible`` (M,) bool (in the region of interest and not
    ground) from :func:`segment_scene`; ``boxes`` every labelled 3D box (not
    DontCare); ``in_view`` and ``unlabelled`` (K,) bool per cluster;
    ``height`` (M,) float32 each point's height above the local ground (NaN
    outside the region of interest).
    """

    frame: KittiFrame
    xyz: np.ndarray
    cluster: np.ndarray
    num_clusters: int
    visible: np.ndarray
    boxes: list[LabelledBox]
    in_view: np.ndarray
    unlabelled: np.ndarray
    height: np.ndarray

    @property
    def background(self) -> np.ndarray:
        """``(K,)`` bool: clusters in the camera's view that are not labelled objects."""
        return self.in_view & self.unlabelled

    def object_points(self, box: LabelledBox) -> np.ndarray:
        """``(n, 3)`` float32: the points of ``box`` that the pipeline sees."""
        return self.xyz[self._seen_in(box)]

    def object_example(self, box: LabelledBox) -> np.ndarray:
        """``(n, 4)`` float32 data-set object: :meth:`object_points` with their heights."""
        return self.example(self._seen_in(box))

    def example(self, rows: np.ndarray) -> np.ndarray:
        """``(n, 4)`` float32 data-set object of the points ``rows`` (bool mask or indices)."""
        return with_heights(self.xyz[rows], self.height[rows])

    def _seen_in(self, box: LabelledBox) -> np.ndarray:
        """``(M,)`` bool: the points of ``box`` that the pipeline sees."""
        return box.mask & self.visible


def cluster_flags(xyz: np.ndarray, cluster: np.ndarray, count: int, frame: KittiFrame,
                  boxes: Sequence[LabelledBox], image_size: Sequence[int] = IMAGE_SIZE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """
    Flag clusters ``0..count-1`` of ``(M, 3)`` points: ``(in_view, unlabelled)``, (K,) bool each.

    ``cluster`` (M,) int32 ids (-1: no cluster). See the module docstring for
    both definitions.
    """
    calib = frame.calib
    view = calib.in_view(xyz, image_size)
    near_box = np.zeros(len(xyz), bool)
    for box in boxes:
        near_box |= box.box.contains(xyz, OVERLAP_MARGIN)
    dontcare = np.zeros(len(xyz), bool)
    rects = [obj.bbox for obj in frame.labels if obj.kind == 'DontCare']
    if rects:
        pixels, _ = calib.project(xyz)
        for left, top, right, bottom in rects:
            dontcare |= (view & (pixels[:, 0] >= left) & (pixels[:, 0] <= right)
                         & (pixels[:, 1] >= top) & (pixels[:, 1] <= bottom))
    members = cluster >= 0
    ids = cluster[members]
    sizes = np.maximum(np.bincount(ids, minlength=count), 1).astype(np.float64)
    share_view = np.bincount(ids, weights=view[members], minlength=count) / sizes
    share_dc = np.bincount(ids, weights=dontcare[members], minlength=count) / sizes
    touches = np.bincount(ids, weights=near_box[members], minlength=count) > 0
    in_view = share_view >= VIEW_SHARE
    unlabelled = ~touches & (share_dc < VIEW_SHARE)
    return in_view, unlabelled


def analyse_frame(frame: KittiFrame, config: PipelineConfig = PipelineConfig(),
                  image_size: Sequence[int] = IMAGE_SIZE) -> FrameAnalysis:
    """Segment ``frame`` with the pipeline's segmentation and place its labels (see class)."""
    xyz = frame.points[:, :3]
    xyz = np.ascontiguousarray(xyz[np.isfinite(xyz).all(axis=1)], dtype=np.float32)
    segmentation = segment_scene(xyz, config)
    visible = region_of_interest(xyz, config) & ~segmentation.ground
    boxes = []
    for obj in frame.labels:
        if obj.kind == 'DontCare':
            continue
        box = box_in_velodyne(obj, frame.calib)
        boxes.append(LabelledBox(label=obj, box=box, mask=box.contains(xyz)))
    in_view, unlabelled = cluster_flags(xyz, segmentation.labels, segmentation.num_objects,
                                        frame, boxes, image_size)
    return FrameAnalysis(frame=frame, xyz=xyz, cluster=segmentation.labels,
                         num_clusters=segmentation.num_objects, visible=visible, boxes=boxes,
                         in_view=in_view, unlabelled=unlabelled, height=segmentation.height)


@dataclass
class FrameExamples:
    """
    Examples of one frame: ``(points (n, 4) float32, class name)`` and what was left out.

    Points: x, y, z and the height above the ground (the data-set format).
    """

    examples: list[tuple[np.ndarray, str]]
    too_few_points: int = 0
    skipped_types: int = 0


def frame_examples(analysis: FrameAnalysis, min_points: int,
                   background: bool = True) -> FrameExamples:
    """Cut the labelled objects (and background clusters) of an analysed frame."""
    out = FrameExamples(examples=[])
    for box in analysis.boxes:
        name = box.label.class_name
        if name is None:
            out.skipped_types += 1
            continue
        points = analysis.object_example(box)
        if len(points) < min_points:
            out.too_few_points += 1
            continue
        out.examples.append((points, name))
    if background:
        for k in np.flatnonzero(analysis.background):
            out.examples.append((analysis.example(analysis.cluster == k), 'background'))
    return out


@dataclass
class KittiStats:
    """Counts of a build: frames read, examples per class, objects left out and why."""

    frames: int = 0
    per_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASS_NAMES, 0))
    too_few_points: int = 0
    skipped_types: int = 0


def build_kitti_dataset(root: os.PathLike, min_points: int = PipelineConfig.min_cluster_points,
                        config: Optional[PipelineConfig] = None,
                        image_size: Sequence[int] = IMAGE_SIZE, background: bool = True,
                        frames: Optional[Iterable[str]] = None, progress: bool = True
                        ) -> tuple[ObjectDataset, KittiStats]:
    """
    Build an object data set from the KITTI-format folder ``root``.

    ``config`` is the pipeline configuration whose segmentation cuts the
    scans (default :class:`PipelineConfig` with ``min_cluster_points =
    min_points``); ``frames`` limits the build to these frame names (e.g.
    the lines of KITTI's ``ImageSets/train.txt``). Seeds of the data set are
    frame numbers (``-1`` for a frame name that is not a number).
    """
    config = config or PipelineConfig(min_cluster_points=min_points)
    names = list_frames(root, frames)
    if not names:
        raise FileNotFoundError(f'{kitti_folder(root) / "velodyne"}: no .bin scans')
    points, labels, distance, seeds = [], [], [], []
    stats = KittiStats()
    for name in tqdm(names, desc='frames', unit='frame', disable=not progress):
        frame = read_frame(root, name)
        cut = frame_examples(analyse_frame(frame, config, image_size), min_points, background)
        stats.frames += 1
        stats.too_few_points += cut.too_few_points
        stats.skipped_types += cut.skipped_types
        for pts, class_name in cut.examples:
            points.append(pts)
            labels.append(CLASS_NAMES.index(class_name))
            distance.append(float(np.linalg.norm(pts.mean(axis=0)[:2])))
            seeds.append(frame.index)
            stats.per_class[class_name] += 1
    dataset = ObjectDataset(points=points, labels=np.asarray(labels, np.int64),
                            distance=np.asarray(distance, np.float32),
                            seeds=np.asarray(seeds, np.int64), class_names=list(CLASS_NAMES))
    return dataset, stats
