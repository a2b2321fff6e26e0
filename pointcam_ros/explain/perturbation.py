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
Saliency by perturbing the input: occlusion and point-shift, siblings of the CAM family.

Both share :class:`~pointcam_ros.explain.base.Explainer`'s call, checks and
result; neither looks at a feature map.
"""

from typing import Optional, Sequence

from pointcam_ros.explain.base import CamResult, Explainer
from pointcam_ros.model.novelty import logits_and_pooled
import torch
from torch import nn, Tensor


class OcclusionSaliency(Explainer):
    """
    Gradient-free baseline: how much the target probability drops without each region.

    The object's points are split into ``groups`` regions (farthest-point
    seeds, each point to its nearest seed); each region is dropped in turn
    by the padding mask (so the model really never sees it) and the drop in
    the target-class probability becomes that region's saliency. Costs
    ``groups`` extra forward passes per object, ``chunk`` (object, region)
    pairs per pass.
    """

    name = 'occlusion'
    max_objects = 32  # 17 forward passes per object at the full N samples

    def __init__(self, model: nn.Module, class_names: Optional[Sequence[str]] = None,
                 groups: int = 16, chunk: int = 256):
        super().__init__(model, class_names)
        if groups < 1 or chunk < 1:
            raise ValueError(f'groups and chunk must be >= 1, got {groups} and {chunk}')
        self.groups = groups
        self.chunk = chunk

    @staticmethod
    def region_ids(xyz: Tensor, mask: Tensor, groups: int) -> Tensor:
        """Assign ``(B, N)`` int64 region ids in ``[0, groups)`` to ``xyz`` (B, N, 3)."""
        batch, num, _ = xyz.shape
        groups = min(groups, num)
        far = torch.full((batch, num), float('inf'), device=xyz.device, dtype=xyz.dtype)
        far = far.masked_fill(~mask, -1.0)
        seeds = torch.empty((batch, groups, 3), device=xyz.device, dtype=xyz.dtype)
        current = mask.float().argmax(dim=1)
        rows = torch.arange(batch, device=xyz.device)
        for g in range(groups):
            seeds[:, g] = xyz[rows, current]
            dist = (xyz - seeds[:, g:g + 1]).pow(2).sum(-1)
            far = torch.minimum(far, dist.masked_fill(~mask, -1.0))
            current = far.argmax(dim=1)
        return torch.cdist(xyz, seeds).argmin(dim=2)

    def explain(self, points: Tensor, mask: Optional[Tensor], requested: Tensor) -> CamResult:
        """Drop each region in turn; see the class docstring."""
        model = self.model
        batch, _, num = points.shape
        if mask is None:
            mask = torch.ones((batch, num), dtype=torch.bool, device=points.device)
        with torch.no_grad():
            logits, pooled = logits_and_pooled(model, points, mask)
            probs = torch.softmax(logits, dim=1)
            target = torch.where(requested >= 0, requested, logits.argmax(dim=1))
            base = probs.gather(1, target[:, None])[:, 0]
            regions = self.region_ids(points[:, :3].transpose(1, 2), mask, self.groups)
            groups = int(regions.max()) + 1
            drops = torch.zeros((batch, groups), device=points.device, dtype=probs.dtype)
            pairs = [(b, g) for b in range(batch) for g in range(groups)]
            for start in range(0, len(pairs), self.chunk):
                part = torch.tensor(pairs[start:start + self.chunk], device=points.device)
                b_idx, g_idx = part[:, 0], part[:, 1]
                sub_mask = mask[b_idx] & (regions[b_idx] != g_idx[:, None])
                empty = ~sub_mask.any(dim=1)
                sub_mask[empty] = mask[b_idx][empty]  # never drop a whole object
                p = torch.softmax(model(points[b_idx], sub_mask), dim=1)
                drops[b_idx, g_idx] = base[b_idx] - p.gather(1, target[b_idx, None])[:, 0]
            cam = drops.gather(1, regions)
            return self.package(cam, logits, requested, mask, probabilities=probs,
                                pooled=pooled)


class PointShiftSaliency(Explainer):
    """
    Point-shift saliency of Zheng et al. (ICCV 2019), the point-dropping test's reference.

    Shifting point i towards the object's centre c (median of its real
    points, in the model's input frame) by dr changes the loss L of the
    target class by about ``dL/dr_i * (-dr)``, with
    ``dL/dr_i = (x_i - c) . grad_x_i L / r_i``; the score is
    ``s_i = -r_i ** (1 + alpha) * dL/dr_i`` (``alpha = 1`` as in the paper):
    points whose move to the centre would raise the loss most are the most
    salient. Needs the gradient with respect to the input points (one
    backward through the whole network, T-Nets included, by autograd), not
    a CAM layer. ``cam`` is ``ReLU(s)``.
    """

    name = 'pointshift'
    max_objects = 128  # a backward through the whole network at the full N samples

    def __init__(self, model: nn.Module, class_names: Optional[Sequence[str]] = None,
                 alpha: float = 1.0):
        super().__init__(model, class_names)
        self.alpha = alpha

    def explain(self, points: Tensor, mask: Optional[Tensor], requested: Tensor) -> CamResult:
        """One backward to the input points; see the class docstring."""
        model = self.model
        if mask is None:
            mask = torch.ones(points.shape[0], points.shape[2], dtype=torch.bool,
                              device=points.device)
        with torch.enable_grad():
            inputs = points.detach().requires_grad_(True)
            logits, pooled = logits_and_pooled(model, inputs, mask)
            target = torch.where(requested >= 0, requested, logits.detach().argmax(dim=1))
            loss = torch.nn.functional.cross_entropy(logits, target, reduction='sum')
            (grad,) = torch.autograd.grad(loss, inputs)
        with torch.no_grad():
            xyz = points[:, :3]
            center = xyz.masked_fill(~mask[:, None, :], float('nan')).nanmedian(dim=2).values
            offset = xyz - center[:, :, None]
            radius = offset.norm(dim=1)
            score = -radius.pow(self.alpha) * (offset * grad[:, :3]).sum(dim=1)
            return self.package(score, logits.detach(), requested, mask,
                                pooled=None if pooled is None else pooled.detach())
