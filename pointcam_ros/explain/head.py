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
PointNet's classification head and its gradient, in closed form or by autograd.

Grad-CAM needs d y_c / d g (B, C_A), the gradient of the explained logit
with respect to the pooled features g. In ``eval()`` mode the head is a
fixed MLP: for each block ``h = ReLU(s * (W h_prev + b) + t)`` (Linear,
Dropout inert, BatchNorm as the per-feature affine map with
``s = gamma / sqrt(running_var + eps)``), then ``y = W_out h + b_out``.
Its gradient is one backward-mode product through known matrices and ReLU
masks::

    v = W_out[c]                                   (B, F_L)
    for each block, last first:  v = (v * s * [pre-ReLU > 0]) @ W

which is exactly what autograd computes (ReLU's derivative is taken as 0 at
0, as torch does). :func:`head_gradient` does this with plain tensor ops, so
logits and gradient come from one pure forward graph: no autograd, fine
under ``torch.no_grad`` and ``torch.inference_mode``, and capturable in a
CUDA graph. :func:`head_gradient_autograd` is the reference.

DGCNN's and PointNet++'s heads (:class:`~pointcam_ros.model.protocol.HeadBlock`:
Linear, BatchNorm1d, ReLU or LeakyReLU, Dropout) have the same closed form,
with LeakyReLU's gate ``[pre > 0] + slope * [pre <= 0]`` (torch's derivative,
slope at 0): :func:`block_head_gradient`.
"""

from typing import Optional

from pointcam_ros.model.dgcnn import DGCNNClassifier
from pointcam_ros.model.pointnet import LinearBlock, PointNetClassifier
from pointcam_ros.model.pointnet2 import PointNet2Classifier
from pointcam_ros.model.protocol import HeadBlock
import torch
from torch import nn, Tensor


def closed_form_problem(model: PointNetClassifier) -> Optional[str]:
    """
    Say why the head has no closed-form gradient here, or return None when it has.

    Supported: ``model.head`` made of :class:`LinearBlock` (Linear, Dropout or
    Identity, BatchNorm1d with running statistics, ReLU) and a Linear
    ``classifier``, with :meth:`PointNetClassifier.classify` not overridden;
    for DGCNN and PointNet++ (:func:`block_head_problem`) plain
    :class:`~pointcam_ros.model.protocol.HeadBlock` s. Any other model has
    no closed form here.
    """
    if not isinstance(model, PointNetClassifier):
        return block_head_problem(model)
    if type(model).classify is not PointNetClassifier.classify:
        return f'{type(model).__name__} overrides classify()'
    if not isinstance(model.classifier, nn.Linear):
        return 'the classifier is not an nn.Linear'
    for i, block in enumerate(model.head):
        if not isinstance(block, LinearBlock) or type(block).forward is not LinearBlock.forward:
            return f'head[{i}] is not a plain LinearBlock'
        if not isinstance(block.linear, nn.Linear) or not isinstance(block.act, nn.ReLU):
            return f'head[{i}] is not Linear ... ReLU'
        if not isinstance(block.drop, (nn.Dropout, nn.Identity)):
            return f'head[{i}].drop is neither Dropout nor Identity'
        bn = block.bn
        if not isinstance(bn, nn.BatchNorm1d) or bn.running_var is None:
            return f'head[{i}].bn is not a BatchNorm1d with running statistics'
    return None


def head_gradient(model: PointNetClassifier, pooled: Tensor, requested: Tensor
                  ) -> tuple[Tensor, Tensor]:
    """
    Logits and d y_target / d pooled of the head, without autograd.

    ``pooled`` (B, C_A) float; ``requested`` (B,) int64 class per object,
    -1 for the predicted (arg-max) class. Returns logits (B, K) and the
    gradient (B, C_A), both in ``pooled``'s dtype. The model must be in
    ``eval()`` mode and :func:`closed_form_problem` must return None.
    """
    hidden = pooled
    gates = []  # per block: (W (F_out, F_in), s * ReLU mask (B, F_out))
    for block in model.head:
        bn = block.bn
        pre = bn(block.linear(hidden))  # Dropout is the identity in eval()
        hidden = torch.relu(pre)
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        gates.append((block.linear.weight, (pre > 0).to(pre.dtype) * scale))
    logits = model.classifier(hidden)
    target = torch.where(requested >= 0, requested, logits.argmax(dim=1))
    grad = model.classifier.weight.index_select(0, target)
    for weight, gate in reversed(gates):
        grad = (grad * gate) @ weight
    return logits, grad


def head_gradient_autograd(model: PointNetClassifier, pooled: Tensor, requested: Tensor
                           ) -> tuple[Tensor, Tensor]:
    """
    Compute :func:`head_gradient`'s outputs by ``torch.autograd.grad`` (the reference).

    Works for any head (one backward of the summed target logits; the head
    acts on each object independently in ``eval()``); fails inside
    ``torch.inference_mode``.
    """
    with torch.enable_grad():
        leaf = pooled.detach().requires_grad_(True)
        logits = model.classify(leaf)
        target = torch.where(requested >= 0, requested, logits.detach().argmax(dim=1))
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), leaf)
    return logits.detach(), grad


def block_head_problem(model: nn.Module) -> Optional[str]:
    """
    Say why a DGCNN or PointNet++ head has no closed form, or return None when it has.

    Supported: ``model.head`` made of plain :class:`HeadBlock` (Linear,
    BatchNorm1d with running statistics, ReLU or LeakyReLU, Dropout or
    Identity), a Linear ``classifier``, ``classify`` not overridden.
    """
    if not isinstance(model, (DGCNNClassifier, PointNet2Classifier)):
        return f'{type(model).__name__} is not a model family with a known head'
    if type(model).classify not in (DGCNNClassifier.classify, PointNet2Classifier.classify):
        return f'{type(model).__name__} overrides classify()'
    if not isinstance(model.classifier, nn.Linear):
        return 'the classifier is not an nn.Linear'
    for i, block in enumerate(model.head):
        if not isinstance(block, HeadBlock) or type(block).forward is not HeadBlock.forward:
            return f'head[{i}] is not a plain HeadBlock'
        activation = type(block.act)
        if not isinstance(block.linear, nn.Linear) or activation not in (nn.ReLU, nn.LeakyReLU):
            return f'head[{i}] is not Linear ... ReLU or LeakyReLU'
        if not isinstance(block.drop, (nn.Dropout, nn.Identity)):
            return f'head[{i}].drop is neither Dropout nor Identity'
        bn = block.bn
        if not isinstance(bn, nn.BatchNorm1d) or bn.running_var is None:
            return f'head[{i}].bn is not a BatchNorm1d with running statistics'
    return None


def block_head_gradient(model: nn.Module, pooled: Tensor, requested: Tensor
                        ) -> tuple[Tensor, Tensor]:
    """
    Logits (B, K) and d y_target / d pooled (B, P) of a :class:`HeadBlock` head, no autograd.

    As :func:`head_gradient`; ``requested`` (B,) int64, -1 for the predicted
    class. :func:`block_head_problem` must return None; ``eval()`` mode.
    """
    hidden = pooled
    gates = []  # per block: (W (F_out, F_in), s * activation slope (B, F_out))
    for block in model.head:
        bn = block.bn
        pre = bn(block.linear(hidden))
        hidden = block.act(pre)  # Dropout is the identity in eval()
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        slope = block.act.negative_slope if isinstance(block.act, nn.LeakyReLU) else 0.0
        positive = (pre > 0).to(pre.dtype)
        gates.append((block.linear.weight, (positive + slope * (1 - positive)) * scale))
    logits = model.classifier(hidden)
    target = torch.where(requested >= 0, requested, logits.argmax(dim=1))
    grad = model.classifier.weight.index_select(0, target)
    for weight, gate in reversed(gates):
        grad = (grad * gate) @ weight
    return logits, grad
