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

"""Classification metrics of a model on a data set."""

from typing import Sequence

import numpy as np
from pointcam_ros.learn.batching import make_batch
from pointcam_ros.learn.dataset import ObjectDataset
import torch


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class."""
    return np.bincount(truth * num_classes + predicted,
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def metrics(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """Overall accuracy, per-class recall (accuracy) and precision from a confusion matrix."""
    total = confusion.sum()
    per_class = {}
    for k, name in enumerate(class_names):
        support = int(confusion[k].sum())
        predicted = int(confusion[:, k].sum())
        per_class[name] = {
            'support': support,
            'accuracy': float(confusion[k, k] / support) if support else float('nan'),
            'precision': float(confusion[k, k] / predicted) if predicted else float('nan')}
    return {'accuracy': float(np.trace(confusion) / total) if total else float('nan'),
            'count': int(total), 'per_class': per_class,
            'confusion': confusion.tolist(), 'class_names': list(class_names)}


#: Lower edges of the point-count bands that :func:`accuracy_by_points` reports.
POINT_BANDS = (0, 30, 60, 120, 300)


def accuracy_by_points(truth: np.ndarray, predicted: np.ndarray, num_points: np.ndarray,
                       bands: Sequence[int] = POINT_BANDS) -> list[dict]:
    """
    Accuracy per band of object size: ``[{'points': [lo, hi], 'count', 'accuracy'}, ...]``.

    ``truth``, ``predicted`` and ``num_points`` are ``(M,)`` ints; band i
    holds the objects with ``bands[i] <= num_points < bands[i + 1]`` (the last
    band is open; ``hi`` is None). Sparse objects are where a classifier
    fails, so a single accuracy hides what a user needs to know.
    """
    out = []
    for i, low in enumerate(bands):
        high = int(bands[i + 1]) if i + 1 < len(bands) else None
        inside = (num_points >= low) & (num_points < (high if high is not None else np.inf))
        count = int(inside.sum())
        out.append({'points': [int(low), high], 'count': count,
                    'accuracy': float((truth[inside] == predicted[inside]).mean())
                    if count else float('nan')})
    return out


@torch.no_grad()
def collect_logits(model: torch.nn.Module, dataset: ObjectDataset, num_points: int,
                   normalization: str, device: torch.device, batch_size: int = 128,
                   seed: int = 0) -> np.ndarray:
    """Return the logits ``(M, K)`` float64 of every object (fixed-seed resampling)."""
    model.eval()
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(dataset), batch_size):
        batch = make_batch(dataset.points[start:start + batch_size], num_points,
                           normalization, rng).to(device)
        out.append(model(batch).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_classes))


def predict(model: torch.nn.Module, dataset: ObjectDataset, num_points: int,
            normalization: str, device: torch.device, batch_size: int = 128,
            seed: int = 0) -> np.ndarray:
    """Predicted class ``(M,)`` int64 of every object (fixed-seed resampling)."""
    logits = collect_logits(model, dataset, num_points, normalization, device, batch_size, seed)
    return logits.argmax(axis=1).astype(np.int64)


def evaluate(model, dataset, num_points, normalization, device) -> dict:
    """Accuracy metrics of ``model`` on ``dataset`` (:func:`metrics`, plus ``by_points``)."""
    predicted = predict(model, dataset, num_points, normalization, device)
    out = metrics(confusion_matrix(dataset.labels, predicted, len(dataset.class_names)),
                  dataset.class_names)
    sizes = dataset.point_counts()
    out['by_points'] = accuracy_by_points(dataset.labels, predicted, sizes)
    return out
