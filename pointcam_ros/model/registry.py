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
The one registry of model families: build any of them by name, find a model's family.

::

    from pointcam_ros.model import build_model
    model = build_model('dgcnn', num_classes=7, in_channels=5, k=20)

Families: ``pointnet`` (:mod:`~pointcam_ros.model.pointnet`), ``dgcnn``
(:mod:`~pointcam_ros.model.dgcnn`), ``pointnet2`` (PointNet++ SSG,
:mod:`~pointcam_ros.model.pointnet2`). Every size has a default (the
family's config dataclass). Every model takes ``(B, C, N)`` points with an
optional ``(B, N)`` bool mask, returns logits, names its CAM layer
(``model.cam_layer``) and has ``config.num_classes`` and ``config.in_channels``
(the protocol of :mod:`~pointcam_ros.model.protocol`). Checkpoints store the
family name next to ``config.to_dict()``.
"""

from dataclasses import fields
from typing import Any, NamedTuple

from pointcam_ros.model.dgcnn import DGCNNClassifier, DGCNNConfig
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
from pointcam_ros.model.pointnet2 import PointNet2Classifier, PointNet2Config
import torch
from torch import nn


class Family(NamedTuple):
    """A model family: its config dataclass and its model class."""

    config: type
    model: type


#: Every family by name: the one registry.
FAMILIES: dict[str, Family] = {
    'pointnet': Family(PointNetConfig, PointNetClassifier),
    'dgcnn': Family(DGCNNConfig, DGCNNClassifier),
    'pointnet2': Family(PointNet2Config, PointNet2Classifier),
}

#: Family of checkpoints written before families existed.
DEFAULT_FAMILY = 'pointnet'


def family_config(family: str, num_classes: int, in_channels: int = 3, **sizes: Any):
    """
    Return the config of ``family`` with ``sizes`` changed from its defaults.

    ValueError names an unknown family, an unknown size or a bad value.
    """
    try:
        config_cls = FAMILIES[family].config
    except KeyError:
        raise ValueError(f'unknown model family {family!r}; choose one of '
                         f'{sorted(FAMILIES)}') from None
    known = {f.name for f in fields(config_cls)} - {'num_classes', 'in_channels'}
    unknown = sorted(set(sizes) - known)
    if unknown:
        raise ValueError(f'{family} has no size {unknown[0]!r}; its sizes: '
                         f"{', '.join(sorted(known))}")
    try:
        return config_cls(num_classes=num_classes, in_channels=in_channels, **sizes)
    except TypeError as exc:
        raise ValueError(f'{family}: {exc}') from None


def build_model(family: str, num_classes: int, in_channels: int = 3, **sizes: Any
                ) -> nn.Module:
    """
    Build a model of ``family`` (a :data:`FAMILIES` name) with random weights.

    ``sizes`` are fields of the family's config (e.g. ``k=16`` for DGCNN,
    ``radii=(0.2, 0.4)`` for PointNet++); the rest keep their defaults.
    """
    return build_from_config(family, family_config(family, num_classes, in_channels, **sizes))


def build_from_config(family: str, config: Any) -> nn.Module:
    """Build the model of a family from its config object."""
    return FAMILIES[family].model(config)


def family_of(model: nn.Module) -> str:
    """
    Return the registry name of ``model``'s family; ValueError for other models.

    A model of a family is an instance of its class (subclasses included).
    """
    for name, family in FAMILIES.items():
        if isinstance(model, family.model):
            return name
    raise ValueError(f'{type(model).__name__} is not a model of a registered family '
                     f'({sorted(FAMILIES)}): a checkpoint stores weights and '
                     'architecture, not code, so only those can be saved')


def parameter_count_of(family: str, config: Any) -> int:
    """
    Count the parameters of the model of ``config`` without allocating its weights.

    Builds it on the ``meta`` device (shapes only), so any bounded config is cheap.
    """
    with torch.device('meta'):
        model = build_from_config(family, config)
    return sum(p.numel() for p in model.parameters())
