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
The ROS-free core: one LiDAR scan in, explained objects out.

``ScenePipeline(config).process(points)`` segments the scan (``scene`` mode)
or takes it as one object (``object`` mode), resamples every object to the
model's N points with a fixed seed, normalises it exactly as in training,
classifies and explains all objects in one batch, and carries each object's
saliency to all of its points (every point takes the value of its nearest
sampled point, so a sampled point keeps its own value). Points outside objects get saliency 0,
class -1 and object -1.

The node, the bag tool, the data set builder, the tests and notebooks all
drive this class.
"""

import time
from typing import Any, Optional

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.geometry import oriented_box
from pointcam_ros.common.results import DetectedObject, SceneResult, UNKNOWN
from pointcam_ros.explain.gradcam import make_explainer
from pointcam_ros.formats.cloud_io import (
    finite_rows, NO_OBJECT, PackedCloud, read_cloud, saliency_cloud)
from pointcam_ros.model.checkpoint import load_checkpoint, LoadedModel
from pointcam_ros.model.device import resolve_device
from pointcam_ros.model.preprocess import normalize_object, resample_indices
from pointcam_ros.perception.segmentation import segment_scene
from scipy.spatial import cKDTree
import torch


class ScanError(ValueError):
    """A scan the pipeline cannot process (wrong shape, too many points)."""


class ScenePipeline:
    """Segment, classify and explain LiDAR scans; see the module docstring."""

    def __init__(self, config: PipelineConfig = PipelineConfig(),
                 loaded: Optional[LoadedModel] = None):
        self.device = resolve_device(config.device)
        if config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)  # process-wide, as torch allows
        self.loaded = loaded if loaded is not None else load_checkpoint(
            config.model_path or None, self.device)
        self.loaded.model.to(self.device).eval()
        self.config = config
        self.explainer = None
        self.reconfigure(config)

    @property
    def class_names(self) -> list[str]:
        """Class names of the loaded model, indexed by class id."""
        return self.loaded.class_names

    def reconfigure(self, config: PipelineConfig) -> None:
        """
        Apply a new config (method, target, thresholds) from the next scan on.

        Changing ``model_path`` or ``device`` needs a new pipeline; a target
        class the model does not know raises ValueError.
        """
        if config.model_path != self.config.model_path or config.device != self.config.device:
            raise ValueError('model_path and device cannot change at run time; restart')
        if config.target_class and config.target_class not in self.class_names:
            raise ValueError(f"target_class '{config.target_class}' is not a class of the "
                             f'model: {self.class_names}')
        self.explainer = make_explainer(config.method, self.loaded.model, self.class_names)
        self.config = config

    @staticmethod
    def _map_back(points: np.ndarray, local: np.ndarray, values: np.ndarray) -> np.ndarray:
        """
        Saliency ``(n,)`` of all ``points`` (n, 3) of an object from its N samples.

        ``local`` (N,) are the sampled positions, ``values`` (N,) their
        saliency. A sampled point keeps its own value (duplicates of a point
        have identical features, hence identical saliency); any other point
        takes the value of its nearest sampled point.
        """
        out = np.empty(len(points), np.float32)
        sampled = np.zeros(len(points), bool)
        sampled[local] = True
        out[local] = values
        if not sampled.all():
            _, nearest = cKDTree(points[local]).query(points[~sampled], k=1)
            out[~sampled] = values[nearest]
        return out

    def process_cloud(self, cloud: Any) -> tuple[SceneResult, PackedCloud]:
        """
        Explain a PointCloud2 (rclpy, rosbags or :class:`PackedCloud`) end to end.

        Returns the result for its valid points and the output saliency cloud
        (one point per valid input point; give it the input's header). Raises
        :class:`CloudFormatError` for a malformed cloud, :class:`ScanError`
        for one the pipeline refuses.
        """
        points = read_cloud(cloud)
        result = self.process(points.xyz)
        return result, saliency_cloud(points.xyz, result.saliency, result.class_id,
                                      result.object_id)

    def process(self, points: np.ndarray) -> SceneResult:
        """
        Explain one scan: ``points`` (M, 3) float32 (float64 accepted) in the sensor frame.

        Non-finite points are allowed and get saliency 0; an empty scan gives
        empty results. Raises :class:`ScanError` for a wrong shape or more
        than ``max_input_points`` points.
        """
        config = self.config
        started = time.perf_counter()
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ScanError(f'points must be (M, 3), got {points.shape}')
        if points.shape[0] > config.max_input_points:
            raise ScanError(f'scan has {points.shape[0]} points, more than max_input_points '
                            f'= {config.max_input_points}')
        num = points.shape[0]
        saliency = np.zeros(num, np.float32)
        class_id = np.full(num, NO_OBJECT, np.int32)
        object_id = np.full(num, NO_OBJECT, np.int32)
        result = SceneResult(saliency, class_id, object_id, device=str(self.device))
        finite = np.flatnonzero(finite_rows(points))
        xyz = np.ascontiguousarray(points[finite], dtype=np.float32)
        if config.mode == 'object':
            labels = np.zeros(len(xyz), np.int32)
            count = 1 if len(xyz) else 0
        else:
            segmentation = segment_scene(xyz, config)
            labels, count = segmentation.labels, segmentation.num_objects
        result.timings['segment'] = 1e3 * (time.perf_counter() - started)
        if count == 0:
            result.timings.update(sample=0.0, model=0.0, map_back=0.0)
            return result

        mark = time.perf_counter()
        order = np.argsort(labels, kind='stable')
        sorted_labels = labels[order]
        bounds = np.searchsorted(sorted_labels, np.arange(count + 1))
        members = [order[bounds[k]:bounds[k + 1]] for k in range(count)]
        n = self.loaded.num_points
        rng = np.random.default_rng(config.seed)
        batch = np.empty((count, 3, n), np.float32)
        sampled = []  # per object: positions (into its members) of its N samples
        for k, idx in enumerate(members):
            local = resample_indices(len(idx), n, rng)
            sampled.append(local)
            batch[k] = normalize_object(xyz[idx[local]], self.loaded.normalization).T
        result.timings['sample'] = 1e3 * (time.perf_counter() - mark)

        mark = time.perf_counter()
        target = config.target_class or None
        explained = self.explainer(torch.from_numpy(batch).to(self.device), target=target)
        sal = explained.saliency.cpu().numpy()
        probs = torch.softmax(explained.logits / self.loaded.temperature, dim=1).cpu().numpy()
        predicted = explained.predicted.cpu().numpy()
        targets = explained.target.cpu().numpy()
        result.timings['model'] = 1e3 * (time.perf_counter() - mark)

        mark = time.perf_counter()
        for k, idx in enumerate(members):
            values = self._map_back(xyz[idx], sampled[k], sal[k])
            rows = finite[idx]
            saliency[rows] = values
            confidence = float(probs[k, predicted[k]])
            unknown = confidence < config.min_confidence
            class_id[rows] = UNKNOWN if unknown else predicted[k]
            object_id[rows] = k
            center, size, yaw = oriented_box(xyz[idx])
            result.objects.append(DetectedObject(
                object_id=k, class_id=int(predicted[k]),
                class_name=self.class_names[int(predicted[k])],
                confidence=confidence,
                target_class=self.class_names[int(targets[k])], num_points=len(idx),
                center=center, size=size, yaw=yaw, unknown=unknown))
        result.timings['map_back'] = 1e3 * (time.perf_counter() - mark)
        return result
