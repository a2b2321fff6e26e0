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
Labelled object samples from simulated scans, and their on-disk format.

File format (``.npz``, numpy only, no pickles)::

    points      (P, 4) float32  all objects' points, sensor frame, concatenated:
                                x, y, z and the height above the local ground
                                (``Segmentation.height``); files of older
                                versions hold (P, 3), x y z only
    offsets     (M + 1,) int64  object i is points[offsets[i]:offsets[i + 1]]
    labels      (M,) int64      class index into class_names
    distance    (M,) float32    range of the object's centroid from the sensor (m)
    seeds       (M,) int64      scene seed the object came from
    class_names (K,) str

Splits come from disjoint seed ranges (:data:`SPLIT_SEEDS`), so no scene of
the test set was seen in training.

Reading, writing and training need numpy only: the simulator and the
segmentation (open3d, scipy) are imported when a data set is built, so a
GPU training box without open3d can train on files built elsewhere.
"""

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from pointcam_ros.common.atomic import atomic_path
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.model.preprocess import with_heights
from tqdm import tqdm

#: First scene seed of each split; a split of n scenes uses seeds start..start+n-1.
SPLIT_SEEDS = {'train': 0, 'val': 1_000_000, 'test': 2_000_000}
#: Scene sizes (m, half width) a data set's scenes are drawn from: out to the pipeline's
#: default ``max_range`` (100 m), so the model sees the sparse far objects and far
#: clutter (facades, trees, signs at 50-100 m) that the node will hand it.
SCENE_EXTENTS = (45.0, 100.0)


@dataclass
class ObjectDataset:
    """
    Object samples in memory; ``points[i]`` is ``(n_i, 4) float32``.

    Columns x, y, z (sensor frame) and the height above the local ground;
    data sets of older versions have the first three only, which every
    normalisation but :data:`~pointcam_ros.model.preprocess.GROUND_NORMALIZATIONS`
    accepts.
    """

    points: list[np.ndarray]
    labels: np.ndarray
    distance: np.ndarray
    seeds: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        """Return the number of objects."""
        return len(self.points)

    def point_counts(self) -> np.ndarray:
        """Return each object's number of points, ``(N,)`` int64."""
        return np.array([len(points) for points in self.points], np.int64)


def segmented_objects(xyz: np.ndarray, object_id: np.ndarray, class_id: np.ndarray,
                      config: PipelineConfig, min_purity: float = 0.7
                      ) -> list[tuple[np.ndarray, int]]:
    """
    Cut objects out of a scan with the pipeline's own segmentation.

    Each cluster is labelled with the class of the ground-truth object that
    owns most of its points, if that object owns at least ``min_purity`` of
    them; other clusters (merged objects, ground debris) are skipped. Each
    object is ``(n, 4)`` float32: x, y, z and the height above the ground.
    """
    from pointcam_ros.perception.segmentation import segment_scene
    segmentation = segment_scene(xyz, config)
    out = []
    for cluster in range(segmentation.num_objects):
        members = np.flatnonzero(segmentation.labels == cluster)
        label = cluster_label(members, object_id, class_id, min_purity)
        if label is not None:
            out.append((with_heights(xyz[members], segmentation.height[members]), label))
    return out


def cluster_label(members: np.ndarray, object_id: np.ndarray, class_id: np.ndarray,
                  min_purity: float = 0.7) -> Optional[int]:
    """
    Class of the true object that owns most of a cluster's points, or None.

    ``members`` (n,) indices of the cluster's points into the scan's ``(M,)``
    ``object_id`` and ``class_id``. None if that object owns less than
    ``min_purity`` of them, or the most are no object's (-1).
    """
    owners = object_id[members]
    values, counts = np.unique(owners, return_counts=True)
    best = int(np.argmax(counts))
    if values[best] < 0 or counts[best] < min_purity * len(members):
        return None
    return int(class_id[members[owners == values[best]][0]])


def point_columns(objects: Sequence[np.ndarray]) -> int:
    """Columns (3 or 4) shared by all ``objects``; ValueError if they differ or are neither."""
    columns = {int(p.shape[1]) if p.ndim == 2 else -1 for p in objects}
    if not columns:
        return 4
    if len(columns) > 1 or not columns <= {3, 4}:
        raise ValueError(f'objects have {sorted(columns)} columns: every object must have 4 '
                         '(x, y, z, height above the ground), or 3 for data sets of older '
                         'versions; do not mix them (rebuild the older set)')
    return columns.pop()


def simulate_objects(seed: int, min_points: int, sensors: Optional[Sequence[str]] = None,
                     kinds: Optional[Sequence[str]] = None,
                     segmentation: str = PipelineConfig.segmentation
                     ) -> list[tuple[np.ndarray, int]]:
    """
    Scan scene ``seed`` with a sensor drawn from ``sensors`` (default: all); return its objects.

    The scene's kind (street, campus, open) is drawn from the seed
    (:func:`~pointcam_ros.sim.scenes.scene_kind_for_seed`), or is
    ``kinds[seed % len(kinds)]`` where ``kinds`` is given. Objects are cut
    out exactly as the node will see them: by the scene pipeline's
    segmentation (default :class:`PipelineConfig`, with ``min_cluster_points
    = min_points`` and the ``segmentation`` design), labelled from the
    ground truth.
    """
    config = PipelineConfig(min_cluster_points=min_points, segmentation=segmentation)
    return segmented_objects(*simulate_scan(seed, sensors, kinds), config=config)


def simulate_scan(seed: int, sensors: Optional[Sequence[str]] = None,
                  kinds: Optional[Sequence[str]] = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Scan scene ``seed`` as :func:`simulate_objects` does, before it cuts the scan up.

    Sensor, scene kind and mount height drawn as described there, the
    scene's size from :data:`SCENE_EXTENTS`. Returns the valid points
    ``(M, 3)`` float32, their object ids and class ids ``(M,)`` (-1: no
    object).
    """
    from pointcam_ros.sim.simulator import random_scene, scan, scene_kind_for_seed, SENSORS
    sensors = tuple(SENSORS) if sensors is None else sensors
    rng = np.random.default_rng(seed)
    sensor = SENSORS[sensors[int(rng.integers(len(sensors)))]]
    kind = scene_kind_for_seed(seed) if not kinds else kinds[seed % len(kinds)]
    mount_height = float(rng.uniform(1.6, 2.0))
    scene = random_scene(seed, kind=kind, extent=float(rng.uniform(*SCENE_EXTENTS)))
    return scan(scene, sensor, seed, mount_height=mount_height).flat()


def build_dataset(seeds: Iterable[int], min_points: int = PipelineConfig.min_cluster_points,
                  sensors: Optional[Sequence[str]] = None, progress: bool = True,
                  kinds: Optional[Sequence[str]] = None,
                  segmentation: str = PipelineConfig.segmentation) -> ObjectDataset:
    """
    Simulate the scenes of ``seeds`` (sensors drawn from ``sensors``, default all).

    ``kinds``: scene kinds to use (default: the street/campus/open mix);
    ``segmentation``: the design that cuts the objects out (``voxel`` or
    ``range``, as the pipeline's parameter).
    """
    from pointcam_ros.sim.simulator import CLASS_NAMES
    seeds = list(seeds)
    points, labels, distance, origin = [], [], [], []
    for seed in tqdm(seeds, desc='scenes', unit='scene', disable=not progress):
        for pts, label in simulate_objects(seed, min_points, sensors, kinds, segmentation):
            points.append(pts)
            labels.append(label)
            distance.append(float(np.linalg.norm(pts.mean(axis=0)[:2])))
            origin.append(seed)
    return ObjectDataset(points=points, labels=np.asarray(labels, np.int64),
                         distance=np.asarray(distance, np.float32),
                         seeds=np.asarray(origin, np.int64), class_names=list(CLASS_NAMES))


def save_dataset(dataset: ObjectDataset, path: os.PathLike) -> None:
    """Write ``dataset`` to ``path`` (.npz) via a temporary file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = point_columns(dataset.points)
    sizes = dataset.point_counts()
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    points = (np.concatenate(dataset.points) if dataset.points
              else np.zeros((0, columns), np.float32))
    with atomic_path(path, suffix='.npz') as tmp:
        np.savez_compressed(tmp, points=points.astype(np.float32), offsets=offsets,
                            labels=dataset.labels, distance=dataset.distance,
                            seeds=dataset.seeds, class_names=np.asarray(dataset.class_names))


def load_dataset(path: os.PathLike, max_objects: Optional[int] = None) -> ObjectDataset:
    """Read a dataset written by :func:`save_dataset`; ValueError if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            points, offsets = data['points'], data['offsets']
            labels, distance, seeds = data['labels'], data['distance'], data['seeds']
            class_names = [str(c) for c in data['class_names']]
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f'{path} is not a pointcam_ros dataset: {exc}') from exc
    count = len(labels) if max_objects is None else min(max_objects, len(labels))
    if points.ndim != 2 or points.shape[1] not in (3, 4):
        raise ValueError(f'{path}: points have shape {points.shape}, expected (P, 4) or (P, 3)')
    if len(offsets) != len(labels) + 1 or offsets[-1] != len(points):
        raise ValueError(f'{path}: offsets do not match points/labels (corrupt file)')
    return ObjectDataset(points=[points[offsets[i]:offsets[i + 1]] for i in range(count)],
                         labels=labels[:count], distance=distance[:count],
                         seeds=seeds[:count], class_names=class_names)
