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
PointNet classifier (Qi et al., CVPR 2017) laid out for Grad-CAM.

Input ``(B, C, N)`` float32, channels first (x, y, z, then optional extra
channels), with an optional ``(B, N)`` bool mask of real (non-padding)
points. The per-point local feature map ``A`` (B, C_A, N), the input of the
global max-pool, is the output of the module named by
:attr:`PointNetClassifier.CAM_LAYER`.

Padding points (mask False) never influence real points: every max-pool (the
T-Nets' and the global one) ignores them, and everything else is per point.
"""

from dataclasses import asdict, dataclass, replace
from typing import ClassVar, NamedTuple, Optional, Sequence

from pointcam_ros.model.protocol import check_points
import torch
from torch import nn, Tensor


@dataclass(frozen=True)
class PointNetConfig:
    """
    Architecture arguments of :class:`PointNetClassifier` (stored in checkpoints).

    ``mlp1`` runs before the optional feature transform, ``mlp2`` after it; the
    output of ``mlp2`` is the Grad-CAM feature map. ``last_relu=False``
    reproduces fxia22/yanx27, whose last conv block ends in BatchNorm.
    """

    num_classes: int
    in_channels: int = 3
    mlp1: tuple[int, ...] = (64,)
    mlp2: tuple[int, ...] = (128, 1024)
    head: tuple[int, ...] = (512, 256)
    tnet_conv: tuple[int, ...] = (64, 128, 1024)
    tnet_fc: tuple[int, ...] = (512, 256)
    dropout: float = 0.3
    input_transform: bool = True
    feature_transform: bool = False
    last_relu: bool = True

    def __post_init__(self):
        """Check the arguments; raise ValueError with the bad one."""
        if self.num_classes < 1 or self.in_channels < 3:
            raise ValueError(f'need num_classes >= 1 and in_channels >= 3, got '
                             f'{self.num_classes} and {self.in_channels}')
        for name in ('mlp1', 'mlp2', 'head', 'tnet_conv', 'tnet_fc'):
            widths = tuple(getattr(self, name))
            object.__setattr__(self, name, widths)
            if not all(isinstance(w, int) and w > 0 for w in widths):
                raise ValueError(f'{name} must be positive ints, got {widths}')
        if not self.mlp1 or not self.mlp2:
            raise ValueError('mlp1 and mlp2 need at least one layer each')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {self.dropout}')

    def to_dict(self) -> dict:
        """Plain-Python form (lists, numbers, bools) for checkpoints and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class ConvBlock(nn.Module):
    """
    Shared per-point layer: 1x1 Conv1d, BatchNorm1d and (optionally) ReLU.

    In ``eval()`` mode, with BatchNorm's running statistics, the three run as
    one matrix product: BatchNorm's scale and shift are folded into the
    convolution's weight and bias at every call (so loaded weights are always
    seen) and the points are multiplied point-major, ``(B*N, C_in) @ (C_in,
    C_out)``. That is the same function (to float rounding, about 1e-6
    relative) at 2-3 times less CPU time than ``Conv1d``, whose 1x1 kernel
    goes through im2col. The output is then a ``(B, C_out, N)`` view of a
    point-major ``(B, N, C_out)`` tensor, which the next block reads without
    a copy. Training mode (BatchNorm's batch statistics), and a BatchNorm
    without running statistics or affine weights, run the modules as they
    are.
    """

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm1d(out_channels)
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C_in, N)`` to ``(B, C_out, N)``."""
        bn, conv = self.bn, self.conv
        if (bn.training or bn.running_mean is None or bn.running_var is None
                or bn.weight is None or conv.bias is None):
            return self.act(bn(conv(x)))
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
        weight = conv.weight[:, :, 0] * scale[:, None]  # (C_out, C_in)
        bias = (conv.bias - bn.running_mean) * scale + bn.bias
        batch, channels, points = x.shape
        rows = x.transpose(1, 2).reshape(batch * points, channels)  # (B*N, C_in)
        out = torch.addmm(bias, rows, weight.t())  # (B*N, C_out)
        out = torch.relu_(out) if isinstance(self.act, nn.ReLU) else self.act(out)
        return out.view(batch, points, weight.shape[0]).transpose(1, 2)


class LinearBlock(nn.Module):
    """Linear, optional Dropout, BatchNorm1d, ReLU (fxia22's head order)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn = nn.BatchNorm1d(out_features)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, F_in)`` to ``(B, F_out)``."""
        return self.act(self.bn(self.drop(self.linear(x))))


def masked_max_with_index(features: Tensor, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """
    Max over points of ``(B, C, N)`` features, ignoring ``mask == False``.

    Returns values ``(B, C)`` and arg-max point indices ``(B, C)`` int64. Uses
    ``torch.max(dim)``, whose backward sends the whole gradient to the single
    returned arg-max index.
    """
    if mask is not None:
        features = features.masked_fill(~mask[:, None, :], float('-inf'))
    values, indices = features.max(dim=2)
    return values, indices


def masked_max(features: Tensor, mask: Optional[Tensor]) -> Tensor:
    """
    Max over real points of ``(B, C, N)`` features: ``(B, C)``.

    When ``features`` needs no gradient this is ``torch.amax``, which skips
    the arg-max search (several times faster on the CPU); otherwise it is
    :func:`masked_max_with_index`, whose backward sends each channel's
    gradient to one arg-max point (``amax`` would split it between tied
    points, e.g. repeated samples). The values are the same either way.
    """
    if features.requires_grad:
        return masked_max_with_index(features, mask)[0]
    if mask is not None:
        features = features.masked_fill(~mask[:, None, :], float('-inf'))
    return features.amax(dim=2)


class TNet(nn.Module):
    """Predicts a ``k x k`` transform from the points (identity-initialised)."""

    def __init__(self, in_channels: int, k: int, conv: Sequence[int], fc: Sequence[int]):
        super().__init__()
        self.k = k
        widths = [in_channels, *conv]
        self.conv = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(widths, widths[1:])])
        widths = [conv[-1], *fc]
        self.fc = nn.Sequential(*[LinearBlock(a, b) for a, b in zip(widths, widths[1:])])
        self.out = nn.Linear(widths[-1], k * k)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer('identity', torch.eye(k).flatten(), persistent=False)

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """Map ``(B, C, N)`` to a ``(B, k, k)`` transform."""
        pooled = masked_max(self.conv(x), mask)
        return (self.out(self.fc(pooled)) + self.identity).view(-1, self.k, self.k)


class PointNetOutput(NamedTuple):
    """Everything one pass computes; ``forward`` returns only ``logits``."""

    logits: Tensor  # (B, num_classes)
    local_features: Tensor  # (B, C_A, N): the Grad-CAM map A
    global_features: Tensor  # (B, C_A): masked max of A over points
    feature_transform: Optional[Tensor]  # (B, k, k) or None


class PointNetClassifier(nn.Module):
    """PointNet classification network; see :class:`PointNetConfig`."""

    #: Name of the module whose output is the local feature map A (B, C_A, N).
    CAM_LAYER = 'mlp2'
    #: Registry name (:func:`pointcam_ros.model.registry.build_model`).
    family: ClassVar[str] = 'pointnet'
    #: Global pools over A that feed the head.
    POOLING: ClassVar[tuple[str, ...]] = ('max',)
    #: Repeating points changes neither the T-Nets' nor the global max-pool.
    duplicate_invariant: ClassVar[bool] = True
    #: The CAM layer's points are the input points.
    cam_points = None

    def __init__(self, config: PointNetConfig):
        super().__init__()
        self.config = config
        c = config
        self.input_tnet = TNet(c.in_channels, 3, c.tnet_conv, c.tnet_fc) \
            if c.input_transform else None
        widths = [c.in_channels, *c.mlp1]
        self.mlp1 = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(widths, widths[1:])])
        self.feature_tnet = TNet(c.mlp1[-1], c.mlp1[-1], c.tnet_conv, c.tnet_fc) \
            if c.feature_transform else None
        widths = [c.mlp1[-1], *c.mlp2]
        blocks = [ConvBlock(a, b, relu=(i < len(c.mlp2) - 1 or c.last_relu))
                  for i, (a, b) in enumerate(zip(widths, widths[1:]))]
        self.mlp2 = nn.Sequential(*blocks)
        widths = [c.mlp2[-1], *c.head]
        self.head = nn.Sequential(*[
            LinearBlock(a, b, dropout=c.dropout if i == len(c.head) - 1 else 0.0)
            for i, (a, b) in enumerate(zip(widths, widths[1:]))])
        self.classifier = nn.Linear(widths[-1], c.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """Return the module whose output is the Grad-CAM feature map A."""
        return self.get_submodule(self.CAM_LAYER)

    def local_features(self, points: Tensor, mask: Optional[Tensor] = None
                       ) -> tuple[Tensor, Optional[Tensor]]:
        """Compute A ``(B, C_A, N)`` and the feature transform (or None)."""
        x = points
        if self.input_tnet is not None:
            transform = self.input_tnet(x, mask)
            xyz = torch.bmm(transform.transpose(1, 2), x[:, :3])  # (points @ T)^T
            x = torch.cat([xyz, x[:, 3:]], dim=1) if x.shape[1] > 3 else xyz
        x = self.mlp1(x)
        feature_transform = None
        if self.feature_tnet is not None:
            feature_transform = self.feature_tnet(x, mask)
            x = torch.bmm(feature_transform.transpose(1, 2), x)
        return self.mlp2(x), feature_transform

    def classify(self, global_features: Tensor) -> Tensor:
        """Map pooled features ``(B, C_A)`` to logits ``(B, num_classes)``."""
        return self.classifier(self.head(global_features))

    def run(self, points: Tensor, mask: Optional[Tensor] = None) -> PointNetOutput:
        """Full pass returning logits, A, the pooled vector and the feature transform."""
        self.check_input(points, mask)
        local, feature_transform = self.local_features(points, mask)
        pooled = masked_max(local, mask)
        return PointNetOutput(self.classify(pooled), local, pooled, feature_transform)

    def forward(self, points: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Classify ``(B, C, N)`` points; returns logits ``(B, num_classes)``."""
        return self.run(points, mask).logits

    def check_input(self, points: Tensor, mask: Optional[Tensor]) -> None:
        """Raise ValueError unless points is (B, in_channels, N>0) and mask (B, N) bool."""
        check_points(points, mask, self.config.in_channels)


def with_input_channels(model: PointNetClassifier, in_channels: int) -> PointNetClassifier:
    """
    Return a copy of ``model`` taking ``in_channels`` inputs, the new ones last.

    The weights of the added channels are zero, so the copy computes exactly
    what ``model`` computes from the first ``model.config.in_channels``
    channels: fine-tuning starts from the trained model and learns what the
    new channels add. Raises ValueError if ``in_channels`` is fewer.
    """
    old = model.config.in_channels
    if in_channels < old:
        raise ValueError(f'cannot drop input channels: the model takes {old}, '
                         f'{in_channels} asked for')
    config = replace(model.config, in_channels=in_channels)
    reference = next(model.parameters())
    with torch.random.fork_rng(devices=[]):  # every weight is overwritten below
        wider = PointNetClassifier(config).to(reference.device, reference.dtype)
    state = dict(model.state_dict())
    for key in ('mlp1.0.conv.weight', 'input_tnet.conv.0.conv.weight'):
        if key in state:
            weight = state[key]  # (C_out, old, 1)
            pad = weight.new_zeros(weight.shape[0], in_channels - old, weight.shape[2])
            state[key] = torch.cat([weight, pad], dim=1)
    wider.load_state_dict(state)
    return wider.train(model.training)


def orthogonality_loss(transform: Tensor) -> Tensor:
    """Feature-transform regulariser ``mean_b ||I - T T^T||_F^2`` (PointNet eq. 2)."""
    eye = torch.eye(transform.shape[1], device=transform.device, dtype=transform.dtype)
    diff = eye - torch.bmm(transform, transform.transpose(1, 2))
    return diff.pow(2).sum(dim=(1, 2)).mean()
