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
What every explainer shares: the model, class names, checks and the result.

An explainer maps a batch of B objects, ``points`` (B, C_in, N) with an
optional ``mask`` (B, N) bool of real points, to a :class:`CamResult`. The
base class :class:`Explainer` holds the model and class names, refuses a
model in training mode, validates the input and the target classes, and
packages the result (normalised saliency, probabilities); subclasses
implement :meth:`Explainer.explain` only.
"""

from dataclasses import dataclass
from typing import ClassVar, Optional, Sequence, Union

import torch
from torch import nn, Tensor

Target = Union[None, int, str, Sequence[Union[int, str]], Tensor]

#: Value of a requested target meaning "the object's predicted class".
PREDICTED = -1


@dataclass
class CamResult:
    """
    Output of an explainer for a batch of B objects of N points.

    ``cam`` (B, N) raw non-negative map; ``saliency`` (B, N) in [0, 1];
    ``logits`` and ``probabilities`` (B, K); ``target`` (B,) int64 class that
    was explained; ``predicted`` (B,) int64 arg-max class; floats in the
    model's dtype, everything on the model's device. ``weights`` are the
    channel weights a CAM method used, (B, C) (Grad-CAM: alpha) or
    (B, C, M); None for the perturbation methods. ``layer_cam`` (B, M) is
    the raw non-negative map on the CAM layer's own points when they are not
    the input points (PointNet++ centroids; ``cam`` is then that map carried
    to every input point), else None. ``pooled`` (B, P) are the global
    features the model's head read (the pool of A) in the method's pass on
    the objects themselves, for a model family
    (:func:`~pointcam_ros.model.novelty.logits_and_pooled`), else None.
    """

    cam: Tensor
    saliency: Tensor
    logits: Tensor
    probabilities: Tensor
    target: Tensor
    predicted: Tensor
    weights: Optional[Tensor] = None
    layer_cam: Optional[Tensor] = None
    pooled: Optional[Tensor] = None


def normalize_cam(cam: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """
    Scale each row of a non-negative ``(B, N)`` map to [0, 1] by its maximum.

    Rows that are all zero stay zero; ``mask`` (B, N) bool zeroes padding first.
    """
    if mask is not None:
        cam = cam.masked_fill(~mask, 0.0)
    peak = cam.amax(dim=1, keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny),
                       torch.zeros_like(cam))


def requested_targets(target: Target, batch: int, num_classes: int, device: torch.device,
                      class_names: Optional[Sequence[str]] = None) -> Tensor:
    """
    Turn a target specification into ``(B,)`` int64 class indices, before any forward pass.

    ``None`` means each object's predicted class and gives :data:`PREDICTED`
    (-1) entries, which the explainers replace by the arg-max class on the
    device (no host sync). An int or class name applies to every object; a
    sequence or tensor gives one per object. Raises ValueError for unknown
    names, a wrong count or an index outside ``[0, num_classes)``.
    """
    if target is None:
        return torch.full((batch,), PREDICTED, dtype=torch.long, device=device)
    if isinstance(target, Tensor):
        out = target.to(device=device, dtype=torch.long).reshape(-1)
        if out.numel() == 1:
            out = out.expand(batch).clone()
        if out.shape != (batch,):
            raise ValueError(f'got {out.numel()} targets for {batch} objects')
        if bool(((out < 0) | (out >= num_classes)).any()):
            raise ValueError(f'target classes must be in [0, {num_classes}), '
                             f'got {out.tolist()}')
        return out
    items = [target] * batch if isinstance(target, (int, str)) else list(target)
    if len(items) != batch:
        raise ValueError(f'got {len(items)} targets for {batch} objects')
    indices = []
    for item in items:
        if isinstance(item, str):
            if not class_names or item not in class_names:
                known = list(class_names or [])
                raise ValueError(f"unknown target class '{item}'; known: {known}")
            indices.append(list(class_names).index(item))
        else:
            indices.append(int(item))
    if any(not 0 <= i < num_classes for i in indices):
        raise ValueError(f'target classes must be in [0, {num_classes}), got {indices}')
    return torch.tensor(indices, dtype=torch.long, device=device)


def resolve_target(target: Target, predicted: Tensor,
                   class_names: Optional[Sequence[str]] = None,
                   num_classes: Optional[int] = None) -> Tensor:
    """
    Turn a target specification into ``(B,)`` int64 class indices, given the prediction.

    Same rules as :func:`requested_targets`; ``None`` gives ``predicted``.
    ``num_classes`` defaults to no upper bound.
    """
    requested = requested_targets(target, predicted.shape[0],
                                  num_classes if num_classes is not None else 2 ** 62,
                                  predicted.device, class_names)
    return torch.where(requested >= 0, requested, predicted)


class Explainer:
    """
    Base class of every explainer: one call explains a batch of objects.

    Holds the model and the class names (for targets given by name); the
    call refuses a model in training mode (BatchNorm would mix the objects of
    a batch), checks the input, and hands over to :meth:`explain`. The model
    is any of :mod:`pointcam_ros.model.registry`'s families or any model of
    the protocol of :mod:`pointcam_ros.model.protocol`.
    """

    #: The name :func:`~pointcam_ros.explain.gradcam.make_explainer` knows it by.
    name: ClassVar[str] = ''
    #: True when repeating an object's points changes neither its logits nor its
    #: normalised saliency, so an object needs no more samples than it has points
    #: (the pipeline then runs small objects at fewer samples).
    duplicate_invariant: ClassVar[bool] = False
    #: Most objects the scene pipeline explains per scan with this method (the largest
    #: first): sized so that the worst scan's model stage stays within a few seconds on
    #: one CPU thread (``bench/bench_worst_case.py`` measures every method at its cap).
    max_objects: ClassVar[int] = 1024

    def __init__(self, model: nn.Module,
                 class_names: Optional[Sequence[str]] = None):
        self.model = model
        self.class_names = list(class_names) if class_names is not None else None
        # Both the method and the model must be blind to repeats (PointNet is; DGCNN's
        # kNN graphs and PointNet++'s ball queries are not; a wrapped model says).
        self.duplicate_invariant = (type(self).duplicate_invariant
                                    and bool(getattr(model, 'duplicate_invariant', False)))

    def __call__(self, points: Tensor, mask: Optional[Tensor] = None,
                 target: Target = None) -> CamResult:
        """
        Explain a batch: ``points`` (B, C_in, N) float on the model's device.

        ``mask`` (B, N) bool marks real points (None: all real); ``target``
        selects the class explained (default: the predicted class): an index
        or class name for all objects, or one per object.
        """
        if self.model.training:
            raise RuntimeError(f'{self.name} needs the model in eval() mode (BatchNorm would '
                               'mix the objects of a batch): call model.eval() first')
        self.model.check_input(points, mask)
        requested = requested_targets(target, points.shape[0], self.num_classes,
                                      points.device, self.class_names)
        return self.explain(points, mask, requested)

    @property
    def num_classes(self) -> int:
        """Return the number of classes of the model."""
        return self.model.config.num_classes

    def explain(self, points: Tensor, mask: Optional[Tensor], requested: Tensor) -> CamResult:
        """
        Explain checked input; ``requested`` (B,) int64 holds classes or PREDICTED (-1).

        Subclasses implement this; :meth:`__call__` has done the checks.
        """
        raise NotImplementedError

    @staticmethod
    def package(cam: Tensor, logits: Tensor, requested: Tensor, mask: Optional[Tensor],
                weights: Optional[Tensor] = None,
                probabilities: Optional[Tensor] = None,
                layer_cam: Optional[Tensor] = None,
                pooled: Optional[Tensor] = None) -> CamResult:
        """
        Build the result from a raw ``cam`` (B, N) and ``logits`` (B, K).

        Applies ReLU and the mask to ``cam``, normalises it, fills PREDICTED
        targets with the arg-max class.
        """
        cam = torch.relu(cam)
        if mask is not None:
            cam = cam.masked_fill(~mask, 0.0)
        predicted = logits.argmax(dim=1)
        target = torch.where(requested >= 0, requested, predicted)
        if probabilities is None:
            probabilities = torch.softmax(logits, dim=1)
        return CamResult(cam=cam, saliency=normalize_cam(cam), logits=logits,
                         probabilities=probabilities, target=target, predicted=predicted,
                         weights=weights, layer_cam=layer_cam, pooled=pooled)
