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
PointNet++ single-scale-grouping classifier (Qi et al., NeurIPS 2017) with padding masks.

Input ``(B, C, N)`` float32: x, y, z (positions) and ``C - 3`` extra
channels (point features, like yanx27's normals), with an optional ``(B, N)``
bool mask of real points. Each set-abstraction level picks ``npoint``
centroids by farthest-point sampling, groups up to ``nsample`` points within
``radius`` of each (ball query), runs a shared MLP (Conv2d 1x1, BatchNorm2d,
ReLU) on ``(x_j - c, f_j)`` and max-pools each group. The last level groups
everything: its MLP runs on each centroid of the level before, ``(c, f_c)``;
these per-centroid features A ``(B, C_A, M)`` (``M`` = the last ``npoints``)
are the CAM map, the output of ``sa[-1].features``, and their global max over
real centroids feeds the head (Linear, BatchNorm1d, ReLU, Dropout) and the
classifier. ``cam_points`` (a :class:`~pointcam_ros.model.protocol.PointsTap`)
says where A's points are; explainers carry a map on them to every input
point with PointNet++'s own feature-propagation weights
(:func:`~pointcam_ros.model.protocol.interpolation_weights`).

Padding is ignored exactly. Sampling starts at an object's first real point
and only ever picks real points; an object with R real points has
``min(R, npoint)`` real centroids (the rest repeat the first and are masked
out of every later level and of the pool). A ball query returns the first
``nsample`` real points inside the ball in index order, filling missing
slots with the first one (a max does not see repeats), as yanx27 does. So an
object padded in a batch gets what it gets alone, unpadded. Sampling is
deterministic (yanx27 starts at a random point).

The layout follows yanx27/Pointnet_Pointnet2_pytorch ``pointnet2_cls_ssg``;
its state dicts load with
:func:`pointcam_ros.model.checkpoint.import_reference_state_dict`.
"""

from dataclasses import asdict, dataclass
from typing import ClassVar, Optional

from pointcam_ros.model.pointnet import masked_max_with_index
from pointcam_ros.model.protocol import (
    CamMap, HeadBlock, PointsTap, PooledHeadClassifier)
import torch
from torch import nn, Tensor


@dataclass(frozen=True)
class PointNet2Config:
    """
    Architecture of :class:`PointNet2Classifier` (stored in checkpoints).

    One entry of ``npoints``, ``radii``, ``nsamples``, ``mlps`` per grouping
    level; ``global_mlp`` is the last level (group all). Defaults: the
    paper's ModelNet40 SSG model (npoints 512, 128 of N = 1024 points; radii
    0.2, 0.4 in the unit sphere; nsample 32, 64; MLPs 64-64-128,
    128-128-256, 256-512-1024; head 512, 256, dropout 0.4) scaled to the
    project's objects: npoints in proportion to N = 256 samples (128, 32),
    radii in metres (0.5, 1.0 m: 0.2 and 0.4 of a 2.5 m car's half
    length), as every normalisation but ``unit_sphere`` keeps metres. For
    ``unit_sphere`` inputs use the paper's radii (``radii=(0.2, 0.4)``).
    """

    num_classes: int
    in_channels: int = 3
    npoints: tuple[int, ...] = (128, 32)
    radii: tuple[float, ...] = (0.5, 1.0)
    nsamples: tuple[int, ...] = (32, 64)
    mlps: tuple[tuple[int, ...], ...] = ((64, 64, 128), (128, 128, 256))
    global_mlp: tuple[int, ...] = (256, 512, 1024)
    head: tuple[int, ...] = (512, 256)
    dropout: float = 0.4

    def __post_init__(self):
        """Check the arguments; raise ValueError with the bad one."""
        if self.num_classes < 1 or self.in_channels < 3:
            raise ValueError(f'need num_classes >= 1 and in_channels >= 3, got '
                             f'{self.num_classes} and {self.in_channels}')
        for name in ('npoints', 'nsamples', 'global_mlp', 'head'):
            widths = tuple(getattr(self, name))
            object.__setattr__(self, name, widths)
            if not all(isinstance(w, int) and w > 0 for w in widths):
                raise ValueError(f'{name} must be positive ints, got {widths}')
        mlps = tuple(tuple(m) for m in self.mlps)
        object.__setattr__(self, 'mlps', mlps)
        if not all(m and all(isinstance(w, int) and w > 0 for w in m) for m in mlps):
            raise ValueError(f'mlps must be non-empty lists of positive ints, got {mlps}')
        radii = tuple(float(r) for r in self.radii)
        object.__setattr__(self, 'radii', radii)
        if not all(r > 0 for r in radii):
            raise ValueError(f'radii must be > 0, got {radii}')
        levels = {len(self.npoints), len(radii), len(self.nsamples), len(mlps)}
        if len(levels) != 1 or not self.npoints:
            raise ValueError('npoints, radii, nsamples and mlps need one entry per level '
                             f'(at least one), got {len(self.npoints)}, {len(radii)}, '
                             f'{len(self.nsamples)} and {len(mlps)}')
        if not self.global_mlp:
            raise ValueError('global_mlp needs at least one layer')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {self.dropout}')

    def to_dict(self) -> dict:
        """Plain-Python form (lists, numbers) for checkpoints and JSON."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out['mlps'] = [list(m) for m in self.mlps]
        return out


def farthest_point_sample(xyz: Tensor, mask: Optional[Tensor], npoint: int
                          ) -> tuple[Tensor, Optional[Tensor]]:
    """
    Farthest-point sampling of ``npoint`` of the real points of ``xyz`` (B, 3, N).

    Starts at each object's first real point. Returns indices (B, npoint)
    int64 and which centroids are real, (B, npoint) bool: the first
    ``min(R, npoint)`` of an object of R real points (the others repeat the
    first); None when every centroid is real for every object.
    """
    batch, _, num = xyz.shape
    far = torch.full((batch, num), float('inf'), dtype=xyz.dtype, device=xyz.device)
    if mask is not None:
        far = far.masked_fill(~mask, -1.0)  # min(-1, d >= 0) keeps padding at -1
        current = mask.to(torch.uint8).argmax(dim=1)
    else:
        current = torch.zeros(batch, dtype=torch.long, device=xyz.device)
    picks = []
    for _ in range(npoint):
        picks.append(current)
        centre = xyz.gather(2, current[:, None, None].expand(batch, 3, 1))
        far = torch.minimum(far, (xyz - centre).pow(2).sum(dim=1))
        current = far.argmax(dim=1)
    index = torch.stack(picks, dim=1)
    if mask is None and num >= npoint:
        return index, None
    counts = mask.sum(dim=1, keepdim=True) if mask is not None else torch.full(
        (batch, 1), num, device=xyz.device)
    valid = torch.arange(npoint, device=xyz.device)[None, :] < counts
    return torch.where(valid, index, index[:, :1]), valid


def square_distance(src: Tensor, dst: Tensor) -> Tensor:
    """Squared distances ``(B, S, N)`` of ``src`` (B, 3, S) to ``dst`` (B, 3, N), as yanx27."""
    dist = -2 * torch.matmul(src.transpose(1, 2), dst)
    return dist + src.pow(2).sum(dim=1)[:, :, None] + dst.pow(2).sum(dim=1)[:, None, :]


def ball_query(xyz: Tensor, centres: Tensor, mask: Optional[Tensor], radius: float,
               nsample: int) -> Tensor:
    """
    Group indices ``(B, S, k)`` int64, ``k = min(nsample, N)``, of real points near centres.

    ``xyz`` (B, 3, N) points, ``centres`` (B, 3, S), ``mask`` (B, N) bool:
    per centre the first ``k`` real points (in index order) within
    ``radius``, missing slots filled with the first (each centre is one of the
    points, so every group has one).
    """
    num = xyz.shape[2]
    outside = square_distance(centres, xyz) > radius ** 2
    if mask is not None:
        outside = outside | ~mask[:, None, :]
    order = torch.arange(num, device=xyz.device).expand_as(outside)
    key = torch.where(outside, torch.full_like(order, num), order)
    group = key.topk(min(nsample, num), dim=2, largest=False, sorted=True).values
    return torch.where(group == num, group[:, :, :1], group)


def gather_points(values: Tensor, index: Tensor) -> Tensor:
    """Pick ``values`` (B, C, N) at ``index`` (B, S) or (B, S, k): (B, C, S) or (B, C, S, k)."""
    batch = values.shape[0]
    rows = torch.arange(batch, device=values.device).view(batch, *([1] * (index.dim() - 1)))
    picked = values.transpose(1, 2)[rows, index]  # (B, S[, k], C)
    return picked.movedim(-1, 1)


class SetAbstraction(nn.Module):
    """One grouping level: sample, group, shared MLP (Conv2d, BatchNorm2d, ReLU), max."""

    def __init__(self, npoint: int, radius: float, nsample: int, in_channels: int,
                 mlp: tuple[int, ...]):
        super().__init__()
        self.npoint, self.radius, self.nsample = npoint, radius, nsample
        widths = [in_channels, *mlp]
        self.mlp_convs = nn.ModuleList([nn.Conv2d(a, b, 1) for a, b in zip(widths, widths[1:])])
        self.mlp_bns = nn.ModuleList([nn.BatchNorm2d(b) for b in mlp])

    def forward(self, xyz: Tensor, features: Optional[Tensor], mask: Optional[Tensor]
                ) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """
        Map points (B, 3, N), features (B, D, N) or None, mask to the level's centroids.

        Returns centroid positions (B, 3, S), features (B, C', S) and which
        centroids are real, (B, S) bool or None (all).
        """
        index, valid = farthest_point_sample(xyz, mask, self.npoint)
        centres = gather_points(xyz, index)
        group = ball_query(xyz, centres, mask, self.radius, self.nsample)
        x = gather_points(xyz, group) - centres[:, :, :, None]  # (B, 3, S, k)
        if features is not None:
            x = torch.cat([x, gather_points(features, group)], dim=1)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            x = torch.relu(bn(conv(x)))
        return centres, x.max(dim=3).values, valid


class GlobalSetAbstraction(nn.Module):
    """The last level (group all): shared MLP on each centroid's ``(c, f_c)``, tapped as A."""

    def __init__(self, in_channels: int, mlp: tuple[int, ...]):
        super().__init__()
        widths = [in_channels, *mlp]
        self.mlp_convs = nn.ModuleList([nn.Conv2d(a, b, 1) for a, b in zip(widths, widths[1:])])
        self.mlp_bns = nn.ModuleList([nn.BatchNorm2d(b) for b in mlp])
        self.features = nn.Identity()  # the CAM layer: its output is A (B, C_A, M)

    def forward(self, xyz: Tensor, features: Tensor) -> Tensor:
        """Map centroids (B, 3, M) with features (B, D, M) to A (B, C_A, M), not pooled."""
        x = torch.cat([xyz, features], dim=1)[:, :, :, None]
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            x = torch.relu(bn(conv(x)))
        return self.features(x[:, :, :, 0])


class PointNet2Classifier(PooledHeadClassifier):
    """PointNet++ SSG classification network; see :class:`PointNet2Config`."""

    #: Registry name (:func:`pointcam_ros.model.registry.build_model`).
    family: ClassVar[str] = 'pointnet2'
    #: Global pools over A that feed the head.
    POOLING: ClassVar[tuple[str, ...]] = ('max',)
    #: Repeated points can crowd a ball query's nsample slots: objects get all N samples.
    duplicate_invariant: ClassVar[bool] = False

    def __init__(self, config: PointNet2Config):
        super().__init__()
        self.config = c = config
        levels, channels = [], c.in_channels - 3
        for npoint, radius, nsample, mlp in zip(c.npoints, c.radii, c.nsamples, c.mlps):
            levels.append(SetAbstraction(npoint, radius, nsample, 3 + channels, mlp))
            channels = mlp[-1]
        levels.append(GlobalSetAbstraction(3 + channels, c.global_mlp))
        self.sa = nn.ModuleList(levels)
        self.cam_points = PointsTap()
        widths = [c.global_mlp[-1], *c.head]
        self.head = nn.Sequential(*[HeadBlock(a, b, dropout=c.dropout)
                                    for a, b in zip(widths, widths[1:])])
        self.classifier = nn.Linear(widths[-1], c.num_classes)

    @property
    def CAM_LAYER(self) -> str:  # noqa: N802 - the name PointNet and DGCNN use
        """Name of the module whose output is the CAM map A (B, C_A, M)."""
        return f'sa.{len(self.sa) - 1}.features'

    @property
    def cam_layer(self) -> nn.Module:
        """Return the module whose output is the CAM map A."""
        return self.get_submodule(self.CAM_LAYER)

    def cam_features(self, points: Tensor, mask: Optional[Tensor] = None) -> CamMap:
        """Compute the CAM map A ``(B, C_A, M)`` on the last centroids, their mask and places."""
        xyz = points[:, :3]
        features = points[:, 3:] if points.shape[1] > 3 else None
        for level in self.sa[:-1]:
            xyz, features, mask = level(xyz, features, mask)
        xyz, mask = self.cam_points(xyz, mask)
        return CamMap(self.sa[-1](xyz, features), mask, xyz)

    def pool(self, features: Tensor, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """Pool A by a max over real centroids: ``(B, C_A)`` and its arg-max (B, C_A) int64."""
        return masked_max_with_index(features, mask)
