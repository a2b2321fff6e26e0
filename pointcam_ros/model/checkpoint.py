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
Model checkpoints: one ``.pt`` file with weights and everything needed to use them.

Format (``format_version`` 1), a dict of plain types and tensors only::

    format: 'pointcam_ros.checkpoint'   format_version: 1
    architecture: PointNetConfig.to_dict()
    class_names: [str, ...]             num_points: int
    normalization: one of NORMALIZATIONS
    state_dict: {name: Tensor}          info: {str: number/str/list} (free-form)

Loading uses ``torch.load(weights_only=True)``, which never runs code from
the file. State dicts of fxia22/pointnet.pytorch ``PointNetCls`` and
yanx27/Pointnet_Pointnet2_pytorch ``pointnet_cls.get_model`` are imported
by :func:`import_reference_state_dict`.
"""

from dataclasses import dataclass, field
import importlib.resources
import math
import os
from pathlib import Path
import pickle
import re
from typing import Any, Mapping, Optional, Sequence, Union
import zipfile

from pointcam_ros.common.atomic import atomic_path
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
from pointcam_ros.model.preprocess import NORMALIZATIONS
import torch

FORMAT = 'pointcam_ros.checkpoint'
FORMAT_VERSION = 1
#: How an object's points are normalised before the model (see normalize.py).
DEFAULT_MODEL = 'default_pointnet.pt'

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or does not fit; the message says what to do."""


@dataclass
class LoadedModel:
    """A model in ``eval()`` mode plus the metadata of its checkpoint."""

    model: PointNetClassifier
    class_names: list[str]
    num_points: int
    normalization: str
    path: str
    info: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0  # calibration: probabilities = softmax(logits / temperature)


def default_model_path() -> Path:
    """Path of the model shipped inside the package (same for pip and colcon installs)."""
    return Path(str(importlib.resources.files('pointcam_ros') / 'models' / DEFAULT_MODEL))


def save_checkpoint(path: PathLike, model: PointNetClassifier, class_names: Sequence[str],
                    num_points: int, normalization: str,
                    info: Optional[Mapping[str, Any]] = None,
                    temperature: float = 1.0) -> None:
    """
    Write a checkpoint atomically (temporary file, then rename).

    ``temperature`` (> 0) calibrates the model's confidences:
    ``softmax(logits / temperature)`` (1.0 = uncalibrated). Raises
    ValueError if the metadata does not fit the model.
    """
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f'temperature must be a finite number > 0, got {temperature}')
    if len(class_names) != model.config.num_classes:
        raise ValueError(f'{len(class_names)} class names for a model with '
                         f'{model.config.num_classes} classes')
    if normalization not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {normalization}')
    payload = {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'architecture': model.config.to_dict(), 'class_names': list(class_names),
        'num_points': int(num_points), 'normalization': normalization,
        'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
        'info': dict(info or {}), 'temperature': float(temperature),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f'model file {path} does not exist: check model_path, or leave '
                              'it empty to use the shipped default model')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        if 'global' not in str(exc).lower():
            raise CheckpointError(f'{path} is not a readable PyTorch file (truncated or '
                                  f'corrupt?): {exc}') from exc
        raise CheckpointError(
            f'{path} holds objects other than tensors and plain data, so it is not loaded '
            f'(it could run code): re-save the state_dict only. Detail: {exc}') from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f'{path} is not a readable PyTorch file (truncated or corrupt?): '
                              f'{exc}') from exc


def load_checkpoint(path: Optional[PathLike] = None,
                    device: Union[str, torch.device] = 'cpu') -> LoadedModel:
    """
    Load a pointcam_ros checkpoint (default: the shipped model) onto ``device``.

    Raises :class:`CheckpointError` if the file is missing, corrupt, of
    another format or version, or its weights do not fit its architecture.
    """
    path = default_model_path() if path is None or str(path) == '' else Path(path)
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(
            f'{path} is not a pointcam_ros checkpoint (no format tag). For a state dict from '
            'fxia22/pointnet.pytorch or yanx27/Pointnet_Pointnet2_pytorch use '
            'pointcam_import_model (import_reference_state_dict) with your class names.')
    if payload.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {payload.get('format_version')}; "
                              f'this pointcam_ros reads version {FORMAT_VERSION}: upgrade it')
    try:
        config = PointNetConfig(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in payload['architecture'].items()})
        class_names = [str(c) for c in payload['class_names']]
        num_points = int(payload['num_points'])
        normalization = str(payload['normalization'])
        state_dict = payload['state_dict']
        temperature = float(payload.get('temperature', 1.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f'{path} has broken metadata: {exc}') from exc
    if len(class_names) != config.num_classes or normalization not in NORMALIZATIONS \
            or num_points <= 0 or not (math.isfinite(temperature) and temperature > 0):
        raise CheckpointError(
            f'{path} metadata does not fit: {len(class_names)} class names for '
            f'{config.num_classes} classes, normalization {normalization!r}, '
            f'num_points {num_points}, temperature {temperature}')
    model = PointNetClassifier(config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f'{path}: weights do not match the stored architecture: '
                              f'{exc}') from exc
    model.to(device).eval()
    return LoadedModel(model=model, class_names=class_names, num_points=num_points,
                       normalization=normalization, path=str(path),
                       info=dict(payload.get('info', {})), temperature=temperature)


# --- state dicts of the reference PyTorch implementations --------------------------------

def _tnet_map(src: str, dst: str) -> list[tuple[str, str]]:
    pairs = [(f'{src}.conv{i + 1}', f'{dst}.conv.{i}.conv') for i in range(3)]
    pairs += [(f'{src}.bn{i + 1}', f'{dst}.conv.{i}.bn') for i in range(3)]
    pairs += [(f'{src}.fc{i + 1}', f'{dst}.fc.{i}.linear') for i in range(2)]
    pairs += [(f'{src}.bn{i + 4}', f'{dst}.fc.{i}.bn') for i in range(2)]
    pairs += [(f'{src}.fc3', f'{dst}.out')]
    return pairs


_REFERENCE_MAP = (
    _tnet_map('feat.stn', 'input_tnet') + _tnet_map('feat.fstn', 'feature_tnet') + [
        ('feat.conv1', 'mlp1.0.conv'), ('feat.bn1', 'mlp1.0.bn'),
        ('feat.conv2', 'mlp2.0.conv'), ('feat.bn2', 'mlp2.0.bn'),
        ('feat.conv3', 'mlp2.1.conv'), ('feat.bn3', 'mlp2.1.bn'),
        ('fc1', 'head.0.linear'), ('bn1', 'head.0.bn'),
        ('fc2', 'head.1.linear'), ('bn2', 'head.1.bn'), ('fc3', 'classifier'),
    ])


def import_reference_state_dict(state_dict: Mapping[str, torch.Tensor],
                                class_names: Sequence[str]) -> PointNetClassifier:
    """
    Build a model from a fxia22 ``PointNetCls`` or yanx27 ``get_model`` state dict.

    Both repositories use the same key names (``feat.stn.conv1.weight``,
    ``feat.conv3``, ``fc3`` ...); the input channels, the feature transform
    (``feat.fstn``) and the widths are read from the tensors. A yanx27
    training checkpoint (``{'model_state_dict': ...}``) is accepted too. The
    model's last conv block ends in BatchNorm without ReLU, as in those
    repositories. Raises :class:`CheckpointError` on any mismatch.
    """
    if 'model_state_dict' in state_dict:
        state_dict = state_dict['model_state_dict']
    state_dict = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    try:
        conv1 = state_dict['feat.conv1.weight']
        fc3 = state_dict['fc3.weight']
    except KeyError as exc:
        raise CheckpointError(
            f'not a fxia22/yanx27 PointNet classification state dict: missing {exc}') from exc
    if fc3.shape[0] != len(class_names):
        raise CheckpointError(f'the state dict has {fc3.shape[0]} classes but '
                              f'{len(class_names)} class names were given')

    def out(key: str) -> int:
        return int(state_dict[key].shape[0])

    has_stn = 'feat.stn.conv1.weight' in state_dict
    config = PointNetConfig(
        num_classes=len(class_names), in_channels=int(conv1.shape[1]),
        mlp1=(out('feat.conv1.weight'),),
        mlp2=(out('feat.conv2.weight'), out('feat.conv3.weight')),
        head=(out('fc1.weight'), out('fc2.weight')),
        tnet_conv=tuple(out(f'feat.stn.conv{i}.weight') for i in (1, 2, 3)) if has_stn
        else (64, 128, 1024),
        tnet_fc=(out('feat.stn.fc1.weight'), out('feat.stn.fc2.weight')) if has_stn
        else (512, 256),
        input_transform=has_stn, feature_transform='feat.fstn.conv1.weight' in state_dict,
        last_relu=False)
    model = PointNetClassifier(config)
    mapped = {}
    for key, value in state_dict.items():
        for src, dst in _REFERENCE_MAP:
            if key.startswith(src + '.'):
                mapped[dst + key[len(src):]] = value
                break
        else:
            raise CheckpointError(f"unexpected key '{key}' in the state dict")
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f'state dict does not fit a PointNet classifier: {exc}') from exc
    return model.eval()
