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

The folder is read by :mod:`pointcam_ros.formats.kitti` (scans, labels,
calibration, label boxes in the velodyne frame); this module cuts it into
examples the way the pipeline sees a scan.

What the data set gets, per frame:

* Each labelled object of a mapped type
  (:data:`~pointcam_ros.formats.kitti.KITTI_TYPES`): the points in
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
import os
from typing import Iterable, Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.kitti import (
    box_in_velodyne, IMAGE_SIZE, kitti_folder, KittiFrame, KittiObject, list_frames,
    read_frame, VeloBox)
from pointcam_ros.learn.dataset import ObjectDataset
from pointcam_ros.model.preprocess import with_heights
from pointcam_ros.perception.segmentation import region_of_interest, segment_scene
from pointcam_ros.sim.simulator import CLASS_NAMES
from tqdm import tqdm

#: Classes a labelled road user can have; a background cluster shown as one is a false alarm.
ROAD_USERS = ('car', 'truck', 'pedestrian', 'cyclist')
#: Metres by which labelled boxes grow (each side) when deciding that a cluster is unlabelled.
OVERLAP_MARGIN = 0.25
#: Share of a cluster's points that must be in the camera's view (resp. DontCare region).
VIEW_SHARE = 0.5


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
