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
model's N points with a fixed seed, normalises it exactly as in training
(a model of :data:`~pointcam_ros.model.preprocess.GROUND_NORMALIZATIONS`
also reads each point's height above the local ground that the segmentation
measured; in ``object`` mode, above the object's lowest point), classifies
and explains all objects in one batch, and carries each object's
saliency to all of its points (every point takes the value of its nearest
sampled point, so a sampled point keeps its own value). Points outside objects get saliency 0,
class -1 and object -1. Shape rules (:mod:`~pointcam_ros.perception.rules`)
then show clusters that cannot be what the model says as unknown (slivers)
or ``background`` (larger than any road user), and, in ``scene`` mode, a
road user named on fewer than ``min_label_points`` points as unknown (the
``few`` rule); ``DetectedObject.rule`` records why.

Two backends run the same steps. ``numpy`` (the default on the CPU):
numpy/scipy segmentation, per-object sampling with ``numpy.random``, a
k-d tree for the map back. ``torch`` (the default on CUDA): the whole scan
path on the device, from one host-to-device copy of the points to one copy
of the results back: region of interest, ground fit, voxel connected
components (:mod:`~pointcam_ros.perception.segmentation` on tensors, through
:mod:`~pointcam_ros.perception.segmentation_torch`; identical clusters to
numpy), sampling (a seeded random order per object, cycled when
an object has fewer than N points), normalisation, model and explanation,
nearest-sample map back and the oriented boxes. The two backends draw
different samples, so their saliency differs slightly; clusters do not.

:meth:`ScenePipeline.process` is one chain over typed values, the same for
both backends (:mod:`~pointcam_ros.perception.stages`)::

    points (M, 3) -> finite rows -> segment -> Segments -> sample -> samples
        -> explain -> Explained -> map back -> ObjectBatch -> label -> SceneResult

Every torch twin sits beside its numpy original: the box fit in
:mod:`~pointcam_ros.common.geometry`, the object normalisation in
:mod:`~pointcam_ros.model.preprocess`, the core extents in
:mod:`~pointcam_ros.perception.rules`, the stages in
:mod:`~pointcam_ros.perception.stages`. This package never sees a
PointCloud2: decoding a message, this class and encoding the saliency cloud
are chained once, in :mod:`~pointcam_ros.formats.scan_io`, for the node
and the bag tool.

Work per scan is bounded whatever the parameters: segmentation O(M log M)
time and O(M) memory in the M points (see
:mod:`~pointcam_ros.perception.segmentation`); at most ``MAX_OBJECTS``
objects are classified (the largest, if a scan has more clusters;
fewer with the costlier methods, see :func:`object_limit`; the
result's ``objects_capped`` counts the rest), in
forward passes of at most ``MODEL_CHUNK`` objects
(:data:`~pointcam_ros.perception.stages.MODEL_CHUNK`), so the model's work is at
most ``MAX_OBJECTS`` x N points and its memory that of ``MODEL_CHUNK``
objects (on the CPU, objects of fewer points run at fewer samples, see
:func:`~pointcam_ros.perception.stages.sample_sizes`); the map back is O(M log N)
(numpy, k-d tree) or O(M N) (torch, in blocks, see
:meth:`~pointcam_ros.perception.stages.TorchStages.map_back`).

The node and the bag tool (through :func:`~pointcam_ros.formats.scan_io.explain_cloud`),
the data set builder, the tests and notebooks all drive this class.
"""

import math
import time
from typing import Callable, Optional, TypeVar, Union

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.geometry import finite_rows
from pointcam_ros.common.results import DetectedObject, NO_OBJECT, SceneResult, UNKNOWN
from pointcam_ros.explain.gradcam import make_explainer, REGISTRY
from pointcam_ros.model.checkpoint import CheckpointError, load_checkpoint, LoadedModel
from pointcam_ros.model.device import resolve_device
from pointcam_ros.model.novelty import penultimate_width
from pointcam_ros.model.preprocess import normalized_channels
from pointcam_ros.perception import segmentation_torch
from pointcam_ros.perception.merge import merge_vehicles
from pointcam_ros.perception.rules import (
    background_index, BACKGROUND_RULES, cluster_top, HIGHEST_BOTTOM, judged_bottom, LOWEST_TOP,
    novelty_rule, plane_fits, points_rule, shape_rule, UNKNOWN_RULES, view_limits)
from pointcam_ros.perception.segmentation import segmentation_tables
from pointcam_ros.perception.split import explain_with, split_people
from pointcam_ros.perception.stages import NumpyStages, ObjectBatch, TorchStages
import torch

#: ``backend`` values of :class:`ScenePipeline`.
BACKENDS = ('auto', 'numpy', 'torch')
#: Most objects classified per scan; beyond it only the largest clusters are (the rest
#: stay unlabelled), so the model's work per scan is bounded whatever the parameters.
MAX_OBJECTS = 1024

_Out = TypeVar('_Out')


class ScanError(ValueError):
    """
    A scan the pipeline cannot process (wrong shape, too many points).

    ``kind`` is ``'bad_shape'`` or ``'too_many_points'``, a fixed set for counting.
    """

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class ScenePipeline:
    """Segment, classify and explain LiDAR scans; see the module docstring."""

    def __init__(self, config: PipelineConfig = PipelineConfig(),
                 loaded: Optional[LoadedModel] = None, backend: str = 'auto'):
        """
        Load the model onto ``config.device``.

        ``backend``: ``numpy``, ``torch`` or ``auto`` (torch on CUDA, numpy
        on the CPU); see the module docstring.
        """
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        self.device = resolve_device(config.device)
        if config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)  # process-wide, as torch allows
        self.loaded = loaded if loaded is not None else load_checkpoint(
            config.model_path or None, self.device)
        wanted = self.loaded.model.config.in_channels
        made = normalized_channels(self.loaded.normalization)
        if wanted != made:
            raise CheckpointError(
                f'the model takes {wanted} input channels, but its normalization '
                f'{self.loaded.normalization!r} makes {made} from the x, y, z of a scan: the '
                'pipeline cannot run it; use a model trained by pointcam_train')
        if self.loaded.novelty is not None and penultimate_width(self.loaded.model) is None:
            raise CheckpointError(
                f'the model carries novelty statistics, but a {type(self.loaded.model).__name__} '
                'has no pooled features and Linear classifier to score them on: drop them '
                '(novelty=None)')
        self.loaded.model.to(self.device).eval()
        if backend == 'auto':
            backend = 'torch' if self.device.type == 'cuda' else 'numpy'
        self.backend = backend
        self.config = config
        self.explainer = None
        self._stages: Optional[Union[NumpyStages, TorchStages]] = None
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
        explainer = make_explainer(config.method, self.loaded.model, self.class_names)
        if self.device.type == 'cuda' and hasattr(explainer, 'warm_up'):
            explainer.warm_up(self.loaded.num_points)  # capture CUDA graphs now, not per scan
        limit = object_limit(config.method)
        if self.backend == 'torch':
            # The ground fit's random draws depend on the seed only: on the device once.
            tables = segmentation_tables(config.seed, segmentation_torch, self.device)
            stages = TorchStages(config, self.loaded, explainer, self.device, limit, tables)
        else:
            stages = NumpyStages(config, self.loaded, explainer, self.device, limit)
        self.explainer, self._stages, self.config = explainer, stages, config

    def process(self, points: np.ndarray) -> SceneResult:
        """
        Explain one scan: ``points`` (M, 3) float32 (float64 accepted) in the sensor frame.

        Non-finite points are allowed and get saliency 0; an empty scan gives
        empty results. Raises :class:`ScanError` for a wrong shape or more
        than ``max_input_points`` points. ``timings`` holds each stage's
        milliseconds (``segment`` counts from the call).
        """
        started = time.perf_counter()
        stages = self._stages  # one configuration for the whole scan
        result, finite, xyz = self._admit(points, stages.config)
        timings = result.timings
        segments = stages.segment(xyz)
        result.objects_capped = segments.capped
        timings['segment'] = 1e3 * (time.perf_counter() - started)
        if segments.count == 0:
            timings.update(sample=0.0, model=0.0, map_back=0.0)
            if segments.oversize is None:
                return result
            # No object; in scene mode a person may still stand in a cluster too large to
            # be one (split_people looks, and returns at once if there is none).
            batch = ObjectBatch.empty(len(segments.labels), len(self.class_names))
        else:
            samples = _timed(timings, 'sample', stages.sync, stages.sample, segments)
            explained = _timed(timings, 'model', stages.sync, stages.explain, samples)
            batch = _timed(timings, 'map_back', stages.sync, stages.map_back, segments,
                           samples, explained)
        if stages.config.mode == 'scene':  # people split off cars, vehicles joined: model time
            mark = time.perf_counter()
            explain = explain_with(stages)
            batch = split_people(explain, segments, batch, self.class_names, stages.config,
                                 stages.limit)
            batch = merge_vehicles(explain, segments, batch, self.class_names, stages.config,
                                   stages.limit)
            stages.sync()
            timings['model'] += 1e3 * (time.perf_counter() - mark)
        self._label(result, finite, xyz, batch, stages.config, segments.height)
        return result

    def _admit(self, points: np.ndarray, config: PipelineConfig
               ) -> tuple[SceneResult, np.ndarray, np.ndarray]:
        """
        Check a scan; return its empty result, finite rows ``(F,)`` int64 and points.

        The points are the finite rows of ``points`` as ``(F, 3)`` float32
        (contiguous): the finite test is made in float32, so a float64 row
        beyond its range counts as not finite. Raises :class:`ScanError`.
        """
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ScanError(f'points must be (M, 3), got {points.shape}', 'bad_shape')
        if points.shape[0] > config.max_input_points:
            raise ScanError(f'scan has {points.shape[0]} points, more than max_input_points '
                            f'= {config.max_input_points}', 'too_many_points')
        if points.dtype != np.float32:
            if points.dtype.kind not in 'iuf':
                raise ScanError(f'points must be real numbers (float32, float64 or integers), '
                                f'got dtype {points.dtype}', 'bad_shape')
            with np.errstate(over='ignore', invalid='ignore'):
                points = points.astype(np.float32)  # beyond float32's range: Inf, left out
        num = points.shape[0]
        result = SceneResult(np.zeros(num, np.float32), np.full(num, NO_OBJECT, np.int32),
                             np.full(num, NO_OBJECT, np.int32), device=str(self.device))
        finite = np.flatnonzero(finite_rows(points))
        # np.take: the rows several times faster than points[finite], the same values.
        return result, finite, np.ascontiguousarray(np.take(points, finite, axis=0),
                                                    dtype=np.float32)

    def _label(self, result: SceneResult, finite: np.ndarray, xyz: np.ndarray,
               batch: ObjectBatch, config: PipelineConfig,
               height: Union[np.ndarray, torch.Tensor]) -> None:
        """
        Label the objects of ``batch`` into ``result``: shape rules, then confidence.

        ``finite`` (F,) int64 are the rows of the input that ``xyz`` (F, 3)
        float32, ``height`` (F,) float32 (above the ground; numpy, or torch
        on the device) and the batch's per-point arrays cover; the other rows
        keep saliency 0 and class and object -1.
        """
        background = background_index(self.class_names)
        labels, probs = batch.labels, batch.probs
        novelty = self.loaded.novelty if config.novelty_check == 'enabled' else None
        object_class = np.empty(len(batch), np.int32)
        planes = plane_fits(xyz, labels, len(batch))
        view: Optional[tuple[float, float]] = None  # lowest and top beams, once a rule needs them
        for k in range(len(batch)):
            box = batch.boxes[k]
            center, size, yaw = box[:3].copy(), box[3:6].copy(), float(box[6])
            class_id = int(batch.predicted[k])
            name = self.class_names[class_id]
            top = bottom = None
            lowest = LOWEST_TOP.get(name)
            if config.mode == 'scene' and (lowest is not None or name in HIGHEST_BOTTOM):
                height = height.cpu().numpy() if torch.is_tensor(height) else height
                rows = np.flatnonzero(labels == k)
                points, heights = xyz[rows], height[rows]
                limit = HIGHEST_BOTTOM.get(name)
                if limit is not None:
                    bottom = judged_bottom(points, heights, limit)
                    if bottom is not None:  # raised: unless the lowest beam is the one that hit
                        view = view or view_limits(xyz)
                        bottom = judged_bottom(points, heights, limit, view[0])
                if lowest is not None:
                    top = cluster_top(points, heights, math.inf, config.max_z)
                    if top is not None and top < lowest:  # low: unless the view cuts it
                        view = view or view_limits(xyz)
                        top = cluster_top(points, heights, view[1], config.max_z)
            kind, reason = shape_rule(size, name, core=batch.cores[k], plane=planes[k],
                                      top=top, bottom=bottom)
            if not kind and config.mode == 'scene':
                kind, reason = points_rule(int(batch.counts[k]), name, config.min_label_points)
            if not kind and config.mode == 'scene' and novelty is not None:
                kind, reason = novelty_rule(float(batch.novelty[k]), novelty.threshold, name)
            if kind in BACKGROUND_RULES and background >= 0:
                reason = (f'the model said {self.class_names[class_id]} '
                          f'{float(probs[k, class_id]):.2f}; {reason}')
                class_id = background
            confidence = float(probs[k, class_id])
            unknown = (kind in UNKNOWN_RULES or (kind in BACKGROUND_RULES and background < 0)
                       or (not kind and confidence < config.min_confidence)
                       or not np.isfinite(confidence))
            object_class[k] = UNKNOWN if unknown else class_id
            result.objects.append(DetectedObject(
                object_id=k, class_id=class_id, class_name=self.class_names[class_id],
                confidence=confidence, target_class=self.class_names[int(batch.targets[k])],
                num_points=int(batch.counts[k]), center=center, size=size, yaw=yaw,
                unknown=unknown, rule=f'{kind}: {reason}' if kind else '',
                novelty=float(batch.novelty[k])))
        inside = labels >= 0
        rows = finite[inside]
        result.saliency[rows] = batch.saliency[inside]
        result.object_id[rows] = labels[inside]
        result.class_id[rows] = object_class[labels[inside]]


def _timed(timings: dict[str, float], name: str, sync: Callable[[], None],
           stage: Callable[..., _Out], *args: object) -> _Out:
    """Run ``stage(*args)``; record its milliseconds (device synced) as ``timings[name]``."""
    mark = time.perf_counter()
    out = stage(*args)
    sync()
    timings[name] = 1e3 * (time.perf_counter() - mark)
    return out


def object_limit(method: str) -> int:
    """
    Most objects explained per scan with ``method``: its explainer's ``max_objects``.

    ``MAX_OBJECTS`` for Grad-CAM; fewer for the methods that differentiate to
    every point or run a forward pass per region (see ``Explainer.max_objects``),
    so that every method's worst scan has a bound of a few seconds.
    """
    return min(MAX_OBJECTS, REGISTRY[method].max_objects)
