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
Grad-CAM and its siblings on PointNet's per-point feature map, batched; the registry.

For a batch of B objects with local feature map A (B, C, N) and target class
c per object, Grad-CAM is::

    alpha_k = (1 / N_b) * sum_p  d y_c / d A_k,p        (N_b: real points of b)
    CAM_p   = ReLU( sum_k alpha_k * A_k,p )

Exact shortcut used here: the network only sees A through the global
max-pool g_k = max_p A_k,p, so d y_c / d A_k,p equals d y_c / d g_k at the
arg-max point and 0 elsewhere (whatever the tie rule, the gradients of a
channel sum to d y_c / d g_k). Hence alpha_k = (1 / N_b) d y_c / d g_k, and
d y_c / d g comes in closed form from the head's matrices and ReLU masks
(:mod:`pointcam_ros.explain.head`): logits and CAM are one pure forward
graph with no autograd, which on CUDA is replayed as a CUDA graph at fixed
batch buckets (:mod:`pointcam_ros.explain.buckets`). ``gradients='autograd'``
computes d y_c / d g with ``torch.autograd.grad`` through the head instead
(the reference, and the fallback for heads without a closed form). No hooks
are registered and no parameter ``.grad`` is touched.

Grad-CAM++, XGrad-CAM and HiResCAM override only :meth:`GradCAM.channel_weights`
(pytorch-grad-cam's ``get_cam_weights`` pattern); those that need the full
point gradient d y_c / d A rebuild it exactly by scattering d y_c / d g_k
onto the arg-max indices, which is what autograd through ``torch.max(dim)``
produces. Occlusion and point-shift (:mod:`pointcam_ros.explain.perturbation`)
are siblings under the same :class:`~pointcam_ros.explain.base.Explainer`
base. :data:`EXPLAINERS` and :func:`make_explainer` are the one registry and
the one factory.

Every model family (:mod:`pointcam_ros.model.registry`) runs this way: the
map A is the output of ``model.cam_layer``, the input of the global pool;
DGCNN pools by max and mean (d y / d A_k,p is d y / d max_k at the arg-max
plus d y / d mean_k / N_b at every real point), and its and PointNet++'s
heads have the same closed form (:func:`~pointcam_ros.explain.head.block_head_gradient`).
PointNet++'s A lives on the last level's M centroids: the raw map
``sum_k w_k A_k`` is computed there (``CamResult.layer_cam``, after ReLU)
and carried to every input point with PointNet++'s feature-propagation
weights (3 nearest real centroids, inverse squared distance,
:func:`~pointcam_ros.model.protocol.interpolation_weights`), then ReLU: the
CAM of the map the network's own feature propagation would give each point.
Any other model of the protocol of :mod:`pointcam_ros.model.protocol`
(e.g. :class:`~pointcam_ros.model.protocol.ExplainableModel`) runs by
autograd through its ``cam_layer`` (a forward hook for the duration of the
call), with ``cam_points`` giving the layer's points when they are not the
input points. Either way all objects of a call go in one batched pass.

Normalised saliency: ``CAM / max over the object's real points``; an object
whose CAM is all zero (no positive evidence for the class) gets all zeros.
Padding points (mask False) always get 0.
"""

import threading
from typing import Optional, Sequence, Union

from pointcam_ros.explain.base import (  # noqa: F401 - re-exported
    CamResult, Explainer, normalize_cam, resolve_target, Target)
from pointcam_ros.explain.buckets import BucketRunner
from pointcam_ros.explain.head import block_head_gradient, closed_form_problem, head_gradient
from pointcam_ros.explain.head import head_gradient_autograd
from pointcam_ros.explain.perturbation import OcclusionSaliency, PointShiftSaliency
from pointcam_ros.model.pointnet import masked_max, masked_max_with_index, PointNetClassifier
from pointcam_ros.model.protocol import interpolate, interpolation_weights, point_counts
import torch
from torch import nn, Tensor

#: How :class:`GradCAM` gets d y_c / d g: closed form where the head allows, else autograd.
GRADIENTS = ('auto', 'closed_form', 'autograd')


class GradCAM(Explainer):
    """
    Grad-CAM (Selvaraju et al. 2017): alpha_k = mean over points of dy/dA_k.

    The base of the CAM family: one forward pass, d y_c / d g of the head,
    a weighted sum of the feature maps. Subclasses override
    :meth:`channel_weights` only, and set ``needs_point_gradients`` when
    their weights need d y / d A (B, C, N) rather than d y / d g (B, C).

    ``gradients``: ``'auto'`` (closed form where the head allows it, else
    autograd), ``'closed_form'`` (ValueError if the head has none) or
    ``'autograd'`` (the reference; not under ``torch.inference_mode``).
    ``buckets`` and ``cuda_graphs`` configure the closed-form path's
    :class:`~pointcam_ros.explain.buckets.BucketRunner` (by default CUDA
    graphs at 1, 8, 32, 64, 128 objects on a GPU, plain eager on the CPU).
    """

    name = 'gradcam'
    needs_point_gradients = False
    # PointNet's T-Net and feature map are per point and end in max-pools, which
    # repeats do not change; alpha_k = (d y / d g_k) / N scales every point's CAM
    # alike and the normalisation removes it. Weights from point gradients
    # (the subclasses) count each repeat, so they set this False.
    duplicate_invariant = True

    def __init__(self, model: nn.Module, class_names: Optional[Sequence[str]] = None,
                 *, gradients: str = 'auto',
                 buckets: Union[str, None, Sequence[int]] = 'auto', cuda_graphs: bool = True):
        super().__init__(model, class_names)
        if gradients not in GRADIENTS:
            raise ValueError(f'gradients must be one of {GRADIENTS}, got {gradients!r}')
        if isinstance(model, PointNetClassifier):
            self.path = 'pointnet'
        elif all(hasattr(model, name) for name in ('cam_features', 'pool', 'classify',
                                                   'POOLING')):
            self.path = 'pooled'  # a model family: A, pools and head known
        else:
            self.path = 'hooks'  # any model of the protocol: autograd through cam_layer
            if not isinstance(getattr(model, 'cam_layer', None), nn.Module):
                raise ValueError(f'{type(model).__name__} names no CAM layer: give it a '
                                 'cam_layer module (see pointcam_ros.model.protocol, '
                                 'ExplainableModel)')
        problem = closed_form_problem(model)
        if gradients == 'closed_form' and problem is not None:
            raise ValueError(f"no closed-form head gradient: {problem}; use gradients='autograd'")
        if gradients == 'auto':
            gradients = 'autograd' if problem is not None else 'closed_form'
        self.gradients = gradients
        self.runner = BucketRunner(self.forward, model, buckets, cuda_graphs) \
            if gradients == 'closed_form' else None

    def channel_weights(self, activations: Tensor, pooled_grad: Tensor,
                        point_grad: Optional[Tensor], counts: Tensor) -> Tensor:
        """
        Return weights of shape (B, C) or (B, C, N) for ``sum_k w_k * A_k``.

        ``activations`` A (B, C, N) (padding zeroed when
        ``needs_point_gradients``), ``pooled_grad`` d y_c / d g (B, C) (the
        sum over points of d y_c / d A: for DGCNN's max and mean pools the
        sum of both pools' gradients), ``point_grad`` d y_c / d A (B, C, N)
        when ``needs_point_gradients``, ``counts`` (B, 1) real points per
        object (N is the CAM layer's points, M for PointNet++). Grad-CAM: the
        mean point gradient, which is the pooled gradient / N_b.
        """
        return pooled_grad / counts

    def forward(self, points: Tensor, mask: Optional[Tensor], requested: Tensor
                ) -> tuple[Tensor, ...]:
        """
        Compute the result's fields as a tuple, in :class:`CamResult` order.

        ``points`` (B, C_in, N), ``mask`` (B, N) bool or None, ``requested``
        (B,) int64 (-1: predicted class). Pure tensor work, no host sync on
        the closed-form path: this is what the CUDA graphs capture.
        """
        if self.path == 'pooled':
            return self._forward_pooled(points, mask, requested)
        if self.path == 'hooks':
            return self._forward_hooked(points, mask, requested)
        model = self.model
        activations, _ = model.local_features(points, mask)
        if self.needs_point_gradients:
            pooled, argmax = masked_max_with_index(activations, mask)
        else:
            pooled, argmax = masked_max(activations, mask), None
        if self.gradients == 'closed_form':
            logits, pooled_grad = head_gradient(model, pooled, requested)
        else:
            logits, pooled_grad = head_gradient_autograd(model, pooled, requested)
        if mask is None:
            counts = torch.full((points.shape[0], 1), points.shape[2], dtype=activations.dtype,
                                device=activations.device)
        else:
            counts = mask.sum(dim=1, keepdim=True).to(activations.dtype)
        point_grad = None
        if self.needs_point_gradients:
            if mask is not None:
                activations = activations.masked_fill(~mask[:, None, :], 0.0)
            point_grad = torch.zeros_like(activations).scatter_(
                2, argmax[:, :, None], pooled_grad[:, :, None])
        weights = self.channel_weights(activations, pooled_grad, point_grad, counts)
        if weights.dim() == 2:
            cam = torch.bmm(weights[:, None, :], activations)[:, 0]
        else:
            cam = (weights * activations).sum(dim=1)
        result = self.package(cam, logits, requested, mask, weights)
        return (result.cam, result.saliency, result.logits, result.probabilities,
                result.target, result.predicted, result.weights, None, pooled.detach())

    def _forward_pooled(self, points: Tensor, mask: Optional[Tensor], requested: Tensor
                        ) -> tuple[Tensor, ...]:
        """
        :meth:`forward` for a model family: A, its pools and the head gradient.

        d y / d A is rebuilt exactly from d y / d pooled: a max-pool's part
        at the arg-max point, a mean-pool's part spread over the real points.
        """
        model = self.model
        cam_map = model.cam_features(points, mask)
        activations, layer_mask = cam_map.features, cam_map.mask
        pooled, argmax = model.pool(activations, layer_mask)
        if self.gradients == 'closed_form':
            logits, pooled_grad = block_head_gradient(model, pooled, requested)
        else:
            logits, pooled_grad = head_gradient_autograd(model, pooled, requested)
        counts = point_counts(layer_mask, activations)
        channels = activations.shape[1]
        if self.needs_point_gradients and layer_mask is not None:
            activations = activations.masked_fill(~layer_mask[:, None, :], 0.0)
        total = torch.zeros_like(pooled_grad[:, :channels])
        point_grad = torch.zeros_like(activations) if self.needs_point_gradients else None
        for i, kind in enumerate(model.POOLING):
            part = pooled_grad[:, i * channels:(i + 1) * channels]
            total = total + part  # the sum over points of this pool's d y / d A
            if point_grad is None:
                continue
            if kind == 'max':
                point_grad = point_grad.scatter_add(2, argmax[:, :, None], part[:, :, None])
            elif kind == 'mean':
                spread = (part / counts)[:, :, None].expand_as(point_grad)
                if layer_mask is not None:
                    spread = spread.masked_fill(~layer_mask[:, None, :], 0.0)
                point_grad = point_grad + spread
            else:
                raise ValueError(f'unknown pooling {kind!r} of {type(model).__name__}')
        return self._finish(points, mask, requested, logits, activations, total, point_grad,
                            counts, layer_mask, cam_map.xyz) + (pooled.detach(),)

    def _forward_hooked(self, points: Tensor, mask: Optional[Tensor], requested: Tensor
                        ) -> tuple[Tensor, ...]:
        """
        :meth:`forward` for any model of the protocol: autograd through ``cam_layer``.

        Forward hooks on ``cam_layer`` (and ``cam_points``) live for this call only
        and keep what the calling thread's pass computes: a model shared by
        explainers in other threads runs its hooks for their passes too.
        ValueError when the CAM layer ran on another thread (a model that
        runs its layers in a thread pool).
        """
        model = self.model
        captured: dict = {}
        caller = threading.get_ident()

        def keep(name: str):
            def hook(module: nn.Module, inputs: tuple, output: object) -> None:
                if threading.get_ident() == caller:
                    captured[name] = output
            return hook

        handles = []
        try:
            handles.append(model.cam_layer.register_forward_hook(keep('features')))
            tap = getattr(model, 'cam_points', None)
            if tap is not None:
                handles.append(tap.register_forward_hook(keep('points')))
            with torch.enable_grad():
                logits = model(points.detach().requires_grad_(True), mask)
                if 'features' not in captured:
                    raise ValueError(
                        f'the CAM layer ({type(model.cam_layer).__name__}) did not run, or '
                        'not on the thread that called the model: cam_layer must name a '
                        'module that forward calls, and a model that runs its layers on '
                        'other threads (nn.DataParallel, a thread pool) cannot be explained; '
                        'wrap the module it runs')
                activations = captured['features']
                target = torch.where(requested >= 0, requested, logits.detach().argmax(dim=1))
                (point_grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(),
                                                    activations)
        finally:
            for handle in handles:
                handle.remove()
        logits, activations = logits.detach(), activations.detach()
        xyz, layer_mask = None, mask
        if 'points' in captured:
            found = captured['points']
            xyz, layer_mask = found if isinstance(found, tuple) else (found, None)
            xyz = xyz.detach()
        elif activations.shape[2] != points.shape[2]:
            raise ValueError(f'the CAM layer has {activations.shape[2]} points, the input '
                             f'{points.shape[2]}: the model must name cam_points (where the '
                             "layer's points are), see pointcam_ros.model.protocol")
        counts = point_counts(layer_mask, activations)
        if layer_mask is not None:
            point_grad = point_grad.masked_fill(~layer_mask[:, None, :], 0.0)
            if self.needs_point_gradients:
                activations = activations.masked_fill(~layer_mask[:, None, :], 0.0)
        return self._finish(points, mask, requested, logits, activations, point_grad.sum(dim=2),
                            point_grad if self.needs_point_gradients else None, counts,
                            layer_mask, xyz) + (None,)  # the pool of a protocol model is unknown

    def _finish(self, points: Tensor, mask: Optional[Tensor], requested: Tensor,
                logits: Tensor, activations: Tensor, total_grad: Tensor,
                point_grad: Optional[Tensor], counts: Tensor, layer_mask: Optional[Tensor],
                layer_xyz: Optional[Tensor]) -> tuple[Tensor, ...]:
        """
        Weights, map on the layer's points, carried to the input points; the result tuple.

        ``activations`` A (B, C, M), ``total_grad`` the sum over points of
        d y / d A (B, C), ``point_grad`` d y / d A (B, C, M) or None,
        ``counts`` (B, 1) real layer points, ``layer_xyz`` (B, 3, M) or None
        (M == N: the input points).
        """
        weights = self.channel_weights(activations, total_grad, point_grad, counts)
        if weights.dim() == 2:
            raw = torch.bmm(weights[:, None, :], activations)[:, 0]
        else:
            raw = (weights * activations).sum(dim=1)
        layer_cam = None
        if layer_xyz is not None:
            layer_cam = torch.relu(raw)
            if layer_mask is not None:
                layer_cam = layer_cam.masked_fill(~layer_mask, 0.0)
            index, blend = interpolation_weights(points[:, :3], layer_xyz, layer_mask)
            raw = interpolate(raw, index, blend)
        result = self.package(raw, logits, requested, mask, weights, layer_cam=layer_cam)
        return (result.cam, result.saliency, result.logits, result.probabilities,
                result.target, result.predicted, result.weights, result.layer_cam)

    def warm_up(self, num_points: int, masked: bool = False) -> int:
        """
        Run every bucket once at ``num_points`` points, capturing its CUDA graph now.

        Call it when a node starts, so that no scan pays for a capture. Uses
        the model's device and dtype; ``masked`` prepares the graphs for
        calls with a mask. Returns the number of buckets run (0 on the CPU
        by default, where nothing is padded).
        """
        if self.runner is None:
            return 0
        param = next(self.model.parameters())
        buckets = self.runner.buckets_for(param.device)
        for bucket in buckets:
            points = torch.zeros((bucket, self.model.config.in_channels, num_points),
                                 dtype=param.dtype, device=param.device)
            mask = torch.ones((bucket, num_points), dtype=torch.bool,
                              device=param.device) if masked else None
            self(points, mask)
        return len(buckets)

    def explain(self, points: Tensor, mask: Optional[Tensor], requested: Tensor) -> CamResult:
        """Run :meth:`forward` through the bucket runner (closed form) or eagerly."""
        if self.runner is not None:
            return CamResult(*self.runner(points, mask, requested))
        with torch.no_grad():
            return CamResult(*self.forward(points, mask, requested))


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhay et al. 2018), closed form for exp(score) as in pytorch-grad-cam."""

    name = 'gradcam++'
    needs_point_gradients = True
    duplicate_invariant = False
    max_objects = 128  # autograd to every point at the full N samples

    def channel_weights(self, activations: Tensor, pooled_grad: Tensor,
                        point_grad: Optional[Tensor], counts: Tensor) -> Tensor:
        """w_k = sum_p a_kp ReLU(g_kp), a = g^2 / (2 g^2 + sum_p A_kp g^3)."""
        grad2 = point_grad.pow(2)
        grad3 = grad2 * point_grad
        sum_act = activations.sum(dim=2, keepdim=True)
        denom = 2 * grad2 + sum_act * grad3
        alpha = torch.where(point_grad != 0, grad2 / torch.where(denom != 0, denom,
                                                                 torch.ones_like(denom)),
                            torch.zeros_like(grad2))
        return (alpha * torch.relu(point_grad)).sum(dim=2)


class XGradCAM(GradCAM):
    """XGrad-CAM (Fu et al. 2020): w_k = sum_p (A_kp / sum_p A_kp) dy/dA_kp."""

    name = 'xgradcam'
    needs_point_gradients = True
    duplicate_invariant = False
    max_objects = 512  # autograd to every point at the full N samples

    def channel_weights(self, activations: Tensor, pooled_grad: Tensor,
                        point_grad: Optional[Tensor], counts: Tensor) -> Tensor:
        """Activation-weighted point gradients, normalised per channel."""
        total = activations.sum(dim=2, keepdim=True)
        total = torch.where(total != 0, total, torch.ones_like(total))
        return (activations / total * point_grad).sum(dim=2)


class HiResCAM(GradCAM):
    """HiResCAM (Draelos & Carin 2020): CAM_p = ReLU(sum_k dy/dA_kp * A_kp)."""

    name = 'hirescam'
    needs_point_gradients = True
    duplicate_invariant = False
    max_objects = 512  # autograd to every point at the full N samples

    def channel_weights(self, activations: Tensor, pooled_grad: Tensor,
                        point_grad: Optional[Tensor], counts: Tensor) -> Tensor:
        """Per-point weights: the point gradient itself, (B, C, N)."""
        return point_grad


#: Every explainer class by name: the one registry.
REGISTRY: dict[str, type[Explainer]] = {cls.name: cls for cls in (
    GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, OcclusionSaliency, PointShiftSaliency)}

#: Every explainer name :func:`make_explainer` accepts.
EXPLAINERS = tuple(REGISTRY)


def make_explainer(name: str, model: nn.Module,
                   class_names: Optional[Sequence[str]] = None, **options) -> Explainer:
    """
    Create any explainer of :data:`EXPLAINERS` by name; ValueError for other names.

    ``options`` go to the class (e.g. ``gradients=`` or ``buckets=`` for the
    CAM family, ``groups=`` for occlusion).
    """
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown explainer '{name}'; choose one of {list(EXPLAINERS)}") from None
    return cls(model, class_names, **options)
