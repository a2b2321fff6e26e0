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
Grad-CAM and its siblings on PointNet's per-point feature map, batched.

For a batch of B objects with local feature map A (B, C, N) and target class
c per object, Grad-CAM is::

    alpha_k = (1 / N_b) * sum_p  d y_c / d A_k,p        (N_b: real points of b)
    CAM_p   = ReLU( sum_k alpha_k * A_k,p )

Exact shortcut used here: the network only sees A through the global
max-pool g_k = max_p A_k,p, so d y_c / d A_k,p equals d y_c / d g_k at the
arg-max point and 0 elsewhere (whatever the tie rule, the gradients of a
channel sum to d y_c / d g_k). Hence alpha_k = (1 / N_b) d y_c / d g_k: one
forward pass, then ``torch.autograd.grad`` through the head only, for the
whole batch at once. The head acts on each object independently in
``eval()`` mode, so one backward of the summed target logits gives every
object's own gradient. No hooks are registered and no parameter ``.grad``
is touched. Methods that need the full point gradient (Grad-CAM++, XGrad-CAM,
HiResCAM) rebuild it exactly by scattering d y_c / d g_k onto the arg-max
indices, which is what autograd through ``torch.max(dim)`` produces.

Normalised saliency: ``CAM / max over the object's real points``; an object
whose CAM is all zero (no positive evidence for the class) gets all zeros.
Padding points (mask False) always get 0.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Union

from pointcam_ros.model.pointnet import masked_max_with_index, PointNetClassifier
import torch
from torch import Tensor

Target = Union[None, int, str, Sequence[Union[int, str]], Tensor]


@dataclass
class CamResult:
    """
    Output of a CAM method for a batch of B objects of N points.

    ``cam`` (B, N) float32 raw map; ``saliency`` (B, N) float32 in [0, 1];
    ``logits`` and ``probabilities`` (B, K); ``target`` (B,) int64 class that
    was explained; ``predicted`` (B,) int64 arg-max class. All on the
    model's device. ``weights`` are the channel weights the method used,
    (B, C) (for Grad-CAM: alpha) or (B, C, N); None for occlusion.
    """

    cam: Tensor
    saliency: Tensor
    logits: Tensor
    probabilities: Tensor
    target: Tensor
    predicted: Tensor
    weights: Optional[Tensor] = None


def normalize_cam(cam: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Scale each row of a non-negative ``(B, N)`` map to [0, 1] by its maximum."""
    if mask is not None:
        cam = cam.masked_fill(~mask, 0.0)
    peak = cam.amax(dim=1, keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny),
                       torch.zeros_like(cam))


def resolve_target(target: Target, predicted: Tensor,
                   class_names: Optional[Sequence[str]] = None) -> Tensor:
    """
    Turn a target specification into a ``(B,)`` int64 tensor of class indices.

    ``None`` means the predicted class; an int or name applies to every
    object; a sequence or tensor gives one per object.
    """
    batch, device = predicted.shape[0], predicted.device
    if target is None:
        return predicted
    if isinstance(target, Tensor):
        out = target.to(device=device, dtype=torch.long).reshape(-1)
        return out.expand(batch).clone() if out.numel() == 1 else out
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
    return torch.tensor(indices, dtype=torch.long, device=device)


class CamMethod:
    """
    Base class: one forward, one backward through the head, a weighted sum.

    Subclasses override :meth:`channel_weights` only. Set
    ``needs_point_gradients`` when the weights need d y / d A (B, C, N)
    rather than the pooled gradient d y / d g (B, C).
    """

    name = 'base'
    needs_point_gradients = False

    def __init__(self, model: PointNetClassifier,
                 class_names: Optional[Sequence[str]] = None):
        self.model = model
        self.class_names = list(class_names) if class_names is not None else None

    def channel_weights(self, activations: Tensor, pooled_grad: Tensor,
                        point_grad: Optional[Tensor], counts: Tensor) -> Tensor:
        """
        Return weights of shape (B, C) or (B, C, N) for ``sum_k w_k * A_k``.

        ``activations`` (B, C, N) with padding zeroed, ``pooled_grad``
        d y_c / d g (B, C), ``point_grad`` d y_c / d A (B, C, N) when
        ``needs_point_gradients``, ``counts`` (B, 1) real points per object.
        """
        raise NotImplementedError

    def __call__(self, points: Tensor, mask: Optional[Tensor] = None,
                 target: Target = None) -> CamResult:
        """
        Explain a batch: ``points`` (B, C_in, N) float32 on the model's device.

        ``mask`` (B, N) bool marks real points (None: all real); ``target``
        selects the class explained (default: the predicted class).
        """
        model = self.model
        if model.training:
            raise RuntimeError('CAM needs the model in eval() mode (BatchNorm would mix '
                               'objects of the batch): call model.eval() first')
        model.check_input(points, mask)
        with torch.no_grad():
            activations, _ = model.local_features(points, mask)
            pooled, argmax = masked_max_with_index(activations, mask)
        with torch.enable_grad():
            pooled_leaf = pooled.detach().requires_grad_(True)
            logits = model.classify(pooled_leaf)
            predicted = logits.detach().argmax(dim=1)
            target_idx = resolve_target(target, predicted, self.class_names)
            if target_idx.shape != predicted.shape or bool(
                    ((target_idx < 0) | (target_idx >= logits.shape[1])).any()):
                raise ValueError(f'target classes must be in [0, {logits.shape[1]}), '
                                 f'got {target_idx.tolist()}')
            chosen = logits.gather(1, target_idx[:, None]).sum()
            (pooled_grad,) = torch.autograd.grad(chosen, pooled_leaf)
        logits = logits.detach()
        if mask is not None:
            activations = activations.masked_fill(~mask[:, None, :], 0.0)
            counts = mask.sum(dim=1, keepdim=True).to(activations.dtype)
        else:
            counts = torch.full((points.shape[0], 1), points.shape[2],
                                dtype=activations.dtype, device=activations.device)
        point_grad = None
        if self.needs_point_gradients:
            point_grad = torch.zeros_like(activations).scatter_(
                2, argmax[:, :, None], pooled_grad[:, :, None])
        weights = self.channel_weights(activations, pooled_grad, point_grad, counts)
        if weights.dim() == 2:
            cam = torch.einsum('bc,bcn->bn', weights, activations)
        else:
            cam = (weights * activations).sum(dim=1)
        cam = torch.relu(cam)
        if mask is not None:
            cam = cam.masked_fill(~mask, 0.0)
        return CamResult(cam=cam, saliency=normalize_cam(cam, mask), logits=logits,
                         probabilities=torch.softmax(logits, dim=1), target=target_idx,
                         predicted=predicted, weights=weights)


class GradCAM(CamMethod):
    """Grad-CAM (Selvaraju et al. 2017): alpha_k = mean over points of dy/dA_k."""

    name = 'gradcam'

    def channel_weights(self, activations, pooled_grad, point_grad, counts):
        """Mean point gradient = pooled gradient / N_b (exact for a max-pool)."""
        return pooled_grad / counts


class GradCAMPlusPlus(CamMethod):
    """Grad-CAM++ (Chattopadhay et al. 2018), closed form for exp(score) as in pytorch-grad-cam."""

    name = 'gradcam++'
    needs_point_gradients = True

    def channel_weights(self, activations, pooled_grad, point_grad, counts):
        """w_k = sum_p a_kp ReLU(g_kp), a = g^2 / (2 g^2 + sum_p A_kp g^3)."""
        grad2 = point_grad.pow(2)
        grad3 = grad2 * point_grad
        sum_act = activations.sum(dim=2, keepdim=True)
        denom = 2 * grad2 + sum_act * grad3
        alpha = torch.where(point_grad != 0, grad2 / torch.where(denom != 0, denom,
                                                                 torch.ones_like(denom)),
                            torch.zeros_like(grad2))
        return (alpha * torch.relu(point_grad)).sum(dim=2)


class XGradCAM(CamMethod):
    """XGrad-CAM (Fu et al. 2020): w_k = sum_p (A_kp / sum_p A_kp) dy/dA_kp."""

    name = 'xgradcam'
    needs_point_gradients = True

    def channel_weights(self, activations, pooled_grad, point_grad, counts):
        """Activation-weighted point gradients, normalised per channel."""
        total = activations.sum(dim=2, keepdim=True)
        total = torch.where(total != 0, total, torch.ones_like(total))
        return (activations / total * point_grad).sum(dim=2)


class HiResCAM(CamMethod):
    """HiResCAM (Draelos & Carin 2020): CAM_p = ReLU(sum_k dy/dA_kp * A_kp)."""

    name = 'hirescam'
    needs_point_gradients = True

    def channel_weights(self, activations, pooled_grad, point_grad, counts):
        """Per-point weights: the point gradient itself, (B, C, N)."""
        return point_grad


METHODS: dict[str, type[CamMethod]] = {
    cls.name: cls for cls in (GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM)}


def make_method(name: str, model: PointNetClassifier,
                class_names: Optional[Sequence[str]] = None) -> CamMethod:
    """Create a CAM method by name (``gradcam``, ``gradcam++``, ``xgradcam``, ``hirescam``)."""
    try:
        return METHODS[name](model, class_names)
    except KeyError:
        raise ValueError(f"unknown CAM method '{name}'; choose one of {sorted(METHODS)}") from None


class OcclusionSaliency:
    """
    Gradient-free baseline: how much the target probability drops without each region.

    The object's points are split into ``groups`` regions (farthest-point
    seeds, each point to its nearest seed); each region is dropped in turn
    by the padding mask (so the model really never sees it) and the drop in
    the target-class probability becomes that region's saliency. Costs
    ``groups`` extra forward passes per object (batched); same call
    signature and result as :class:`CamMethod`.
    """

    name = 'occlusion'

    def __init__(self, model: PointNetClassifier, class_names: Optional[Sequence[str]] = None,
                 groups: int = 16, chunk: int = 256):
        self.model = model
        self.class_names = list(class_names) if class_names is not None else None
        self.groups = groups
        self.chunk = chunk

    @staticmethod
    def region_ids(xyz: Tensor, mask: Tensor, groups: int) -> Tensor:
        """Assign ``(B, N)`` region ids in ``[0, groups)`` by farthest-point seeds."""
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

    def __call__(self, points: Tensor, mask: Optional[Tensor] = None,
                 target: Target = None) -> CamResult:
        """Explain ``points`` (B, C_in, N); see :meth:`CamMethod.__call__`."""
        model = self.model
        model.check_input(points, mask)
        batch, _, num = points.shape
        if mask is None:
            mask = torch.ones((batch, num), dtype=torch.bool, device=points.device)
        with torch.no_grad():
            logits = model(points, mask)
            probs = torch.softmax(logits, dim=1)
            predicted = logits.argmax(dim=1)
            target_idx = resolve_target(target, predicted, self.class_names)
            base = probs.gather(1, target_idx[:, None])[:, 0]
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
                drops[b_idx, g_idx] = base[b_idx] - p.gather(1, target_idx[b_idx, None])[:, 0]
            cam = torch.relu(drops.gather(1, regions)).masked_fill(~mask, 0.0)
        return CamResult(cam=cam, saliency=normalize_cam(cam, mask), logits=logits,
                         probabilities=probs, target=target_idx, predicted=predicted)


class PointShiftSaliency:
    """
    Point-shift saliency of Zheng et al. (ICCV 2019), the point-dropping test's reference.

    Shifting point i towards the object's centre c (median of its real
    points, in the model's input frame) by dr changes the loss L of the
    target class by about ``dL/dr_i * (-dr)``, with
    ``dL/dr_i = (x_i - c) . grad_x_i L / r_i``; the score is
    ``s_i = -r_i ** (1 + alpha) * dL/dr_i`` (``alpha = 1`` as in the paper):
    points whose move to the centre would raise the loss most are the most
    salient. Needs the gradient with respect to the input points (one
    backward through the whole network, T-Nets included), not a CAM layer.
    ``cam`` is ``ReLU(s)``; same call signature and result as :class:`CamMethod`.
    """

    name = 'pointshift'

    def __init__(self, model: PointNetClassifier, class_names: Optional[Sequence[str]] = None,
                 alpha: float = 1.0):
        self.model = model
        self.class_names = list(class_names) if class_names is not None else None
        self.alpha = alpha

    def __call__(self, points: Tensor, mask: Optional[Tensor] = None,
                 target: Target = None) -> CamResult:
        """Explain ``points`` (B, C_in, N); see :meth:`CamMethod.__call__`."""
        model = self.model
        if model.training:
            raise RuntimeError('saliency needs the model in eval() mode: call model.eval()')
        model.check_input(points, mask)
        if mask is None:
            mask = torch.ones(points.shape[0], points.shape[2], dtype=torch.bool,
                              device=points.device)
        with torch.enable_grad():
            inputs = points.detach().requires_grad_(True)
            logits = model(inputs, mask)
            predicted = logits.argmax(dim=1)
            target_idx = resolve_target(target, predicted, self.class_names)
            loss = torch.nn.functional.cross_entropy(logits, target_idx, reduction='sum')
            (grad,) = torch.autograd.grad(loss, inputs)
        with torch.no_grad():
            xyz = points[:, :3]
            center = xyz.masked_fill(~mask[:, None, :], float('nan')).nanmedian(dim=2).values
            offset = xyz - center[:, :, None]
            radius = offset.norm(dim=1)
            score = -radius.pow(self.alpha) * (offset * grad[:, :3]).sum(dim=1)
            cam = torch.relu(score).masked_fill(~mask, 0.0)
            logits = logits.detach()
        return CamResult(cam=cam, saliency=normalize_cam(cam, mask), logits=logits,
                         probabilities=torch.softmax(logits, dim=1), target=target_idx,
                         predicted=predicted)


#: Every explainer name :func:`make_explainer` accepts.
EXPLAINERS = (*METHODS, OcclusionSaliency.name, PointShiftSaliency.name)


def make_explainer(name: str, model: PointNetClassifier,
                   class_names: Optional[Sequence[str]] = None):
    """Create any explainer of :data:`EXPLAINERS` by name; ValueError for other names."""
    if name not in EXPLAINERS:
        raise ValueError(f"unknown explainer '{name}'; choose one of {list(EXPLAINERS)}")
    if name == OcclusionSaliency.name:
        return OcclusionSaliency(model, class_names)
    if name == PointShiftSaliency.name:
        return PointShiftSaliency(model, class_names)
    return make_method(name, model, class_names)
