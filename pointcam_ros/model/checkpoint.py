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
    family: a name of pointcam_ros.model.registry.FAMILIES (optional, default 'pointnet')
    architecture: the family's config.to_dict() (PointNetConfig, DGCNNConfig, ...)
    class_names: [str, ...]             num_points: int
    normalization: one of NORMALIZATIONS
    state_dict: {name: Tensor}          info: {str: number/str/list} (free-form)
    temperature: float in TEMPERATURE_RANGE (optional, default 1.0)
    temperature_bands: {min_points: [int, ...], temperatures: [float, ...]} (optional)
    novelty: {class_means, precision, mean, background_precision: Tensor,
              threshold: float} (optional; :mod:`pointcam_ros.model.novelty`)

Loading first bounds the file itself (size, zip records, pickle size), then
uses ``torch.load(weights_only=True, mmap=True)``, which never runs code from
the file and leaves the weights on disk, then checks every metadata field
against the bounds below *before* a model is built. The model of the stored
architecture (at most MAX_PARAMETERS) is then the skeleton the state dict
must fit: keys, shapes, dtypes, device and storage bytes are compared from
tensor metadata before any value is read or computed on. So a hostile or
broken file fails with a :class:`CheckpointError` naming the file and the
field instead of exhausting memory or producing NaN scores: loading needs at
most about three times the model's own size (float64 weights of a float32
model, read once from the file, plus the model).
Every family's architecture is checked field by field against its bounds
and its parameters are counted (on the ``meta`` device for DGCNN and
PointNet++) before the skeleton is built; a family this version does not
know is refused by name. State dicts of fxia22/pointnet.pytorch
``PointNetCls``, yanx27/Pointnet_Pointnet2_pytorch ``pointnet_cls.get_model``
and ``pointnet2_cls_ssg.get_model``, and WangYueFt/dgcnn ``DGCNN`` are
imported by :func:`import_reference_state_dict`.
"""

from dataclasses import dataclass, field, fields
import importlib.resources
import math
import os
from pathlib import Path
import pickle
import pickletools
import re
import struct
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union
import warnings
import zipfile

from pointcam_ros.common.atomic import atomic_path
from pointcam_ros.model.dgcnn import DGCNNClassifier, DGCNNConfig
from pointcam_ros.model.novelty import NoveltyStats, penultimate_width, TENSOR_NAMES
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
from pointcam_ros.model.pointnet2 import PointNet2Classifier, PointNet2Config
from pointcam_ros.model.preprocess import NORMALIZATIONS
from pointcam_ros.model.registry import (
    build_from_config, DEFAULT_FAMILY, FAMILIES, family_of, parameter_count_of)
import torch
from torch import nn

FORMAT = 'pointcam_ros.checkpoint'
FORMAT_VERSION = 1
#: File name of the model shipped in ``pointcam_ros/models/``.
DEFAULT_MODEL = 'default_pointnet.pt'

# Bounds checked before a model is built. They are far above any PointNet in
# the literature (widths 64..1024, ~3.5M parameters) and keep a hostile file
# from asking for gigabytes: a (B, 8192, 8192) float32 activation alone is 256 MiB
# per object.
#: Largest width of any layer (conv channels, linear features).
MAX_WIDTH = 8192
#: Most layers in each of mlp1, mlp2, head, tnet_conv, tnet_fc.
MAX_LAYERS = 16
#: Most input channels (x, y, z plus extras such as normals or intensity).
MAX_IN_CHANNELS = 64
#: Allowed number of classes.
CLASS_RANGE = (1, 1000)
#: Allowed points per object fed to the model (memory grows linearly with it).
NUM_POINTS_RANGE = (16, 8192)
#: Most parameters the architecture may have (200 MB of float32 weights).
MAX_PARAMETERS = 50_000_000
#: Most values of one per-point feature map per object: num_points x widest conv layer.
MAX_POINT_FEATURES = 2 ** 24
#: Dtypes a floating-point weight may be stored in (it is copied into the float32 model).
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Largest checkpoint file read: MAX_PARAMETERS float64 weights plus 16 MiB (~416 MB).
MAX_FILE_BYTES = 8 * MAX_PARAMETERS + 2 ** 24
#: Largest pickled part of a file (architecture, names, info, tensor references; the
#: shipped model's is 8 KiB). A pickle can build objects far larger than its bytes.
MAX_PICKLE_BYTES = 2 ** 20
#: Most records (files) in a checkpoint's zip: one per tensor plus a few (the largest
#: allowed architecture has fewer than 1,000 tensors).
MAX_RECORDS = 4096
#: Bytes of storage one state-dict entry may hold beyond 8 bytes (float64) per value.
STORAGE_SLACK = 4096
#: Most neighbours of a DGCNN EdgeConv (k).
MAX_NEIGHBOURS = 128
#: Most centroids of a PointNet++ level (npoint) and most points of a ball (nsample).
MAX_CENTROIDS = 8192
#: Largest PointNet++ ball radius (input units: metres, or unit-sphere radii).
MAX_RADIUS = 1000.0
#: Allowed calibration temperature (softmax(logits / T)): the interval in which
#: :func:`pointcam_ros.learn.calibration.fit_temperature` searches. Outside it the
#: confidences collapse to one-hot or uniform, and 1e-300 makes every one NaN.
TEMPERATURE_RANGE = (0.05, 20.0)
#: Most point bands of a calibration by point count (``temperature_bands``).
MAX_TEMPERATURE_BANDS = 16
#: Largest asymmetry, relative to its largest entry, a ``novelty`` precision matrix may show.
PRECISION_ASYMMETRY = 1e-9
#: Widest classifier input D whose ``novelty`` statistics a checkpoint may hold: two
#: (D, D) float64 matrices are 16 MiB at 1,024; the shipped model's D is 128.
MAX_NOVELTY_WIDTH = 1024

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or does not fit; the message says what to do."""


class _FieldError(ValueError):
    """One bad field of a checkpoint payload (``name`` is dotted, e.g. ``architecture.head``)."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"field '{name}' {problem}")
        self.name = name


@dataclass(frozen=True)
class TemperatureBands:
    """
    Calibration by an object's point count: one temperature per band of points.

    ``temperatures[i]`` applies to objects of ``min_points[i]`` points or
    more, up to the next band (the first band also takes smaller objects).
    A model is over-confident where it sees few points and under-confident
    where it sees many; one temperature per band corrects both
    (:func:`pointcam_ros.learn.calibration.fit_band_temperatures`).
    """

    min_points: tuple[int, ...]  # ascending, the first >= 1
    temperatures: tuple[float, ...]  # each in TEMPERATURE_RANGE

    def to_dict(self) -> dict:
        """Return the plain mapping a checkpoint stores."""
        return {'min_points': list(self.min_points), 'temperatures': list(self.temperatures)}

    @classmethod
    def from_dict(cls, value: Mapping[str, Sequence]) -> 'TemperatureBands':
        """Build from the mapping :meth:`to_dict` returns (not checked: see the loader)."""
        return cls(tuple(int(e) for e in value['min_points']),
                   tuple(float(t) for t in value['temperatures']))

    def describe(self) -> str:
        """Return ``'1+: 1.007, 30+: 0.942, ...'``: each band's lowest points and temperature."""
        return ', '.join(f'{low}+: {value:.3f}'
                         for low, value in zip(self.min_points, self.temperatures))


@dataclass
class LoadedModel:
    """
    A model in ``eval()`` mode plus the metadata of its checkpoint.

    ``model`` is of any family of :mod:`pointcam_ros.model.registry`, or
    any model of the protocol of :mod:`pointcam_ros.model.protocol` when a
    caller builds a LoadedModel itself (``docs/models.md``).
    """

    model: nn.Module
    class_names: list[str]
    num_points: int
    normalization: str
    path: str
    info: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0  # calibration: probabilities = softmax(logits / temperature)
    #: Calibration by point count; when set, it replaces ``temperature``.
    temperature_bands: Optional[TemperatureBands] = None
    #: Feature statistics that tell objects unlike the training data (``novel`` rule).
    novelty: Optional[NoveltyStats] = None
    #: The bands as tensors, per device (made on first use: no copy to a GPU per scan).
    _band_tensors: dict = field(default_factory=dict, repr=False, compare=False)

    def temperatures(self, counts: torch.Tensor) -> torch.Tensor:
        """
        Return each object's temperature ``(K,)`` float32 for its points ``counts`` (K,) int.

        On the device of ``counts``; ``temperature`` for every object when
        the checkpoint has no :class:`TemperatureBands`.
        """
        bands = self.temperature_bands
        if bands is None:
            return torch.full(counts.shape, self.temperature, dtype=torch.float32,
                              device=counts.device)
        key = (counts.device, counts.dtype)
        if key not in self._band_tensors:
            self._band_tensors[key] = (
                torch.tensor(bands.min_points, dtype=counts.dtype, device=counts.device),
                torch.tensor(bands.temperatures, dtype=torch.float32, device=counts.device))
        edges, values = self._band_tensors[key]
        index = (torch.searchsorted(edges, counts, right=True) - 1).clamp_(min=0)
        return values[index]


def default_model_path() -> Path:
    """Path of the model shipped inside the package (same for pip and colcon installs)."""
    return Path(str(importlib.resources.files('pointcam_ros') / 'models' / DEFAULT_MODEL))


# --- validation ---------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or float of float64's finite range (10**400 is not)."""
    if not _is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_int(name: str, value: Any, low: int, high: int, reason: str) -> int:
    if not _is_int(value):
        raise _FieldError(name, f'must be an int, got {type(value).__name__} {value!r:.60}')
    if not low <= value <= high:
        raise _FieldError(name, f'is {value}, outside {low}..{high} ({reason})')
    return value


_WIDTH_GROUPS = {  # architecture key -> minimum number of layers
    'mlp1': 1, 'mlp2': 1, 'head': 0, 'tnet_conv': 1, 'tnet_fc': 0}
_BOOL_KEYS = ('input_transform', 'feature_transform', 'last_relu')


def _check_architecture(arch: Any) -> PointNetConfig:
    """Check ``architecture`` key by key (type, value, bounds); raise _FieldError."""
    if not isinstance(arch, dict):
        raise _FieldError('architecture', f'must be a dict, got {type(arch).__name__}')
    known = {f.name for f in fields(PointNetConfig)}
    for key in arch:
        if key not in known:
            raise _FieldError(f'architecture.{key}', f'is unknown to this pointcam_ros '
                              f"(known: {', '.join(sorted(known))}): upgrade pointcam_ros")
    if 'num_classes' not in arch:
        raise _FieldError('architecture.num_classes', 'is missing')
    values: dict[str, Any] = {}
    values['num_classes'] = _check_int('architecture.num_classes', arch['num_classes'],
                                       *CLASS_RANGE, 'the class count')
    if 'in_channels' in arch:
        values['in_channels'] = _check_int('architecture.in_channels', arch['in_channels'],
                                           3, MAX_IN_CHANNELS, 'x, y, z plus extra channels')
    for key, min_layers in _WIDTH_GROUPS.items():
        if key not in arch:
            continue
        name, widths = f'architecture.{key}', arch[key]
        if not isinstance(widths, (list, tuple)):
            raise _FieldError(name, f'must be a list of layer widths, got '
                              f'{type(widths).__name__}')
        if not min_layers <= len(widths) <= MAX_LAYERS:
            raise _FieldError(name, f'has {len(widths)} layers, outside {min_layers}..'
                              f'{MAX_LAYERS} (the layer count per block)')
        for i, width in enumerate(widths):
            _check_int(f'{name}[{i}]', width, 1, MAX_WIDTH, 'the width of one layer')
        values[key] = tuple(widths)
    if 'dropout' in arch:
        dropout = arch['dropout']
        if not _is_number(dropout) or not 0.0 <= dropout < 1.0:
            raise _FieldError('architecture.dropout',
                              f'must be a number in [0, 1), got {dropout!r:.60}')
        values['dropout'] = float(dropout)
    for key in _BOOL_KEYS:
        if key in arch:
            if not isinstance(arch[key], bool):
                raise _FieldError(f'architecture.{key}',
                                  f'must be true or false, got {arch[key]!r:.60}')
            values[key] = arch[key]
    try:
        config = PointNetConfig(**values)
    except ValueError as exc:  # pragma: no cover - every rule is checked above
        raise _FieldError('architecture', str(exc)) from exc
    count = parameter_count(config)
    if count > MAX_PARAMETERS:
        raise _FieldError('architecture', f'describes a model with {count:,} parameters, more '
                          f'than the limit of {MAX_PARAMETERS:,} (about '
                          f'{4 * MAX_PARAMETERS // 2**20} MiB of weights)')
    return config


def parameter_count(config: PointNetConfig) -> int:
    """
    Count the parameters of ``PointNetClassifier(config)`` without building it.

    Equals ``sum(p.numel() for p in model.parameters())`` (BatchNorm running
    statistics are buffers and not counted).
    """
    def conv_stack(widths: Sequence[int]) -> int:  # ConvBlock / LinearBlock: W, b, BN
        return sum(a * b + 3 * b for a, b in zip(widths, widths[1:]))

    def tnet(in_channels: int, k: int) -> int:
        last = (config.tnet_fc or config.tnet_conv)[-1]
        return (conv_stack([in_channels, *config.tnet_conv])
                + conv_stack([config.tnet_conv[-1], *config.tnet_fc]) + last * k * k + k * k)

    c = config
    total = conv_stack([c.in_channels, *c.mlp1]) + conv_stack([c.mlp1[-1], *c.mlp2])
    total += conv_stack([c.mlp2[-1], *c.head])
    total += (c.head or c.mlp2)[-1] * c.num_classes + c.num_classes
    if c.input_transform:
        total += tnet(c.in_channels, 3)
    if c.feature_transform:
        total += tnet(c.mlp1[-1], c.mlp1[-1])
    return total


def _check_widths(name: str, widths: Any, min_layers: int, high: int = MAX_WIDTH,
                  reason: str = 'the width of one layer') -> tuple[int, ...]:
    if not isinstance(widths, (list, tuple)):
        raise _FieldError(name, f'must be a list of layer widths, got {type(widths).__name__}')
    if not min_layers <= len(widths) <= MAX_LAYERS:
        raise _FieldError(name, f'has {len(widths)} layers, outside {min_layers}..'
                          f'{MAX_LAYERS} (the layer count per block)')
    return tuple(_check_int(f'{name}[{i}]', w, 1, high, reason) for i, w in enumerate(widths))


def _check_float(name: str, value: Any, low: float, high: float, reason: str) -> float:
    if not _is_finite_number(value) or not low <= value <= high:
        raise _FieldError(name, f'must be a number in [{low}, {high}] ({reason}), got '
                          f'{value!r:.60}')
    return float(value)


def _check_dropout(value: Any) -> float:
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise _FieldError('architecture.dropout', f'must be a number in [0, 1), got '
                          f'{value!r:.60}')
    return float(value)


def _check_radii(name: str, radii: Any) -> tuple[float, ...]:
    if not isinstance(radii, (list, tuple)) or not 1 <= len(radii) <= MAX_LAYERS:
        raise _FieldError(name, f'must be a list of 1..{MAX_LAYERS} radii, got {radii!r:.60}')
    out = tuple(_check_float(f'{name}[{i}]', r, 0.0, MAX_RADIUS, 'a ball radius')
                for i, r in enumerate(radii))
    if not all(r > 0 for r in out):
        raise _FieldError(name, f'must be > 0, got {list(out)}')
    return out


def _check_mlps(name: str, mlps: Any) -> tuple[tuple[int, ...], ...]:
    if not isinstance(mlps, (list, tuple)) or not 1 <= len(mlps) <= MAX_LAYERS:
        raise _FieldError(name, f'must be a list of 1..{MAX_LAYERS} lists of layer widths, '
                          f'got {mlps!r:.60}')
    return tuple(_check_widths(f'{name}[{i}]', m, 1) for i, m in enumerate(mlps))


#: Per family but PointNet: architecture key -> its check (name, value) -> checked value.
_FAMILY_FIELDS = {
    'dgcnn': {
        'k': lambda n, v: _check_int(n, v, 1, MAX_NEIGHBOURS, 'neighbours per point'),
        'edge': lambda n, v: _check_widths(n, v, 1),
        'emb_dims': lambda n, v: _check_int(n, v, 1, MAX_WIDTH, 'the width of one layer'),
        'head': lambda n, v: _check_widths(n, v, 0),
        'dropout': lambda n, v: _check_dropout(v),
        'negative_slope': lambda n, v: _check_float(n, v, 0.0, 0.999, 'a LeakyReLU slope'),
    },
    'pointnet2': {
        'npoints': lambda n, v: _check_widths(n, v, 1, MAX_CENTROIDS, 'centroids of a level'),
        'radii': _check_radii,
        'nsamples': lambda n, v: _check_widths(n, v, 1, MAX_CENTROIDS, 'points of a ball'),
        'mlps': _check_mlps,
        'global_mlp': lambda n, v: _check_widths(n, v, 1),
        'head': lambda n, v: _check_widths(n, v, 0),
        'dropout': lambda n, v: _check_dropout(v),
    },
}


def _check_family(value: Any) -> str:
    if not isinstance(value, str) or value not in FAMILIES:
        raise _FieldError('family', f'is {value!r:.60}, a model family unknown to this '
                          f"pointcam_ros (known: {', '.join(sorted(FAMILIES))}): upgrade "
                          'pointcam_ros, or load the weights with the code that defines it')
    return value


def _check_family_architecture(family: str, arch: Any) -> Any:
    """Check a DGCNN or PointNet++ ``architecture`` key by key; raise _FieldError."""
    if family == 'pointnet':
        return _check_architecture(arch)
    if not isinstance(arch, dict):
        raise _FieldError('architecture', f'must be a dict, got {type(arch).__name__}')
    checks = _FAMILY_FIELDS[family]
    known = {'num_classes', 'in_channels', *checks}
    for key in arch:
        if key not in known:
            raise _FieldError(f'architecture.{key}', f'is unknown to this pointcam_ros for '
                              f"family {family} (known: {', '.join(sorted(known))}): "
                              'upgrade pointcam_ros')
    if 'num_classes' not in arch:
        raise _FieldError('architecture.num_classes', 'is missing')
    values: dict[str, Any] = {'num_classes': _check_int(
        'architecture.num_classes', arch['num_classes'], *CLASS_RANGE, 'the class count')}
    if 'in_channels' in arch:
        values['in_channels'] = _check_int('architecture.in_channels', arch['in_channels'],
                                           3, MAX_IN_CHANNELS, 'x, y, z plus extra channels')
    for key, check in checks.items():
        if key in arch:
            values[key] = check(f'architecture.{key}', arch[key])
    try:
        config = FAMILIES[family].config(**values)
    except ValueError as exc:  # rules across fields, e.g. one radius per level
        raise _FieldError('architecture', str(exc)) from exc
    count = parameter_count_of(family, config)
    if count > MAX_PARAMETERS:
        raise _FieldError('architecture', f'describes a model with {count:,} parameters, more '
                          f'than the limit of {MAX_PARAMETERS:,} (about '
                          f'{4 * MAX_PARAMETERS // 2**20} MiB of weights)')
    return config


def _point_features(family: str, config: Any, num_points: int) -> list[tuple[int, str]]:
    """Values per object of the largest per-point tensors of a model at ``num_points``."""
    if family == 'pointnet':
        widest = max(config.mlp1 + config.mlp2 + (
            config.tnet_conv if config.input_transform or config.feature_transform else ()))
        return [(num_points * widest, f'{num_points} x the widest per-point layer {widest}')]
    if family == 'dgcnn':
        k = min(config.k, num_points)
        widest = max(2 * config.in_channels, *(2 * w for w in config.edge[:-1]), *config.edge)
        return [(num_points * k * widest,
                 f'{num_points} points x k {k} x the widest edge feature {widest}'),
                (num_points * num_points, f'{num_points} x {num_points} kNN distances'),
                (num_points * config.emb_dims, f'{num_points} x emb_dims {config.emb_dims}')]
    out, points = [], num_points
    for npoint, nsample, mlp in zip(config.npoints, config.nsamples, config.mlps):
        out.append((npoint * min(nsample, points) * max(mlp),
                    f'{npoint} centroids x nsample {nsample} x the widest layer {max(mlp)}'))
        out.append((npoint * points, f'{npoint} centroids x {points} ball-query distances'))
        points = npoint
    out.append((points * max(config.global_mlp), f'{points} centroids x the widest global '
                f'layer {max(config.global_mlp)}'))
    return out


def _check_class_names(names: Any, num_classes: int) -> list[str]:
    if not isinstance(names, (list, tuple)):
        raise _FieldError('class_names', f'must be a list of str, got {type(names).__name__}')
    if len(names) != num_classes:
        raise _FieldError('class_names', f'has {len(names)} names for a model with '
                          f'{num_classes} classes (architecture.num_classes)')
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise _FieldError(f'class_names[{i}]', f'must be a non-empty str, got {name!r:.60}')
    duplicates = sorted({n for n in names if names.count(n) > 1})  # at most 1000 names
    if duplicates:
        raise _FieldError('class_names', f'repeats {duplicates}: class names must be unique')
    return list(names)


def _shape(shape: Sequence[int]) -> str:
    return '(' + ', '.join(str(n) for n in shape) + (',)' if len(shape) == 1 else ')')


def _listed(keys: Sequence[str], shown: int = 3) -> str:
    more = len(keys) - shown
    return ', '.join(keys[:shown]) + (f' and {more} more' if more > 0 else '')


def _all_finite(value: torch.Tensor) -> bool:
    """Whether a floating-point tensor is free of NaN/Inf, without a temporary of its size."""
    if value.numel() == 0:
        return True
    low, high = torch.aminmax(value)  # NaN propagates into both; +-Inf is the min or max
    return math.isfinite(float(low)) and math.isfinite(float(high))


def _check_state_dict(state: Any, skeleton: Mapping[str, torch.Tensor],
                      field_name: str = 'state_dict', fix: Optional[str] = None) -> None:
    """
    Check ``state`` against ``skeleton``, the state dict of the stored architecture.

    Keys, then per entry its type, device, dtype (real floating point where the
    model has floats, else the model's own), shape and storage bytes, all from
    tensor metadata: a tensor that claims 1e13 values (an expanded view of one
    stored float) or has no data (meta device) is refused before any value is
    read. Equal shapes mean equal element counts, so the weights need at most
    8 bytes per value of the architecture (plus :data:`STORAGE_SLACK` per
    entry). Only then are floating-point values checked for NaN/Inf. Raises
    _FieldError. ``field_name`` and ``fix`` name the field and the remedy in
    the messages (the ``novelty`` tensors are checked the same way).
    """
    if not isinstance(state, dict):
        raise _FieldError(field_name, f'must be a dict of tensors, got {type(state).__name__}')
    for key in state:
        if not isinstance(key, str):
            raise _FieldError(field_name, f'has a non-str key {key!r:.60}')
    fix = fix or ("the weights do not match the stored architecture (field 'architecture'): "
                  're-save the model with pointcam_ros.model.checkpoint.save_checkpoint')
    missing = [key for key in skeleton if key not in state]
    if missing:
        raise _FieldError(field_name, f'lacks {len(missing)} tensors of the stored '
                          f'architecture ({_listed(missing)}): {fix}')
    extra = [key for key in state if key not in skeleton]
    if extra:
        raise _FieldError(f'{field_name}.{extra[0]}', 'is not a tensor of the stored '
                          f'architecture (unexpected: {_listed(extra)}): {fix}')
    float_names = ', '.join(str(d).replace('torch.', '') for d in FLOAT_DTYPES)
    for key, expected in skeleton.items():
        value, name = state[key], f'{field_name}.{key}'
        if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
            kind = value.layout if isinstance(value, torch.Tensor) else type(value).__name__
            raise _FieldError(name, f'must be a dense tensor, got {kind}')
        if value.is_meta or value.device.type != 'cpu':
            raise _FieldError(name, f'is a tensor on the {value.device.type} device, which '
                              'holds no values here: save the model with its real weights '
                              '(model.cpu()) via save_checkpoint')
        if expected.dtype.is_floating_point:
            if value.dtype not in FLOAT_DTYPES:
                raise _FieldError(name, f'must be a real floating-point tensor ({float_names})'
                                  f', got {str(value.dtype).replace("torch.", "")}: the '
                                  'weights are broken; re-save them with save_checkpoint')
        elif value.dtype != expected.dtype:
            raise _FieldError(name, f'must have dtype '
                              f'{str(expected.dtype).replace("torch.", "")}, got '
                              f'{str(value.dtype).replace("torch.", "")}: re-save the model '
                              'with save_checkpoint')
        if value.shape != expected.shape:
            raise _FieldError(name, f'has shape {_shape(value.shape)} ({value.numel():,} '
                              f'values), the stored architecture needs '
                              f'{_shape(expected.shape)}: {fix}')
        stored, allowed = value.untyped_storage().nbytes(), 8 * value.numel() + STORAGE_SLACK
        if stored > allowed:
            raise _FieldError(name, f'is a view of {stored:,} bytes of storage, more than the '
                              f'{allowed:,} its {value.numel():,} values can need: the file '
                              'carries data beyond its weights; re-save the model with '
                              'save_checkpoint (it writes each tensor on its own)')
    for key, value in state.items():  # every tensor is now a known, bounded size
        if value.is_floating_point() and not _all_finite(value):
            bad = int((~torch.isfinite(value)).sum())
            raise _FieldError(f'{field_name}.{key}', f'holds {bad} NaN/Inf values: the '
                              'values are broken (did training diverge?); use an earlier '
                              'checkpoint')


def _check_temperature(value: Any) -> float:
    low, high = TEMPERATURE_RANGE
    if not _is_finite_number(value) or not low <= value <= high:
        raise _FieldError('temperature', f'must be a finite number in [{low}, {high}] '
                          f'(confidences are softmax(logits / temperature), 1.0 = '
                          f'uncalibrated), got {value!r:.60}: calibrate the model again '
                          '(pointcam_ros.learn.train.calibrate) or set it to 1.0')
    return float(value)


def _check_temperature_bands(value: Any) -> Optional[TemperatureBands]:
    """Check the optional ``temperature_bands`` field; None when absent."""
    if value is None:
        return None
    how = ('a mapping {min_points: [ascending ints >= 1], temperatures: [one each]} of at '
           f'most {MAX_TEMPERATURE_BANDS} bands')
    if (not isinstance(value, dict) or set(value) != {'min_points', 'temperatures'}
            or not isinstance(value['min_points'], (list, tuple))
            or not isinstance(value['temperatures'], (list, tuple))):
        raise _FieldError('temperature_bands', f'must be {how}, got {value!r:.80}')
    edges, temperatures = list(value['min_points']), list(value['temperatures'])
    if (not 1 <= len(edges) <= MAX_TEMPERATURE_BANDS or len(temperatures) != len(edges)
            or not all(_is_int(e) and 1 <= e <= 10 ** 9 for e in edges)
            or any(b <= a for a, b in zip(edges, edges[1:]))):
        raise _FieldError('temperature_bands', f'must be {how}, got {value!r:.80}')
    try:
        checked = tuple(_check_temperature(t) for t in temperatures)
    except _FieldError as exc:
        raise _FieldError('temperature_bands', str(exc).replace("field 'temperature' ", '')
                          ) from exc
    return TemperatureBands(tuple(int(e) for e in edges), checked)


class _Checked(NamedTuple):
    """The fields of a payload that passed :func:`_check_payload`."""

    config: Any  # the family's config (PointNetConfig, DGCNNConfig, PointNet2Config)
    class_names: list[str]
    num_points: int
    normalization: str
    info: dict[str, Any]
    temperature: float
    family: str = DEFAULT_FAMILY
    temperature_bands: Optional[TemperatureBands] = None
    novelty_threshold: Optional[float] = None


def _check_payload(payload: dict) -> _Checked:
    """
    Check every metadata field; raise _FieldError for the first bad one.

    The weights are checked apart, by :func:`_check_state_dict`, against the
    model that the checked architecture describes.
    """
    for key in ('architecture', 'class_names', 'num_points', 'normalization', 'state_dict'):
        if key not in payload:
            raise _FieldError(key, 'is missing')
    family = _check_family(payload.get('family', DEFAULT_FAMILY))
    config = _check_family_architecture(family, payload['architecture'])
    class_names = _check_class_names(payload['class_names'], config.num_classes)
    num_points = _check_int('num_points', payload['num_points'], *NUM_POINTS_RANGE,
                            'points sampled per object; memory grows with it')
    for values, what in _point_features(family, config, num_points):
        if values > MAX_POINT_FEATURES:
            raise _FieldError('num_points', f'{what} = {values:,} values per object, more '
                              f'than {MAX_POINT_FEATURES:,} (64 MiB of float32 per object '
                              'and layer)')
    normalization = payload['normalization']
    if normalization not in NORMALIZATIONS:
        raise _FieldError('normalization', f'must be one of {NORMALIZATIONS}, got '
                          f'{normalization!r:.60}')
    info = payload.get('info', {})
    if not isinstance(info, dict) or not all(isinstance(k, str) for k in info):
        raise _FieldError('info', f'must be a dict with str keys, got {info!r:.60}')
    temperature = _check_temperature(payload.get('temperature', 1.0))
    bands = _check_temperature_bands(payload.get('temperature_bands'))
    return _Checked(config, class_names, num_points, normalization, dict(info), temperature,
                    family, bands, _check_novelty_threshold(payload.get('novelty')))


def _check_novelty_threshold(value: Any) -> Optional[float]:
    """Check the optional ``novelty`` field but its tensors; its threshold, None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {*TENSOR_NAMES, 'threshold'}:
        keys = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        raise _FieldError('novelty', f'must be a mapping of {", ".join(TENSOR_NAMES)} '
                          f'(tensors) and threshold (a number), got {keys!s:.80}: fit it '
                          'again (pointcam_novelty) or drop it')
    threshold = value['threshold']
    if not _is_finite_number(threshold):
        raise _FieldError('novelty.threshold', f'must be a finite number, got '
                          f'{threshold!r:.60}: fit it again (pointcam_novelty)')
    return float(threshold)


def _check_novelty(value: dict, model: nn.Module, num_classes: int) -> NoveltyStats:
    """
    Check the ``novelty`` tensors against ``model`` (as the weights are checked); the stats.

    The model needs a Linear ``classifier`` of input width D; the tensors
    must be (C, D), (D, D), (D,) and (D, D), real floating point, finite,
    and both (D, D) matrices precision matrices (:func:`_not_a_precision`).
    """
    width = penultimate_width(model)
    if width is None:
        raise _FieldError('novelty', f'needs a model whose logits are classifier(head(pooled)) '
                          f'with a Linear classifier (its input is what is scored); a '
                          f'{type(model).__name__} is not one: drop it')
    if width > MAX_NOVELTY_WIDTH:
        raise _FieldError('novelty', f'needs (D, D) matrices for the {width} inputs of the '
                          f'classifier, more than {MAX_NOVELTY_WIDTH} (the statistics would '
                          'outgrow the file and memory bounds): drop it')
    skeleton = {'class_means': torch.empty(num_classes, width),
                'precision': torch.empty(width, width), 'mean': torch.empty(width),
                'background_precision': torch.empty(width, width)}
    tensors = {name: value[name] for name in TENSOR_NAMES}
    _check_state_dict(tensors, skeleton, field_name='novelty',
                      fix='the statistics do not fit the model: fit them again for this '
                      'model (pointcam_novelty)')
    tensors = {name: tensor.to(torch.float64) for name, tensor in tensors.items()}
    for name in ('precision', 'background_precision'):
        problem = _not_a_precision(tensors[name])
        if problem:
            raise _FieldError(f'novelty.{name}', f'{problem}: it is not the inverse of a '
                              'covariance; fit the statistics again (pointcam_novelty)')
    return NoveltyStats(*(tensors[name] for name in TENSOR_NAMES),
                        threshold=float(value['threshold']))


def _not_a_precision(matrix: torch.Tensor) -> str:
    """
    Why a (D, D) float64 ``matrix`` is no precision matrix, or '' when it is one.

    A precision matrix (an inverse covariance) is symmetric (to
    :data:`PRECISION_ASYMMETRY` of its largest entry; ``pointcam_novelty``
    writes exactly symmetric ones) and positive definite (its symmetric
    part has a Cholesky factor), so every Mahalanobis distance it gives is
    positive.
    """
    scale = float(matrix.abs().max())
    asymmetry = float((matrix - matrix.T).abs().max())
    if asymmetry > PRECISION_ASYMMETRY * scale:
        return f'is not symmetric (entries differ from their transposes by up to {asymmetry:.3g})'
    if int(torch.linalg.cholesky_ex((matrix + matrix.T) / 2).info) != 0:  # reads one triangle
        return 'is not positive definite'
    return ''


# --- save and load ------------------------------------------------------------------------

def save_checkpoint(path: PathLike, model: nn.Module, class_names: Sequence[str],
                    num_points: int, normalization: str,
                    info: Optional[Mapping[str, Any]] = None,
                    temperature: float = 1.0,
                    temperature_bands: Optional[TemperatureBands] = None,
                    novelty: Optional[NoveltyStats] = None) -> None:
    """
    Write a checkpoint atomically (temporary file, then rename).

    ``temperature`` (in :data:`TEMPERATURE_RANGE`) calibrates the model's
    confidences: ``softmax(logits / temperature)`` (1.0 = uncalibrated);
    ``temperature_bands``, when given, calibrates them by each object's
    point count instead (:class:`TemperatureBands`); ``novelty``, when
    given, lets the scene pipeline tell objects unlike the training data
    (:mod:`pointcam_ros.model.novelty`). Raises ValueError if the metadata
    does not fit the model or breaks a bound that :func:`load_checkpoint`
    enforces (so no unloadable file is written), if the weights hold
    NaN/Inf, or if ``model`` is not of a registered family (a checkpoint
    holds no code). The family is stored by name.
    """
    try:
        _check_temperature(temperature)
    except _FieldError as exc:
        raise ValueError(f'cannot save {path}: {exc}') from exc
    family = family_of(model)
    if len(class_names) != model.config.num_classes:
        raise ValueError(f'{len(class_names)} class names for a model with '
                         f'{model.config.num_classes} classes')
    if normalization not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {normalization}')
    payload = {
        'format': FORMAT, 'format_version': FORMAT_VERSION, 'family': family,
        'architecture': model.config.to_dict(), 'class_names': list(class_names),
        'num_points': int(num_points), 'normalization': normalization,
        'state_dict': {k: v.detach().cpu() for k, v in model.state_dict().items()},
        'info': dict(info or {}), 'temperature': float(temperature),
    }
    if temperature_bands is not None:
        payload['temperature_bands'] = temperature_bands.to_dict()
    if novelty is not None:
        payload['novelty'] = {**{name: tensor.detach().cpu().to(torch.float64)
                                 for name, tensor in novelty.tensors().items()},
                              'threshold': float(novelty.threshold)}
    try:
        _check_payload(payload)
        _check_state_dict(payload['state_dict'], model.state_dict())
        if novelty is not None:
            _check_novelty(payload['novelty'], model, model.config.num_classes)
    except _FieldError as exc:
        raise ValueError(f'cannot save {path}: {exc}') from exc
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        try:  # the file bounds load_checkpoint enforces first (size, records, pickle)
            _check_file(tmp)
        except CheckpointError as exc:
            raise ValueError(f'cannot save {path}: load_checkpoint would refuse the file '
                             f'({exc}); save the weights in float32 (model.float()) or a '
                             'smaller info') from exc


#: Pickle opcodes that import or call something (a plain-data pickle has none).
_CODE_OPCODES = frozenset({'GLOBAL', 'STACK_GLOBAL', 'INST', 'OBJ', 'REDUCE', 'NEWOBJ',
                           'NEWOBJ_EX', 'BUILD', 'EXT1', 'EXT2', 'EXT4'})


def _pickle_kind(path: Path) -> str:
    """
    Classify a file that is not a zip without unpickling it (``pickletools`` only parses).

    Returns ``'code'`` (a complete pickle that imports or calls something),
    ``'plain'`` (a complete pickle of plain data) or ``'corrupt'``.
    """
    has_code = False
    try:
        with open(path, 'rb') as stream:
            for opcode, _, _ in pickletools.genops(stream):
                has_code = has_code or opcode.name in _CODE_OPCODES
                if opcode.name == 'STOP':
                    return 'code' if has_code else 'plain'
    except Exception:  # noqa: B902 - any parse failure means "not a whole pickle"
        return 'corrupt'
    return 'corrupt'


_EOCD = struct.Struct('<4sHHHHIIH')  # end of central directory record
_ZIP64_LOCATOR = struct.Struct('<4sIQI')
_ZIP64_EOCD = struct.Struct('<4sQHHIIQQQQ')


def _zip_directory(path: Path, size: int) -> tuple[int, int]:
    """
    Return (records, central directory bytes) of a zip from its end records alone.

    Both the classic and the zip64 end record are read, as zip readers trust
    either; each count is the larger of the two. Raises ValueError when the
    records are missing or point outside the file.
    """
    with open(path, 'rb') as stream:
        start = max(0, size - _EOCD.size - 0xFFFF)
        stream.seek(start)
        tail = stream.read()
        at = tail.rfind(b'PK\x05\x06')
        if at < 0 or at + _EOCD.size > len(tail):
            raise ValueError('no zip end record')
        _, _, _, _, records, directory, _, _ = _EOCD.unpack_from(tail, at)
        if at >= _ZIP64_LOCATOR.size and tail[at - _ZIP64_LOCATOR.size:].startswith(
                b'PK\x06\x07'):
            _, _, offset, _ = _ZIP64_LOCATOR.unpack_from(tail, at - _ZIP64_LOCATOR.size)
            if offset + _ZIP64_EOCD.size > size:
                raise ValueError('the zip64 end record lies outside the file')
            stream.seek(offset)
            record = stream.read(_ZIP64_EOCD.size)
            if not record.startswith(b'PK\x06\x06'):
                raise ValueError('no zip64 end record where its locator points')
            values = _ZIP64_EOCD.unpack(record)
            records, directory = max(records, values[7]), max(directory, values[8])
    return records, directory


def _check_file(path: Path) -> bool:
    """
    Bound a model file before torch reads it; return whether it is a zip (torch.save).

    The file is at most :data:`MAX_FILE_BYTES`; a zip has at most
    :data:`MAX_RECORDS` uncompressed records that lie inside the file, and
    every record other than tensor data (which is memory-mapped, not read) is
    at most :data:`MAX_PICKLE_BYTES`, as is any file that is not a zip.
    Raises :class:`CheckpointError` saying which bound and what to do.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(
            f'model file {path} is {size:,} bytes, more than the {MAX_FILE_BYTES:,} bytes '
            f'that the largest allowed model ({MAX_PARAMETERS:,} float64 parameters plus '
            'metadata) needs, so it is not read: check model_path (a data set or a bag?)')
    corrupt = (f'{path} is not a readable PyTorch file (truncated or corrupt?): copy it '
               'again or re-save it with pointcam_ros.model.checkpoint.save_checkpoint')
    if not zipfile.is_zipfile(path):
        if size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f'{corrupt}. It is not a zip-format torch.save file, and at {size:,} bytes '
                f'too large to read as a legacy torch.save file or pickle (limit '
                f'{MAX_PICKLE_BYTES:,} bytes)')
        return False
    try:
        records, directory = _zip_directory(path, size)
        if records > MAX_RECORDS or directory > 512 * MAX_RECORDS:
            raise ValueError(f'the zip claims {records:,} records in a directory of '
                             f'{directory:,} bytes, more than the {MAX_RECORDS:,} records '
                             '(one per tensor) that a checkpoint needs')
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ValueError(f'record {info.filename} is compressed; torch.save '
                                     'stores records uncompressed')
                if (info.file_size != info.compress_size
                        or info.header_offset + info.compress_size > size):
                    raise ValueError(f'record {info.filename} claims {info.file_size:,} '
                                     'bytes that are not in the file')
                if '/data/' not in info.filename and info.file_size > MAX_PICKLE_BYTES:
                    raise ValueError(f'record {info.filename} has {info.file_size:,} bytes, '
                                     f'more than the {MAX_PICKLE_BYTES:,} of the metadata '
                                     'of any checkpoint')
    except (ValueError, OSError, zipfile.BadZipFile, struct.error) as exc:
        raise CheckpointError(f'{corrupt}. Detail: {exc}') from exc
    return True


def _read(path: Path) -> Any:
    if path.is_dir():
        raise CheckpointError(f'model file {path} is a directory, not a checkpoint file: set '
                              'model_path to the .pt file (or leave it empty for the shipped '
                              'default model)')
    if not path.exists():
        raise CheckpointError(f'model file {path} does not exist: check model_path, or leave '
                              'it empty to use the shipped default model')
    if not path.is_file():
        raise CheckpointError(f'model file {path} is not a regular file: set model_path to a '
                              '.pt file')
    if path.stat().st_size == 0:
        raise CheckpointError(f'model file {path} is empty (0 bytes): the copy or download '
                              'did not finish; copy it again')
    is_zip = _check_file(path)
    corrupt = (f'{path} is not a readable PyTorch file (truncated or corrupt?): copy it again '
               'or re-save it with pointcam_ros.model.checkpoint.save_checkpoint')
    code = (f'{path} holds code or objects other than tensors and plain data, so it is not '
            'loaded (unpickling it could run code): re-save the weights as a state_dict with '
            'pointcam_ros.model.checkpoint.save_checkpoint')
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols on stderr before refusing; the error says it.
            warnings.filterwarnings('ignore', message='.*pickle protocol', category=UserWarning)
            # mmap: tensor data stays in the file until _check_state_dict has bounded it.
            return torch.load(path, map_location='cpu', weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        detail = str(exc.__context__ or exc).splitlines()[0][:200]
        if zipfile.is_zipfile(path):
            if 'global' in str(exc).lower():
                raise CheckpointError(f'{code}. Detail: {detail}') from exc
            raise CheckpointError(f'{corrupt}. Detail: {detail}') from exc
        kind = _pickle_kind(path)
        if kind == 'code':
            raise CheckpointError(f'{code}. It is a plain pickle, not a torch.save file. '
                                  f'Detail: {detail}') from exc
        if kind == 'plain':
            raise CheckpointError(f'{path} is a plain Python pickle, not a torch.save file: '
                                  'load it yourself and re-save it with '
                                  'pointcam_ros.model.checkpoint.save_checkpoint') from exc
        raise CheckpointError(f'{corrupt}. Detail: {detail}') from exc
    except PermissionError as exc:
        raise CheckpointError(f'model file {path} cannot be read (permission denied): '
                              'check its permissions') from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, LookupError,
            TypeError, AttributeError, AssertionError, ArithmeticError, struct.error,
            MemoryError) as exc:
        # A damaged legacy (non-zip) file reaches torch's unpickler, which fails in many ways
        # (KeyError, IndexError, TypeError, AssertionError, or MemoryError for a damaged
        # length under an address-space limit): all of them mean the same thing.
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CheckpointError(f'{corrupt}. Detail: {detail}') from exc


def load_checkpoint(path: Optional[PathLike] = None,
                    device: Union[str, torch.device] = 'cpu') -> LoadedModel:
    """
    Load a pointcam_ros checkpoint (default: the shipped model) onto ``device``.

    Raises :class:`CheckpointError`, naming the file and the field, if the
    file is missing, a directory, empty, corrupt, holds code, is of another
    format or version or of a model family it does not know, breaks a bound
    (widths, layers, parameters, classes, ``num_points``), holds NaN/Inf
    weights, or its weights (or ``novelty`` statistics) do not fit its
    architecture.
    """
    path = default_model_path() if path is None or str(path) == '' else Path(path)
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(
            f"{path} is not a pointcam_ros checkpoint (field 'format' is not {FORMAT!r}). "
            'For a state dict of fxia22/pointnet.pytorch, yanx27/Pointnet_Pointnet2_pytorch '
            '(PointNet, PointNet++ SSG) or WangYueFt/dgcnn call '
            'pointcam_ros.model.checkpoint.import_reference_state_dict(state_dict, '
            'class_names), then save_checkpoint(path, model, class_names, num_points, '
            'normalization).')
    version = payload.get('format_version')
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: field 'format_version' is {version!r:.40}; this "
                              f'pointcam_ros reads version {FORMAT_VERSION}: upgrade it')
    try:
        checked = _check_payload(payload)
        # The model of the checked architecture (bounded by MAX_PARAMETERS) is the skeleton
        # the weights must fit, compared from their metadata before any value is read.
        model = build_from_config(checked.family, checked.config)
        _check_state_dict(payload['state_dict'], model.state_dict())
        novelty = (None if checked.novelty_threshold is None else
                   _check_novelty(payload['novelty'], model, checked.config.num_classes))
    except _FieldError as exc:
        raise CheckpointError(f'{path}: {exc}') from exc
    try:
        model.load_state_dict(payload['state_dict'], strict=True)
    except RuntimeError as exc:
        problems = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        more = len(problems) - 3
        shown = '; '.join(problems[:3]) + (f' (and {more} more)' if more > 0 else '')
        raise CheckpointError(f"{path}: field 'state_dict': weights do not match the stored "
                              f'architecture: {shown or exc}') from exc
    model.to(device).eval()
    return LoadedModel(model=model, class_names=checked.class_names,
                       num_points=checked.num_points, normalization=checked.normalization,
                       path=str(path), info=checked.info, temperature=checked.temperature,
                       temperature_bands=checked.temperature_bands, novelty=novelty)


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
                                class_names: Sequence[str], **sizes: Any) -> nn.Module:
    """
    Build a model from a state dict of a reference implementation; the family from its keys.

    ``feat.conv1`` ...: PointNet, below. ``conv5.0`` / ``linear3`` ...:
    WangYueFt/dgcnn ``DGCNN`` (:func:`import_dgcnn_state_dict`). ``sa1.mlp_convs``
    ...: yanx27 ``pointnet2_cls_ssg.get_model`` (:func:`import_pointnet2_state_dict`).
    ``sizes`` are the hyper-parameters the weights do not show (DGCNN's ``k``,
    PointNet++'s ``npoints``, ``radii``, ``nsamples``; ``dropout``).

    PointNet: a fxia22 ``PointNetCls`` or yanx27 ``get_model`` state dict.

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
    if any(key.startswith('sa1.') for key in state_dict):
        return import_pointnet2_state_dict(state_dict, class_names, **sizes)
    if 'conv5.0.weight' in state_dict or 'linear3.weight' in state_dict:
        return import_dgcnn_state_dict(state_dict, class_names, **sizes)
    if sizes:
        raise CheckpointError(f'sizes {sorted(sizes)} apply to DGCNN and PointNet++ state '
                              'dicts; a PointNet state dict shows all of its sizes')
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


def _numbered(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted numbers of the keys matching ``pattern`` (one group of digits)."""
    found = sorted({int(m.group(1)) for key in state_dict
                    if (m := re.fullmatch(pattern, key))})
    if found and found != list(range(found[0], found[0] + len(found))):
        raise CheckpointError(f'layers {found} of {pattern!r} are not numbered in sequence')
    return found


def _load_mapped(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                 mapping: Sequence[tuple[str, str]], what: str) -> nn.Module:
    """Rename ``state_dict`` by ``(source prefix, model prefix)`` pairs; load strictly."""
    mapped = {}
    for key, value in state_dict.items():
        for src, dst in mapping:
            if key.startswith(src + '.'):
                mapped[dst + key[len(src):]] = value
                break
        else:
            raise CheckpointError(f"unexpected key '{key}' in the {what} state dict")
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f'state dict does not fit a {what} classifier: {exc}') from exc
    return model.eval()


def import_dgcnn_state_dict(state_dict: Mapping[str, torch.Tensor],
                            class_names: Sequence[str], *, k: int = 20,
                            dropout: float = 0.5) -> DGCNNClassifier:
    """
    Build a :class:`~pointcam_ros.model.dgcnn.DGCNNClassifier` from a WangYueFt ``DGCNN``.

    Keys (``module.`` prefixes of DataParallel stripped): EdgeConvs
    ``conv1`` .. ``conv4`` (``Sequential(Conv2d, BatchNorm2d, LeakyReLU)``),
    embedding ``conv5`` (Conv1d, BatchNorm1d), head ``linear1`` (no bias),
    ``bn6``, ``linear2``, ``bn7`` and the classifier ``linear3``.
    ``bn1`` .. ``bn5`` are the same modules as ``conv1.1`` .. ``conv5.1``
    (registered twice there), so they must equal them. Widths and input
    channels are read from the tensors; ``k`` (their ``--k``) and ``dropout``
    are not in the weights. Raises :class:`CheckpointError` on any mismatch.
    """
    convs = _numbered(state_dict, r'conv(\d+)\.0\.weight')
    linears = _numbered(state_dict, r'linear(\d+)\.weight')
    if len(convs) < 2 or convs[0] != 1 or not linears or linears[0] != 1:
        raise CheckpointError('not a WangYueFt/dgcnn DGCNN state dict: missing conv1.0, '
                              'conv2.0 ... and linear1 ...')
    last = convs[-1]  # the embedding conv
    classes = int(state_dict[f'linear{linears[-1]}.weight'].shape[0])
    if classes != len(class_names):
        raise CheckpointError(f'the state dict has {classes} classes but '
                              f'{len(class_names)} class names were given')
    state = dict(state_dict)
    for i in convs:  # bn<i> is conv<i>.1 under a second name
        for key in [key for key in state if key.startswith(f'bn{i}.')]:
            twin = f'conv{i}.1.' + key[len(f'bn{i}.'):]
            if twin not in state:
                state[twin] = state[key]
            elif not torch.equal(state[twin], state[key]):
                raise CheckpointError(f"'{key}' differs from '{twin}', which is the same "
                                      'module in WangYueFt/dgcnn: the state dict is broken')
            del state[key]
    try:
        config = DGCNNConfig(
            num_classes=classes,
            in_channels=int(state_dict['conv1.0.weight'].shape[1]) // 2, k=k,
            edge=tuple(int(state_dict[f'conv{i}.0.weight'].shape[0]) for i in convs[:-1]),
            emb_dims=int(state_dict[f'conv{last}.0.weight'].shape[0]),
            head=tuple(int(state_dict[f'linear{j}.weight'].shape[0]) for j in linears[:-1]),
            dropout=dropout)
    except ValueError as exc:
        raise CheckpointError(f'not a usable DGCNN state dict: {exc}') from exc
    mapping = [(f'conv{i}.0', f'edge_convs.{i - 1}.conv') for i in convs[:-1]]
    mapping += [(f'conv{i}.1', f'edge_convs.{i - 1}.bn') for i in convs[:-1]]
    mapping += [(f'conv{last}.0', 'embed.conv'), (f'conv{last}.1', 'embed.bn')]
    mapping += [(f'linear{j}', f'head.{j - 1}.linear') for j in linears[:-1]]
    mapping += [(f'bn{last + j}', f'head.{j - 1}.bn') for j in linears[:-1]]
    mapping += [(f'linear{linears[-1]}', 'classifier')]
    return _load_mapped(DGCNNClassifier(config), state, mapping, 'DGCNN')


def import_pointnet2_state_dict(state_dict: Mapping[str, torch.Tensor],
                                class_names: Sequence[str], *,
                                npoints: Sequence[int] = (512, 128),
                                radii: Sequence[float] = (0.2, 0.4),
                                nsamples: Sequence[int] = (32, 64),
                                dropout: float = 0.4) -> PointNet2Classifier:
    """
    Build a :class:`~pointcam_ros.model.pointnet2.PointNet2Classifier` from yanx27's SSG model.

    Keys of ``pointnet2_cls_ssg.get_model`` (a training checkpoint's
    ``model_state_dict`` is unwrapped by :func:`import_reference_state_dict`):
    set abstractions ``sa1`` .. ``sa3`` with ``mlp_convs.{i}`` (Conv2d 1x1)
    and ``mlp_bns.{i}`` (BatchNorm2d), the last one grouping all; head
    ``fc1``, ``bn1``, ``fc2``, ``bn2`` and the classifier ``fc3``. Widths and
    input channels (3, or 6 with normals) are read from the tensors; the
    sampling sizes are not in the weights: the defaults are yanx27's (N =
    1024 points in the unit sphere). The model returns ``fc3``'s logits
    (yanx27 returns their log-softmax: same arg-max and probabilities).
    """
    levels = _numbered(state_dict, r'sa(\d+)\.mlp_convs\.0\.weight')
    fcs = _numbered(state_dict, r'fc(\d+)\.weight')
    if len(levels) < 2 or levels[0] != 1 or not fcs or fcs[0] != 1:
        raise CheckpointError('not a yanx27 pointnet2_cls_ssg state dict: missing '
                              'sa1.mlp_convs.0, sa2 ... and fc1 ...')
    classes = int(state_dict[f'fc{fcs[-1]}.weight'].shape[0])
    if classes != len(class_names):
        raise CheckpointError(f'the state dict has {classes} classes but '
                              f'{len(class_names)} class names were given')

    def widths(level: int) -> tuple[int, ...]:
        layers = _numbered(state_dict, rf'sa{level}\.mlp_convs\.(\d+)\.weight')
        return tuple(int(state_dict[f'sa{level}.mlp_convs.{j}.weight'].shape[0])
                     for j in layers)

    try:
        config = PointNet2Config(
            num_classes=classes,
            in_channels=int(state_dict['sa1.mlp_convs.0.weight'].shape[1]),
            npoints=tuple(npoints), radii=tuple(radii), nsamples=tuple(nsamples),
            mlps=tuple(widths(i) for i in levels[:-1]), global_mlp=widths(levels[-1]),
            head=tuple(int(state_dict[f'fc{j}.weight'].shape[0]) for j in fcs[:-1]),
            dropout=dropout)
    except ValueError as exc:
        raise CheckpointError(f'not a usable PointNet++ state dict: {exc}') from exc
    mapping = [(f'sa{i}', f'sa.{i - 1}') for i in levels]
    mapping += [(f'fc{j}', f'head.{j - 1}.linear') for j in fcs[:-1]]
    mapping += [(f'bn{j}', f'head.{j - 1}.bn') for j in fcs[:-1]]
    mapping += [(f'fc{fcs[-1]}', 'classifier')]
    return _load_mapped(PointNet2Classifier(config), state_dict, mapping, 'PointNet++')
