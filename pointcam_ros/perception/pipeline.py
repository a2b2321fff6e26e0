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
or ``background`` (larger than any road user), and record why in
``DetectedObject.rule``.

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

Work per scan is bounded whatever the parameters: segmentation O(M log M)
time and O(M) memory in the M points (see
:mod:`~pointcam_ros.perception.segmentation`); at most ``MAX_OBJECTS``
objects are classified (the largest, if a scan has more clusters;
fewer with the costlier methods, see :func:`object_limit`; the
result's ``objects_capped`` counts the rest), in
forward passes of at most ``MODEL_CHUNK`` objects, so the model's work is at
most ``MAX_OBJECTS`` x N points and its memory that of ``MODEL_CHUNK``
objects (on the CPU, objects of fewer points run at fewer samples, see
:func:`sample_sizes`); the map back is O(M log N) (numpy, k-d tree) or O(M N) (torch, in
blocks of ``_MAP_BACK_BLOCK`` elements, ``_MAP_BACK_BLOCK_GPU`` on a GPU).

The node, the bag tool, the data set builder, the tests and notebooks all
drive this class.
"""

import time
from typing import Any, Optional

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.geometry import BOX_COS, BOX_SIN, BOX_YAWS, oriented_box
from pointcam_ros.common.results import DetectedObject, SceneResult, UNKNOWN
from pointcam_ros.explain.gradcam import make_explainer, REGISTRY
from pointcam_ros.formats.cloud_io import (
    finite_rows, NO_OBJECT, PackedCloud, read_cloud, saliency_cloud)
from pointcam_ros.model.checkpoint import CheckpointError, load_checkpoint, LoadedModel
from pointcam_ros.model.device import resolve_device
from pointcam_ros.model.preprocess import GROUND_NORMALIZATIONS, HEIGHT_SCALE
from pointcam_ros.model.preprocess import heights_above_lowest, NORMALIZATIONS, normalize_object
from pointcam_ros.model.preprocess import normalized_channels, RANGE_SCALE, resample_indices
from pointcam_ros.model.preprocess import VIEW_NORMALIZATIONS, with_heights
from pointcam_ros.perception import segmentation_torch
from pointcam_ros.perception.rules import (
    background_index, BACKGROUND_RULES, CORE_SHARE, plane_fits, shape_rule, SLIVER)
from pointcam_ros.perception.segmentation import (
    segment_scene, segmentation_tables, SegmentationTables)
from scipy.spatial import cKDTree, ConvexHull, QhullError
import torch
from torch import Tensor

#: ``backend`` values of :class:`ScenePipeline`.
BACKENDS = ('auto', 'numpy', 'torch')
#: Elements of the (points x samples x 3) block the torch map back handles at once on
#: the CPU (cache-sized).
_MAP_BACK_BLOCK = 1 << 21
#: The same on a GPU: 64 MiB per float32 temporary, about 3 x that at the peak, and a
#: few launches per scan instead of one block per 2,730 points (N = 256).
_MAP_BACK_BLOCK_GPU = 1 << 24
#: Objects of more points have their box candidates projected from their hull's vertices.
_HULL_FROM = 128
#: Box candidates projected at a time on the CPU (``P x 8`` float64 temporaries).
_BOX_STEP_CPU = 8
#: On a GPU, elements of each float64 temporary of the box fit (16 MiB; 4-6 of them).
_BOX_BLOCK = 1 << 21
#: Most objects classified per scan; beyond it only the largest clusters are (the rest
#: stay unlabelled), so the model's work per scan is bounded whatever the parameters.
MAX_OBJECTS = 1024
#: Objects per forward pass: bounds the model's memory (~MODEL_CHUNK x 512 x N floats).
MODEL_CHUNK = 256


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
        self.loaded.model.to(self.device).eval()
        if backend == 'auto':
            backend = 'torch' if self.device.type == 'cuda' else 'numpy'
        self.backend = backend
        self.config = config
        self.explainer = None
        self._tables: Optional[SegmentationTables] = None
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
        # The ground fit's random draws depend on the seed only: on the device once.
        tables = segmentation_tables(config.seed, segmentation_torch, self.device)
        self.explainer, self._tables, self.config = explainer, tables, config

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
            raise ScanError(f'points must be (M, 3), got {points.shape}', 'bad_shape')
        if points.shape[0] > config.max_input_points:
            raise ScanError(f'scan has {points.shape[0]} points, more than max_input_points '
                            f'= {config.max_input_points}', 'too_many_points')
        num = points.shape[0]
        result = SceneResult(np.zeros(num, np.float32), np.full(num, NO_OBJECT, np.int32),
                             np.full(num, NO_OBJECT, np.int32), device=str(self.device))
        finite = np.flatnonzero(finite_rows(points))
        xyz = np.ascontiguousarray(points[finite], dtype=np.float32)
        run = self._process_torch if self.backend == 'torch' else self._process_numpy
        objects = run(xyz, config, result, started)
        if objects is None:
            result.timings.update(sample=0.0, model=0.0, map_back=0.0)
            return result
        self._fill(result, finite, config, xyz, *objects)
        return result

    def _process_numpy(self, xyz: np.ndarray, config: PipelineConfig,
                       result: SceneResult, started: float) -> Optional[tuple]:
        """Numpy backend of :meth:`process` on ``(M, 3)`` float32 finite points; see ``_fill``."""
        timings = result.timings
        if config.mode == 'object':
            labels = np.zeros(len(xyz), np.int32)
            count = 1 if len(xyz) else 0
            height = heights_above_lowest(xyz)
        else:
            segmentation = segment_scene(xyz, config)
            limit = object_limit(config.method)
            result.objects_capped = max(0, segmentation.num_objects - limit)
            labels, count = _largest_objects(segmentation.labels, segmentation.num_objects,
                                             limit)
            height = segmentation.height
        timings['segment'] = 1e3 * (time.perf_counter() - started)
        if count == 0:
            return None
        grounded = self.loaded.normalization in GROUND_NORMALIZATIONS

        mark = time.perf_counter()
        order = np.argsort(labels, kind='stable')
        bounds = np.searchsorted(labels[order], np.arange(count + 1))
        members = [order[bounds[k]:bounds[k + 1]] for k in range(count)]
        n = self.loaded.num_points
        counts = np.diff(bounds)
        sizes = (sample_sizes(counts, n) if self.explainer.duplicate_invariant
                 else np.full(count, n))
        rng = np.random.default_rng(config.seed)
        inputs, sampled = [], []  # per object: (C, size) model input, positions of its samples
        for k, idx in enumerate(members):
            # The N draws as in training, normalised over all N (the centroid counts the
            # repeats, as it did in training); their first min(count, N) hold every point
            # once, so the first sizes[k] of them are all the model needs to see. The
            # random stream, hence every other object's samples, stays as with N for all.
            local = resample_indices(len(idx), n, rng)
            chosen = idx[local]  # x, y, z, plus the height above the ground if the model reads it
            drawn = with_heights(xyz[chosen], height[chosen]) if grounded else xyz[chosen]
            normalized = normalize_object(drawn, self.loaded.normalization)
            sampled.append(local[:sizes[k]])
            inputs.append(normalized[:sizes[k]].T)
        timings['sample'] = 1e3 * (time.perf_counter() - mark)

        mark = time.perf_counter()
        sal: list = [None] * count
        probs = np.empty((count, len(self.class_names)))
        predicted, targets = np.empty(count, np.int64), np.empty(count, np.int64)
        for size in np.unique(sizes):  # one batch per sample count, at most 5
            group = np.flatnonzero(sizes == size)
            batch = torch.from_numpy(np.stack([inputs[k] for k in group]))
            out = (t.cpu().numpy() for t in self._explain(batch.to(self.device), config))
            group_sal, probs[group], predicted[group], targets[group] = out
            for j, k in enumerate(group):
                sal[k] = group_sal[j]
        timings['model'] = 1e3 * (time.perf_counter() - mark)

        mark = time.perf_counter()
        saliency = np.zeros(len(xyz), np.float32)
        boxes, cores = np.zeros((count, 7)), np.zeros((count, 3))
        for k, idx in enumerate(members):
            points = xyz[idx]
            saliency[idx] = self._map_back(points, sampled[k], sal[k])
            center, size, yaw = oriented_box(points, hull_outline(points))
            boxes[k] = (*center, *size, yaw)
            cores[k] = core_size(points, yaw)
        timings['map_back'] = 1e3 * (time.perf_counter() - mark)
        return labels, saliency, probs, predicted, targets, counts, boxes, cores

    def _process_torch(self, xyz: np.ndarray, config: PipelineConfig,
                       result: SceneResult, started: float) -> Optional[tuple]:
        """
        Torch backend of :meth:`process`: everything on ``self.device``; see ``_fill``.

        One copy of the points to the device, one copy of all results back,
        and the small ground-level table's round trip in
        ``segmentation.ground_level``.
        """
        timings = result.timings
        device = self.device
        sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
        points = torch.from_numpy(xyz).to(device)
        if config.mode == 'object':
            labels = torch.zeros(len(xyz), dtype=torch.int64, device=device)
            count = 1 if len(xyz) else 0
            height = points[:, 2] - points[:, 2].min() if count else points[:, 2]
        else:
            segmentation = segment_scene(points, config, tables=self._tables)
            labels, count = segmentation.labels.to(torch.int64), segmentation.num_objects
            height = segmentation.height
            limit = object_limit(config.method)
            result.objects_capped = max(0, count - limit)
            labels, count = _largest_objects_torch(labels, count, limit)
        timings['segment'] = 1e3 * (time.perf_counter() - started)
        if count == 0:
            return None

        mark = time.perf_counter()
        n = self.loaded.num_points
        members = torch.nonzero(labels >= 0).reshape(-1)
        generator = torch.Generator(device=device).manual_seed(config.seed)
        members = members[torch.argsort(torch.rand(len(members), generator=generator,
                                                   device=device))]
        members = members[torch.argsort(labels[members], stable=True)]  # by object, random
        member_labels = labels[members]
        bounds = torch.searchsorted(member_labels, torch.arange(count + 1, device=device))
        counts = bounds[1:] - bounds[:-1]
        slots = torch.arange(n, device=device)
        pick = members[bounds[:-1, None] + slots[None, :] % counts[:, None]]  # (K, n)
        samples = points[pick]  # (K, n, 3)
        batch = _normalize_batch(samples, self.loaded.normalization,
                                 height[pick]).transpose(1, 2)
        sync()
        timings['sample'] = 1e3 * (time.perf_counter() - mark)

        mark = time.perf_counter()
        cam, probs, predicted, targets = self._explain(batch.contiguous(), config)
        sync()
        timings['model'] = 1e3 * (time.perf_counter() - mark)

        mark = time.perf_counter()
        saliency = torch.zeros(len(xyz), device=device)
        member_points = points[members]
        block = max(1, (_MAP_BACK_BLOCK if device.type == 'cpu' else _MAP_BACK_BLOCK_GPU)
                    // (3 * n))
        for lo in range(0, len(members), block):
            objects = member_labels[lo:lo + block]
            gap = member_points[lo:lo + block, None, :] - samples[objects]
            nearest = torch.argmin((gap * gap).sum(dim=2), dim=1)
            saliency[members[lo:lo + block]] = cam[objects, nearest]
        boxes = _oriented_boxes(member_points, member_labels, counts)
        cores = core_sizes_torch(member_points, member_labels, counts, boxes[:, 6])
        per_object = torch.cat([t.to(torch.float64) for t in (
            probs, predicted[:, None], targets[:, None], counts[:, None],
            boxes, cores)], dim=1)
        packed = torch.cat([saliency.to(torch.float64), labels.to(torch.float64),
                            per_object.reshape(-1)]).cpu().numpy()  # the one copy back
        timings['map_back'] = 1e3 * (time.perf_counter() - mark)
        m, classes = len(xyz), probs.shape[1]
        per_object = packed[2 * m:].reshape(count, classes + 3 + 7 + 3)
        return (packed[m:2 * m].astype(np.int32), packed[:m].astype(np.float32),
                per_object[:, :classes], per_object[:, classes].astype(np.int64),
                per_object[:, classes + 1].astype(np.int64),
                per_object[:, classes + 2].astype(np.int64),
                per_object[:, classes + 3:classes + 10], per_object[:, classes + 10:])

    def _explain(self, batch: Tensor, config: PipelineConfig) -> tuple[Tensor, ...]:
        """
        Classify and explain ``(K, C, N)`` objects, ``MODEL_CHUNK`` at a time, on the device.

        Returns saliency (K, N), calibrated probabilities (K, C), predicted
        and explained classes (K,).
        """
        parts = []
        for lo in range(0, len(batch), MODEL_CHUNK):
            explained = self.explainer(batch[lo:lo + MODEL_CHUNK],
                                       target=config.target_class or None)
            parts.append((explained.saliency,
                          torch.softmax(explained.logits / self.loaded.temperature, dim=1),
                          explained.predicted, explained.target))
        return tuple(torch.cat(column) for column in zip(*parts))

    def _fill(self, result: SceneResult, finite: np.ndarray, config: PipelineConfig,
              xyz: np.ndarray, labels: np.ndarray, saliency: np.ndarray, probs: np.ndarray,
              predicted: np.ndarray, targets: np.ndarray, counts: np.ndarray,
              boxes: np.ndarray, cores: np.ndarray) -> None:
        """
        Write a backend's output into ``result`` and apply the shape rules.

        Over the F finite points (rows ``finite`` of the input): ``xyz`` (F, 3)
        float32, ``labels`` (F,) int32 object or -1, ``saliency`` (F,)
        float32. Per object (K): ``probs`` (K, C), ``predicted``, ``targets``
        and ``counts`` (K,) int, ``boxes`` (K, 7) center, size, yaw,
        ``cores`` (K, 3) float64 (:func:`core_size` per object).
        """
        background = background_index(self.class_names)
        object_class = np.empty(len(counts), np.int32)
        planes = plane_fits(xyz, labels, len(counts))
        for k in range(len(counts)):
            center, size, yaw = boxes[k, :3].copy(), boxes[k, 3:6].copy(), float(boxes[k, 6])
            class_id = int(predicted[k])
            kind, reason = shape_rule(size, self.class_names[class_id], core=cores[k],
                                      plane=planes[k])
            if kind in BACKGROUND_RULES and background >= 0:
                reason = (f'the model said {self.class_names[class_id]} '
                          f'{float(probs[k, class_id]):.2f}; {reason}')
                class_id = background
            confidence = float(probs[k, class_id])
            unknown = (kind == SLIVER or (kind in BACKGROUND_RULES and background < 0)
                       or (not kind and confidence < config.min_confidence)
                       or not np.isfinite(confidence))
            object_class[k] = UNKNOWN if unknown else class_id
            result.objects.append(DetectedObject(
                object_id=k, class_id=class_id, class_name=self.class_names[class_id],
                confidence=confidence, target_class=self.class_names[int(targets[k])],
                num_points=int(counts[k]), center=center, size=size, yaw=yaw,
                unknown=unknown, rule=f'{kind}: {reason}' if kind else ''))
        inside = labels >= 0
        rows = finite[inside]
        result.saliency[rows] = saliency[inside]
        result.object_id[rows] = labels[inside]
        result.class_id[rows] = object_class[labels[inside]]


def hull_outline(points: np.ndarray) -> Optional[np.ndarray]:
    """
    Convex hull vertices ``(h, 2)`` float64 of ``(n, 3)`` points seen from above, or None.

    None below ``_HULL_FROM`` points (projecting them all costs less than
    Qhull) and for a degenerate hull (collinear or coincident points): then
    :func:`~pointcam_ros.common.geometry.box_yaw` projects every point.
    Same box either way; for a 7,000-point facade about 4x faster.
    """
    if len(points) <= _HULL_FROM:
        return None
    xy = points[:, :2].astype(np.float64)
    try:
        return xy[ConvexHull(xy).vertices]
    except (QhullError, ValueError):
        return None


def sample_sizes(counts: np.ndarray, num_points: int) -> np.ndarray:
    """
    Return the samples per object ``(K,)`` int64 for objects of ``counts`` (K,) points.

    The smallest of N/16, N/8, N/4, N/2 and N (``num_points``; halvings that
    stay whole numbers) that holds all of an object's points, N for objects
    of N points or more. For an explainer whose output repeats do not change
    (``duplicate_invariant``) this gives the same logits and saliency as N
    samples, at a fraction of the work: 46 % of the simulated test set's
    objects have fewer than 60 points, and the model's cost grows with the
    samples.
    """
    sizes = [num_points]
    while len(sizes) < 5 and sizes[-1] % 2 == 0 and sizes[-1] > 1:
        sizes.append(sizes[-1] // 2)
    ladder = np.array(sorted(sizes), np.int64)
    pick = np.searchsorted(ladder, np.asarray(counts, np.int64))
    return ladder[np.minimum(pick, len(ladder) - 1)]


def object_limit(method: str) -> int:
    """
    Most objects explained per scan with ``method``: its explainer's ``max_objects``.

    ``MAX_OBJECTS`` for Grad-CAM; fewer for the methods that differentiate to
    every point or run a forward pass per region (see ``Explainer.max_objects``),
    so that every method's worst scan has a bound of a few seconds.
    """
    return min(MAX_OBJECTS, REGISTRY[method].max_objects)


def _largest_objects(labels: np.ndarray, count: int, limit: int) -> tuple[np.ndarray, int]:
    """Keep the ``limit`` largest of ``count`` objects of ``(M,)`` labels (order kept)."""
    if count <= limit:
        return labels, count
    sizes = np.bincount(labels[labels >= 0], minlength=count)
    kept = np.sort(np.argsort(-sizes, kind='stable')[:limit])
    remap = np.full(count + 1, -1, np.int32)  # remap[-1] (last) keeps -1
    remap[kept] = np.arange(limit, dtype=np.int32)
    return remap[labels], limit


def _largest_objects_torch(labels: Tensor, count: int, limit: int) -> tuple[Tensor, int]:
    """Torch twin of :func:`_largest_objects`."""
    if count <= limit:
        return labels, count
    sizes = torch.bincount(labels[labels >= 0], minlength=count)
    kept = torch.sort(torch.argsort(-sizes, stable=True)[:limit]).values
    remap = torch.full((count + 1,), -1, dtype=torch.int64, device=labels.device)
    remap[kept] = torch.arange(limit, device=labels.device)
    return remap[labels], limit


def _normalize_batch(samples: Tensor, mode: str, height: Optional[Tensor] = None) -> Tensor:
    """
    Torch twin of ``normalize_object`` for a batch ``(K, n, 3)`` float32.

    ``height`` (K, n) float32: each sample's height above the ground, which
    :data:`~pointcam_ros.model.preprocess.GROUND_NORMALIZATIONS` need
    (ValueError without it). Returns a new ``(K, n, C)`` float32 tensor,
    ``C`` = :func:`~pointcam_ros.model.preprocess.normalized_channels`.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {mode!r}')
    if mode in GROUND_NORMALIZATIONS and (height is None or bool(torch.isnan(height).any())):
        raise ValueError(f"normalization {mode!r} needs each point's height above the ground "
                         '(a tensor without NaN)')
    if mode == 'center_ground':
        xy = samples[..., :2] - samples[..., :2].mean(dim=1, keepdim=True)
        z = samples[..., 2:] - samples[..., 2:].amin(dim=1, keepdim=True)
        return torch.cat([xy, z], dim=2)
    centroid = samples.mean(dim=1, keepdim=True)  # (K, 1, 3)
    out = samples - centroid
    if mode in VIEW_NORMALIZATIONS:
        planar = torch.hypot(centroid[..., 0], centroid[..., 1])  # (K, 1)
        ahead = planar > 0
        safe = torch.where(ahead, planar, torch.ones_like(planar))
        cos = torch.where(ahead, centroid[..., 0] / safe, torch.ones_like(planar))
        sin = torch.where(ahead, centroid[..., 1] / safe, torch.zeros_like(planar))
        x, y = out[..., 0], out[..., 1]
        turned = [cos * x + sin * y, cos * y - sin * x, out[..., 2]]
        if mode in ('view_range', 'view_ground'):
            turned.append((planar / RANGE_SCALE).expand_as(x))
        if mode == 'view_ground':
            turned.append(height / HEIGHT_SCALE)
        return torch.stack(turned, dim=2)
    if mode == 'unit_sphere':
        radius = torch.sqrt((out * out).sum(dim=2).amax(dim=1))[:, None, None]
        out = torch.where(radius > 0, out / radius.clamp_min(torch.finfo(out.dtype).tiny), out)
    return out


def core_size(points: np.ndarray, yaw: float, share: float = CORE_SHARE) -> np.ndarray:
    """
    Extents ``(3,)`` float64 of the middle ``share`` of one object's ``(n, 3)`` points.

    Along, across and up the box at ``yaw`` (n >= 1): per axis, the spread
    between the ``(1 - share) / 2`` and ``(1 + share) / 2`` quantiles, so a
    few mixed pixels or a stray branch do not make a car 4 m wide.
    """
    xyz = points.astype(np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.stack([xyz[:, 0] * c + xyz[:, 1] * s, xyz[:, 1] * c - xyz[:, 0] * s,
                      xyz[:, 2]], axis=1)
    lo, hi = np.quantile(local, [(1.0 - share) / 2, (1.0 + share) / 2], axis=0)
    return hi - lo


def _quantile_sorted(ordered: Tensor, starts: Tensor, counts: Tensor, q: float) -> Tensor:
    """
    Return each object's linear ``q`` quantile (numpy's), ``(K, D)`` float64.

    ``ordered`` (P, D) float64: each column sorted within each object; object
    k holds rows ``starts[k]`` to ``starts[k] + counts[k]``. Same lerp as
    ``np.quantile`` (method 'linear').
    """
    position = q * (counts - 1).to(torch.float64)
    below = torch.floor(position)
    t = (position - below)[:, None]
    lo_row = starts + below.to(torch.int64)
    hi_row = starts + torch.minimum(below.to(torch.int64) + 1, counts - 1)
    a, b = ordered[lo_row], ordered[hi_row]
    return torch.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)


def core_sizes_torch(points: Tensor, labels: Tensor, counts: Tensor, yaw: Tensor,
                     share: float = CORE_SHARE) -> Tensor:
    """
    Torch twin of :func:`core_size` for all objects at once, on the device: ``(K, 3)`` float64.

    ``points`` (P, 3) float32 object points in any order, ``labels`` (P,)
    int64 their objects ``0..K-1``, ``counts`` (K,) int64 the points per
    object (each > 0), ``yaw`` (K,) float64 box yaws. Two stable sorts of
    the P points per axis instead of a loop over the objects; equal to numpy
    up to the last bits of cos and sin.
    """
    xyz = points.to(torch.float64)
    c, s = torch.cos(yaw)[labels], torch.sin(yaw)[labels]
    local = torch.stack([xyz[:, 0] * c + xyz[:, 1] * s, xyz[:, 1] * c - xyz[:, 0] * s,
                         xyz[:, 2]], dim=1)
    by_value = torch.argsort(local, dim=0, stable=True)
    by_object = torch.argsort(labels[by_value], dim=0, stable=True)
    ordered = local.gather(0, by_value.gather(0, by_object))
    starts = torch.cumsum(counts, 0) - counts
    low = _quantile_sorted(ordered, starts, counts, (1.0 - share) / 2)
    high = _quantile_sorted(ordered, starts, counts, (1.0 + share) / 2)
    return high - low


def _oriented_boxes(points: Tensor, labels: Tensor, counts: Tensor) -> Tensor:
    """
    Oriented boxes ``(K, 7)`` float64 (center, size, yaw) of ``(P, 3)`` points by object.

    Torch twin of :func:`~pointcam_ros.common.geometry.oriented_box`: the
    smallest-area box over the principal axis and the ``BOX_YAWS`` steps,
    along its long side (yaw 0 for objects of fewer than 3 points). The
    candidates are projected 8 at a time on the CPU (``P x 8`` float64
    temporaries, cache-friendly); on a GPU as many at a time as keep each
    temporary at ``_BOX_BLOCK`` elements, all 91 for up to 23k object
    points, so that a scan costs few kernel launches.
    """
    count = len(counts)
    xyz = points.to(torch.float64)
    n = counts.to(torch.float64)
    mean = torch.zeros((count, 2), dtype=torch.float64, device=points.device)
    mean = mean.index_add(0, labels, xyz[:, :2]) / n[:, None]
    d = xyz[:, :2] - mean[labels]
    second = torch.zeros((count, 3), dtype=torch.float64, device=points.device).index_add(
        0, labels, torch.stack([d[:, 0] * d[:, 0], d[:, 0] * d[:, 1], d[:, 1] * d[:, 1]], 1))
    principal = 0.5 * torch.atan2(2 * second[:, 1], second[:, 0] - second[:, 2])
    table = [torch.from_numpy(t).to(points.device) for t in (BOX_YAWS, BOX_COS, BOX_SIN)]
    yaws = torch.cat([principal[:, None], table[0].expand(count, -1)], dim=1)  # (K, 91)
    cos = torch.cat([torch.cos(principal)[:, None], table[1].expand(count, -1)], dim=1)
    sin = torch.cat([torch.sin(principal)[:, None], table[2].expand(count, -1)], dim=1)
    length = torch.empty_like(yaws)
    width = torch.empty_like(yaws)
    x, y = xyz[:, :1], xyz[:, 1:2]
    step = (_BOX_STEP_CPU if points.device.type == 'cpu'
            else max(_BOX_STEP_CPU, _BOX_BLOCK // max(1, len(labels))))
    for lo in range(0, yaws.shape[1], step):
        c, s = cos[labels, lo:lo + step], sin[labels, lo:lo + step]
        index = labels[:, None].expand(-1, c.shape[1])
        for out, values in ((length, x * c + y * s), (width, y * c - x * s)):
            top = torch.full((count, c.shape[1]), float('-inf'), dtype=torch.float64,
                             device=points.device).scatter_reduce(0, index, values, 'amax')
            low = torch.full((count, c.shape[1]), float('inf'), dtype=torch.float64,
                             device=points.device).scatter_reduce(0, index, values, 'amin')
            out[:, lo:lo + step] = top - low
    best = torch.argmin(length * width, dim=1, keepdim=True)
    yaw = yaws.gather(1, best)[:, 0]
    longer = width.gather(1, best)[:, 0] > length.gather(1, best)[:, 0]
    yaw = torch.where(longer, yaw + np.pi / 2, yaw)
    yaw = torch.where(counts >= 3, yaw, torch.zeros_like(yaw))
    c, s = torch.cos(yaw)[labels], torch.sin(yaw)[labels]
    local = torch.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c,
                         xyz[:, 2]], dim=1)
    lo = torch.full((count, 3), float('inf'), dtype=torch.float64, device=points.device)
    hi = torch.full((count, 3), float('-inf'), dtype=torch.float64, device=points.device)
    index = labels[:, None].expand(-1, 3)
    lo = lo.scatter_reduce(0, index, local, reduce='amin')
    hi = hi.scatter_reduce(0, index, local, reduce='amax')
    mid = (lo + hi) / 2
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    center = torch.stack([mean[:, 0] + cy * mid[:, 0] - sy * mid[:, 1],
                          mean[:, 1] + sy * mid[:, 0] + cy * mid[:, 1], mid[:, 2]], dim=1)
    return torch.cat([center, hi - lo, yaw[:, None]], dim=1)
