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
DGCNN classifier (Wang et al., ACM TOG 2019) with padding masks, laid out for Grad-CAM.

Input ``(B, C, N)`` float32 (x, y, z, then extra channels) with an optional
``(B, N)`` bool mask of real points. Each EdgeConv layer finds every point's
k nearest neighbours in its input features (the first layer: the input
channels), builds edge features ``(x_j - x_i, x_i)``, applies a shared
Conv2d, BatchNorm2d and LeakyReLU(0.2), and max-pools over the neighbours.
The concatenated EdgeConv outputs go through the embedding layer
(``embed``: Conv1d, BatchNorm1d, LeakyReLU), whose per-point output A
``(B, emb_dims, N)`` is the CAM map; a global max and a global average pool
over real points, concatenated, feed the head (Linear without bias,
BatchNorm1d, LeakyReLU, Dropout; then with bias) and the classifier.

Padding is ignored exactly: a padded point is never anyone's neighbour, and
both pools run over real points only. An object with fewer than k real
points repeats its own point in the missing neighbour slots, which a max
over neighbours does not notice, so it gets the result it gets alone, unpadded.

The layout follows WangYueFt/dgcnn ``pytorch/model.py`` (``DGCNN``); its
state dicts load with
:func:`pointcam_ros.model.checkpoint.import_reference_state_dict`.
"""

from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import ClassVar, Optional

from pointcam_ros.model.pointnet import masked_max_with_index
from pointcam_ros.model.protocol import (
    CamMap, HeadBlock, masked_mean, PooledHeadClassifier)
import torch
from torch import nn, Tensor


@dataclass(frozen=True)
class DGCNNConfig:
    """
    Architecture of :class:`DGCNNClassifier` (stored in checkpoints).

    Defaults are the paper's ModelNet40 classifier (k 20, EdgeConv widths
    64, 64, 128, 256, embedding 1024, head 512, 256, dropout 0.5). k needs
    no scaling to the project's objects (kNN has no metric radius); with
    N = 256 samples 20 neighbours are about 8 % of an object.
    """

    num_classes: int
    in_channels: int = 3
    k: int = 20
    edge: tuple[int, ...] = (64, 64, 128, 256)
    emb_dims: int = 1024
    head: tuple[int, ...] = (512, 256)
    dropout: float = 0.5
    negative_slope: float = 0.2

    def __post_init__(self):
        """Check the arguments; raise ValueError with the bad one."""
        if self.num_classes < 1 or self.in_channels < 3:
            raise ValueError(f'need num_classes >= 1 and in_channels >= 3, got '
                             f'{self.num_classes} and {self.in_channels}')
        for name in ('edge', 'head'):
            widths = tuple(getattr(self, name))
            object.__setattr__(self, name, widths)
            if not all(isinstance(w, int) and w > 0 for w in widths):
                raise ValueError(f'{name} must be positive ints, got {widths}')
        if not self.edge:
            raise ValueError('edge needs at least one EdgeConv layer')
        if self.k < 1 or self.emb_dims < 1:
            raise ValueError(f'k and emb_dims must be >= 1, got {self.k} and {self.emb_dims}')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {self.dropout}')
        if not 0.0 <= self.negative_slope < 1.0:
            raise ValueError(f'negative_slope must be in [0, 1), got {self.negative_slope}')

    def to_dict(self) -> dict:
        """Plain-Python form (lists, numbers) for checkpoints and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def knn(x: Tensor, mask: Optional[Tensor], k: int) -> Tensor:
    """
    Find each point's k nearest real points in ``x`` (B, C, N): indices ``(B, N, k')`` int64.

    ``k' = min(k, N)``; the point itself is among them (distance 0). Squared
    distances as WangYueFt/dgcnn computes them; a padded point (mask False)
    is never a neighbour, and slots that real points cannot fill repeat the
    point itself.
    """
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x ** 2, dim=1, keepdim=True)
    pairwise = -xx - inner - xx.transpose(2, 1)  # (B, N, N), minus squared distance
    count = min(k, x.shape[2])
    if mask is None:
        return pairwise.topk(k=count, dim=-1)[1]
    pairwise = pairwise.masked_fill(~mask[:, None, :], float('-inf'))
    values, index = pairwise.topk(k=count, dim=-1)
    own = torch.arange(x.shape[2], device=x.device)[None, :, None]
    return torch.where(values > float('-inf'), index, own)


def graph_features(x: Tensor, index: Tensor) -> Tensor:
    """Build edge features ``(x_j - x_i, x_i)`` (B, 2C, N, k) of x (B, C, N), index (B, N, k)."""
    batch, channels, num = x.shape
    k = index.shape[2]
    points = x.transpose(1, 2)  # (B, N, C)
    rows = torch.arange(batch, device=x.device)[:, None, None]
    neighbours = points[rows, index]  # (B, N, k, C)
    centre = points[:, :, None, :].expand(batch, num, k, channels)
    return torch.cat([neighbours - centre, centre], dim=3).permute(0, 3, 1, 2)


class EdgeConv(nn.Module):
    """EdgeConv: kNN graph, shared Conv2d (no bias), BatchNorm2d, LeakyReLU, max over k."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float):
        super().__init__()
        self.conv = nn.Conv2d(2 * in_channels, out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor, mask: Optional[Tensor], k: int) -> Tensor:
        """Map ``(B, C_in, N)`` to ``(B, C_out, N)``."""
        edges = graph_features(x, knn(x, mask, k))
        return self.act(self.bn(self.conv(edges))).max(dim=3).values


class DGCNNClassifier(PooledHeadClassifier):
    """DGCNN classification network; see :class:`DGCNNConfig` and the module docstring."""

    #: Registry name (:func:`pointcam_ros.model.registry.build_model`).
    family: ClassVar[str] = 'dgcnn'
    #: Name of the module whose output is the CAM map A (B, emb_dims, N).
    CAM_LAYER: ClassVar[str] = 'embed'
    #: Global pools over A, concatenated in this order, that feed the head.
    POOLING: ClassVar[tuple[str, ...]] = ('max', 'mean')
    #: Repeated points change the kNN graphs, so objects always get all N samples.
    duplicate_invariant: ClassVar[bool] = False
    #: The CAM layer's points are the input points.
    cam_points = None

    def __init__(self, config: DGCNNConfig):
        super().__init__()
        self.config = c = config
        widths = [c.in_channels, *c.edge]
        self.edge_convs = nn.ModuleList([EdgeConv(a, b, c.negative_slope)
                                         for a, b in zip(widths, widths[1:])])
        self.embed = nn.Sequential(OrderedDict(
            conv=nn.Conv1d(sum(c.edge), c.emb_dims, kernel_size=1, bias=False),
            bn=nn.BatchNorm1d(c.emb_dims), act=nn.LeakyReLU(c.negative_slope)))
        widths = [2 * c.emb_dims, *c.head]
        self.head = nn.Sequential(*[
            HeadBlock(a, b, bias=i > 0, negative_slope=c.negative_slope, dropout=c.dropout)
            for i, (a, b) in enumerate(zip(widths, widths[1:]))])
        self.classifier = nn.Linear(widths[-1], c.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """Return the module whose output is the CAM map A."""
        return self.get_submodule(self.CAM_LAYER)

    def cam_features(self, points: Tensor, mask: Optional[Tensor] = None) -> CamMap:
        """Compute the CAM map A ``(B, emb_dims, N)`` of ``points`` (B, C, N), on its points."""
        x, outputs = points, []
        for layer in self.edge_convs:
            x = layer(x, mask, self.config.k)
            outputs.append(x)
        return CamMap(self.embed(torch.cat(outputs, dim=1)), mask, None)

    def pool(self, features: Tensor, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """Pool A over real points: ``(B, 2 C)`` (max, then mean), the max's arg-max (B, C)."""
        top, argmax = masked_max_with_index(features, mask)
        return torch.cat([top, masked_mean(features, mask)], dim=1), argmax
