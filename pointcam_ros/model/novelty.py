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
How unlike its training data a model finds an object: a novelty score on its features.

A softmax is confident far from the data it was trained on, so a model's
confidence cannot say "I have never seen anything like this". A distance in
the model's own feature space can. The score here is the relative
Mahalanobis distance of Ren et al., "A Simple Fix to Mahalanobis Distance
for Improving Near-OOD Detection" (2021), on the penultimate features ``z``
(the input of the model's last linear layer, ``model.classifier``), for the
class ``c`` the model predicts::

    score(z, c) = (z - mu_c)^T P (z - mu_c) - (z - mu_0)^T P_0 (z - mu_0)

``mu_c`` is the mean of class c's training features and ``P`` the inverse
of the covariance the classes share (Lee et al., 2018); ``mu_0`` and
``P_0`` are the mean and inverse covariance of all training features. The
second term removes what is common to all data (distance from the bulk),
so the score rises where a cluster is far from its class but not merely
far from everything. A checkpoint may carry :class:`NoveltyStats`, fitted
on the clusters the pipeline cuts from simulated scenes, with a threshold
(:func:`pointcam_ros.learn.novelty.fit_novelty_stats`); the scene pipeline
shows a road user scoring above it as unknown (the ``novel`` rule).
"""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from pointcam_ros.model.pointnet import PointNetClassifier
from pointcam_ros.model.protocol import PooledHeadClassifier
import torch

#: Names of the statistics' tensors, in :meth:`NoveltyStats.tensors` order.
TENSOR_NAMES = ('class_means', 'precision', 'mean', 'background_precision')
#: Ridge added to each covariance's diagonal before it is inverted (features are
#: ReLU outputs: some are constant zero on the training data, a singular covariance).
RIDGE = 1e-3


@dataclass(frozen=True)
class NoveltyStats:
    """
    Statistics of a model's penultimate features, and the score above which an object is novel.

    ``class_means`` (C, D), ``precision`` (D, D), ``mean`` (D,),
    ``background_precision`` (D, D): float64 tensors (module docstring);
    ``threshold``: a finite float. D is the input width of the model's
    ``classifier``, C its classes. Frozen: ``dataclasses.replace`` makes a
    new one (with its own device copies).
    """

    class_means: torch.Tensor
    precision: torch.Tensor
    mean: torch.Tensor
    background_precision: torch.Tensor
    threshold: float
    #: The tensors per device (made on first use: no copy to a GPU per scan).
    _on_device: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Return the four tensors by name (:data:`TENSOR_NAMES`), as a checkpoint stores them."""
        return {name: getattr(self, name) for name in TENSOR_NAMES}

    def scores(self, features: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
        """
        Score ``(K,)`` float64 of ``features`` (K, D) for the ``predicted`` (K,) int64 classes.

        On the device of ``features``; the statistics are copied there once.
        """
        device = features.device
        if device not in self._on_device:
            self._on_device[device] = [t.to(device, torch.float64) for t in
                                       self.tensors().values()]
        means, precision, mean, background = self._on_device[device]
        z = features.to(torch.float64)
        gap = z - means.index_select(0, predicted.to(device))
        gap0 = z - mean
        return ((gap @ precision) * gap).sum(dim=1) - ((gap0 @ background) * gap0).sum(dim=1)


def fit_stats(features: np.ndarray, classes: np.ndarray, num_classes: int,
              threshold: float = float('inf')) -> NoveltyStats:
    """
    Fit :class:`NoveltyStats` to labelled features.

    ``features`` (n, D) float, ``classes`` (n,) int in ``[0, num_classes)``,
    every class present (ValueError otherwise: a class without features has
    no mean). ``threshold``: the score above which an object is novel (set
    it from held-out data with :func:`score_numpy`).
    """
    features = np.asarray(features, np.float64)
    classes = np.asarray(classes)
    if features.ndim != 2 or len(features) != len(classes):
        raise ValueError(f'features must be (n, D) with one class each, got {features.shape} '
                         f'and {classes.shape}')
    counts = np.bincount(classes, minlength=num_classes)
    if len(counts) > num_classes or (counts == 0).any():
        raise ValueError(f'every class 0..{num_classes - 1} needs features; counts per class: '
                         f'{counts.tolist()}: fit on more data')
    means = np.stack([features[classes == c].mean(axis=0) for c in range(num_classes)])
    mean = features.mean(axis=0)
    return NoveltyStats(torch.from_numpy(means), torch.from_numpy(_precision(
        features - means[classes])), torch.from_numpy(mean),
        torch.from_numpy(_precision(features - mean)), float(threshold))


def score_numpy(stats: NoveltyStats, features: np.ndarray, predicted: np.ndarray
                ) -> np.ndarray:
    """:meth:`NoveltyStats.scores` of ``features`` (K, D) on the host: ``(K,)`` float64."""
    return stats.scores(torch.from_numpy(np.asarray(features, np.float64)),
                        torch.from_numpy(np.asarray(predicted, np.int64))).numpy()


def _precision(centred: np.ndarray) -> np.ndarray:
    """
    Inverse ``(D, D)`` of the covariance of ``centred`` (n, D) rows, with :data:`RIDGE`.

    Made exactly symmetric: an inverse by LU is symmetric only to rounding,
    which grows with the condition number, and the checkpoint loader
    refuses a precision matrix that is not symmetric.
    """
    covariance = centred.T @ centred / len(centred)
    inverse = np.linalg.inv(covariance + RIDGE * np.eye(len(covariance)))
    return (inverse + inverse.T) / 2


def penultimate_width(model: torch.nn.Module) -> Optional[int]:
    """
    Return the input width D of ``model.classifier`` (a Linear), or None.

    None unless the model computes its logits as
    ``classifier(head(pooled))`` on pooled features one pass can report
    (:func:`logits_and_pooled`): a model family whose ``forward`` and
    ``classify`` are the family's own, with a Linear ``classifier``. A model
    of the protocol (``ExplainableModel``) is not one.
    """
    classifier = getattr(model, 'classifier', None)
    if (_family_pass(model) is None or not isinstance(classifier, torch.nn.Linear)
            or type(model).classify not in (PointNetClassifier.classify,
                                            PooledHeadClassifier.classify)):
        return None
    return classifier.in_features


def _family_pass(model: torch.nn.Module) -> Optional[str]:
    """
    How one pass of ``model`` reaches its pooled features: 'run', 'pooled' or None.

    'run' for a PointNet, 'pooled' for DGCNN and PointNet++
    (``cam_features``, ``pool``, ``classify``), each only while ``forward``
    is the family's own (so the pass is exactly ``model(points, mask)``);
    None for any other model.
    """
    if isinstance(model, PointNetClassifier) and type(model).forward is PointNetClassifier.forward:
        return 'run'
    if (isinstance(model, PooledHeadClassifier)
            and type(model).forward is PooledHeadClassifier.forward):
        return 'pooled'
    return None


def logits_and_pooled(model: torch.nn.Module, points: torch.Tensor,
                      mask: Optional[torch.Tensor] = None
                      ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """
    One forward pass of ``(B, C, N)`` points: logits ``(B, K)`` and the pooled features.

    For a model family (:func:`_family_pass`) the pooled features ``(B, P)``
    are what its head reads: PointNet's max-pool of A (``run``), the pools
    of the CAM map of DGCNN and PointNet++; the logits are the same
    computation as ``model(points, mask)``, bit for bit. Any other model:
    ``(model(points, mask), None)``. Runs under the caller's grad mode.
    """
    kind = _family_pass(model)
    if kind == 'run':
        out = model.run(points, mask)
        return out.logits, out.global_features
    if kind == 'pooled':
        model.check_input(points, mask)
        cam = model.cam_features(points, mask)
        pooled = model.pool(cam.features, cam.mask)[0]
        return model.classify(pooled), pooled
    return model(points, mask), None


def pooled_features(model: torch.nn.Module, points: torch.Tensor,
                    mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    Return the global features ``(B, P)`` a model family's head reads, of ``(B, C, N)`` points.

    One plain forward pass (:func:`logits_and_pooled`), no gradients.
    TypeError for a model that is not a family (see :func:`penultimate_width`),
    before any pass.
    """
    if _family_pass(model) is None:
        raise TypeError(f'{type(model).__name__} is not a model family with its own forward: '
                        'no pooled features to score')
    with torch.no_grad():
        return logits_and_pooled(model, points, mask)[1]


def penultimate_features(model: torch.nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """Return the input ``(B, D)`` of ``model.classifier`` for the pooled features ``(B, P)``."""
    with torch.no_grad():
        return model.head(pooled)
