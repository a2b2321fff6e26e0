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
The model protocol every explainer relies on, and helpers the model families share.

A point-cloud classifier is explainable here when it is an ``nn.Module`` that

* maps ``points`` (B, C_in, N) float and an optional ``mask`` (B, N) bool of
  real points to logits (B, K) (``model(points, mask)``);
* has ``config.num_classes`` (K) and ``config.in_channels`` (C_in);
* raises ValueError from ``check_input(points, mask)`` for input it cannot take;
* names its CAM layer: ``model.cam_layer`` is the module whose output is the
  feature map A (B, C, M) just before the global pool;
* when M differs from N (the layer's points are not the input points, as for
  PointNet++ centroids), also has ``model.cam_points``: a module called in the
  same forward pass whose output is ``(xyz, mask)``, the positions (B, 3, M)
  of A's points in the input frame and which of them are real ((B, M) bool,
  or None when all are). :class:`PointsTap` is such a module.

:class:`ExplainableModel` wraps any module that returns logits from
``(points, mask)`` into this protocol (``docs/models.md``). A map on M points
is carried to the N input points by :func:`interpolate`: the 3 nearest real
layer points, weights ``1 / (d^2 + 1e-8)`` normalised to sum 1, exactly the
feature propagation of PointNet++ (Qi et al. 2017, eq. 2 with p = 2, k = 3;
``PointNetFeaturePropagation`` in yanx27/Pointnet_Pointnet2_pytorch).
"""

from dataclasses import asdict, dataclass
from typing import ClassVar, NamedTuple, Optional

import torch
from torch import nn, Tensor

#: Nearest layer points whose values :func:`interpolate` blends (PointNet++'s k).
INTERPOLATION_NEIGHBOURS = 3
#: Added to the squared distances before inverting them (PointNet++'s epsilon).
INTERPOLATION_EPS = 1e-8


class CamMap(NamedTuple):
    """The CAM layer's output of one pass and where its points are."""

    features: Tensor  # (B, C, M) float: the map A
    mask: Optional[Tensor]  # (B, M) bool real layer points, None: all real
    xyz: Optional[Tensor]  # (B, 3, M) float positions; None: point p is input point p


class PointsTap(nn.Module):
    """
    Identity on ``(xyz, mask)``: marks where the points of a CAM layer are.

    Call it in ``forward`` on the positions (B, 3, M) of the CAM layer's
    points (and their (B, M) bool mask, or None) and use what it returns; an
    explainer reads its output with a forward hook.
    """

    def forward(self, xyz: Tensor, mask: Optional[Tensor] = None
                ) -> tuple[Tensor, Optional[Tensor]]:
        """Return ``(xyz, mask)`` unchanged."""
        return xyz, mask


def check_points(points: Tensor, mask: Optional[Tensor], in_channels: int) -> None:
    """Raise ValueError unless points is (B, in_channels, N>0) and mask (B, N) bool."""
    if points.dim() != 3 or points.shape[1] != in_channels:
        raise ValueError(f'points must be (B, {in_channels}, N), got {tuple(points.shape)}')
    if points.shape[2] == 0:
        raise ValueError('points has no points (N == 0)')
    if mask is not None:
        if mask.shape != (points.shape[0], points.shape[2]) or mask.dtype != torch.bool:
            raise ValueError(f'mask must be bool (B, N) = {(points.shape[0], points.shape[2])}'
                             f', got {mask.dtype} {tuple(mask.shape)}')
        if not bool(mask.any(dim=1).all()):
            raise ValueError('every object needs at least one real point in mask')


def point_counts(mask: Optional[Tensor], like: Tensor) -> Tensor:
    """Real points per object, ``(B, 1)`` in ``like``'s dtype; ``like`` is (B, C, M)."""
    if mask is None:
        return torch.full((like.shape[0], 1), like.shape[2], dtype=like.dtype,
                          device=like.device)
    return mask.sum(dim=1, keepdim=True).to(like.dtype)


def masked_mean(features: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Mean over the real points of ``(B, C, M)`` features: ``(B, C)``."""
    if mask is None:
        return features.mean(dim=2)
    kept = features.masked_fill(~mask[:, None, :], 0.0)
    return kept.sum(dim=2) / point_counts(mask, features)


class HeadBlock(nn.Module):
    """
    One block of a classification head: Linear, BatchNorm1d, (Leaky)ReLU, Dropout.

    The order of WangYueFt/dgcnn and yanx27's PointNet++ (in ``eval()``
    Dropout is the identity, so the place of Dropout does not matter).
    ``negative_slope`` 0 gives ReLU.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 negative_slope: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.bn = nn.BatchNorm1d(out_features)
        self.act = nn.LeakyReLU(negative_slope) if negative_slope > 0 else nn.ReLU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, F_in)`` to ``(B, F_out)``."""
        return self.drop(self.act(self.bn(self.linear(x))))


class PooledHeadClassifier(nn.Module):
    """
    Base of the families whose logits are ``classifier(head(pool(A)))``: DGCNN, PointNet++.

    A subclass sets ``config`` (``in_channels``), ``head`` (:class:`HeadBlock`
    s), ``classifier`` (nn.Linear) and defines ``cam_features(points, mask)
    -> CamMap`` and ``pool(features, mask) -> (pooled, arg-max)``.
    """

    def classify(self, pooled: Tensor) -> Tensor:
        """Map pooled features ``(B, P)`` to logits ``(B, num_classes)``."""
        return self.classifier(self.head(pooled))

    def forward(self, points: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Classify ``(B, C, N)`` points; returns logits ``(B, num_classes)``."""
        self.check_input(points, mask)
        cam = self.cam_features(points, mask)
        return self.classify(self.pool(cam.features, cam.mask)[0])

    def check_input(self, points: Tensor, mask: Optional[Tensor]) -> None:
        """Raise ValueError unless points is (B, in_channels, N>0) and mask (B, N) bool."""
        check_points(points, mask, self.config.in_channels)


def interpolation_weights(xyz: Tensor, layer_xyz: Tensor, layer_mask: Optional[Tensor]
                          ) -> tuple[Tensor, Tensor]:
    """
    PointNet++ feature-propagation weights from layer points to input points.

    ``xyz`` (B, 3, N) input points, ``layer_xyz`` (B, 3, M) layer points,
    ``layer_mask`` (B, M) bool real layer points (None: all). Returns
    indices (B, N, k) int64 and weights (B, N, k) of the k = min(3, M)
    nearest real layer points, ``w = (1 / (d^2 + 1e-8)) / sum``; a padded
    layer point gets weight 0 (each object needs one real layer point).
    """
    diff = xyz[:, :, :, None] - layer_xyz[:, :, None, :]  # (B, 3, N, M)
    dist = diff.pow(2).sum(dim=1)  # (B, N, M) squared distances
    if layer_mask is not None:
        dist = dist.masked_fill(~layer_mask[:, None, :], float('inf'))
    k = min(INTERPOLATION_NEIGHBOURS, layer_xyz.shape[2])
    near, index = dist.topk(k, dim=2, largest=False)
    recip = 1.0 / (near + INTERPOLATION_EPS)  # inf distance -> weight 0
    return index, recip / recip.sum(dim=2, keepdim=True)


def interpolate(values: Tensor, index: Tensor, weights: Tensor) -> Tensor:
    """Carry ``values`` (B, M) on layer points to (B, N) input points (see above)."""
    batch, num, k = index.shape
    picked = values.gather(1, index.reshape(batch, num * k)).reshape(batch, num, k)
    return (picked * weights).sum(dim=2)


@dataclass(frozen=True)
class CustomConfig:
    """What the explainers and the pipeline read of a wrapped model's architecture."""

    num_classes: int
    in_channels: int

    def to_dict(self) -> dict:
        """Plain-Python form."""
        return asdict(self)


class ExplainableModel(nn.Module):
    """
    Wrap any classifier ``module(points, mask) -> logits`` into the protocol above.

    ``cam_layer``: dotted name (in ``module``) of the submodule whose output
    is the CAM map A (B, C, M), the input of the global pool. ``cam_points``:
    dotted name of a :class:`PointsTap` (or any module returning ``(xyz,
    mask)``) called in the same pass, required when M != N. With
    ``duplicate_invariant`` the pipeline may feed objects with fewer samples
    (only say so if repeating points changes neither logits nor map).
    Every explainer of :data:`pointcam_ros.explain.gradcam.EXPLAINERS` runs
    on it (the CAM family by autograd through ``cam_layer``).
    """

    family: ClassVar[str] = 'custom'

    def __init__(self, module: nn.Module, *, num_classes: int, in_channels: int,
                 cam_layer: str, cam_points: Optional[str] = None,
                 duplicate_invariant: bool = False):
        super().__init__()
        self.module = module
        self.config = CustomConfig(int(num_classes), int(in_channels))
        self.duplicate_invariant = duplicate_invariant
        self.cam_layer_name = cam_layer
        self.cam_points_name = cam_points
        self.cam_layer  # noqa: B018 - fail now if the names are wrong
        self.cam_points  # noqa: B018

    @property
    def cam_layer(self) -> nn.Module:
        """Return the module whose output is the CAM map A (B, C, M)."""
        try:
            return self.module.get_submodule(self.cam_layer_name)
        except AttributeError as exc:
            raise ValueError(f'the model has no submodule {self.cam_layer_name!r} '
                             '(cam_layer)') from exc

    @property
    def cam_points(self) -> Optional[nn.Module]:
        """Return the module whose output is ``(xyz (B, 3, M), mask)``, or None."""
        if self.cam_points_name is None:
            return None
        try:
            return self.module.get_submodule(self.cam_points_name)
        except AttributeError as exc:
            raise ValueError(f'the model has no submodule {self.cam_points_name!r} '
                             '(cam_points)') from exc

    def check_input(self, points: Tensor, mask: Optional[Tensor]) -> None:
        """Raise ValueError unless points is (B, in_channels, N>0) and mask (B, N) bool."""
        check_points(points, mask, self.config.in_channels)

    def forward(self, points: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Classify ``(B, C_in, N)`` points; returns logits ``(B, num_classes)``."""
        self.check_input(points, mask)
        logits = self.module(points, mask)
        if logits.shape != (points.shape[0], self.config.num_classes):
            raise ValueError(f'the wrapped model returned {tuple(logits.shape)}, not logits '
                             f'(B, num_classes) = {(points.shape[0], self.config.num_classes)}')
        return logits
