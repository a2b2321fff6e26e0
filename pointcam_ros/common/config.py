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
Typed configuration of the scene pipeline; its field names are the node's parameters.

YAML files use the ROS 2 parameter layout (``/**: ros__parameters: {...}``)
so the same file configures ``pointcam_node`` (``--params-file``),
``pointcam_bag`` and :class:`~pointcam_ros.perception.pipeline.ScenePipeline`; a flat
mapping is accepted too.
"""

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Union

import yaml

MODES = ('scene', 'object')
EXPLAINERS = ('gradcam', 'gradcam++', 'xgradcam', 'hirescam', 'occlusion', 'pointshift')


@dataclass(frozen=True)
class PipelineConfig:
    """Every knob of :class:`ScenePipeline`, with its default and meaning."""

    mode: str = 'scene'  # 'scene': segment a scan; 'object': the cloud is one object
    model_path: str = ''  # checkpoint (.pt); '' = the model shipped with the package
    device: str = 'auto'  # 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N'
    method: str = 'gradcam'  # any of EXPLAINERS
    target_class: str = ''  # class to explain; '' = each object's predicted class
    min_confidence: float = 0.0  # below it an object is shown as "unknown (car 0.41)"
    cpu_threads: int = 0  # torch threads on the CPU; 0 = torch's default (all cores)
    min_range: float = 1.0  # m; closer points (the robot itself) are ignored
    max_range: float = 60.0  # m; farther points are ignored
    min_z: float = -4.0  # m, sensor frame; region of interest in height
    max_z: float = 4.0
    ground_threshold: float = 0.15  # m above the fitted ground plane still counted as ground
    cluster_tolerance: float = 0.5  # m; horizontal voxel size of the clustering
    cluster_z_tolerance: float = 1.0  # m; vertical voxel size (rings are far apart)
    min_cluster_points: int = 15  # smaller clusters are not classified
    max_cluster_points: int = 30000  # larger clusters (buildings) are not classified
    min_object_size: float = 0.2  # m, longest extent along x, y or z
    max_object_size: float = 15.0  # m
    max_input_points: int = 2_000_000  # larger scans are rejected as malformed
    seed: int = 0  # seed of the per-object resampling (results are reproducible)

    def __post_init__(self):
        """Validate every field; raise ValueError naming the bad one and the allowed values."""
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {self.mode!r}')
        if self.method not in EXPLAINERS:
            raise ValueError(f'method must be one of {EXPLAINERS}, got {self.method!r}')
        if not (self.device in ('auto', 'cpu', 'cuda') or self.device.startswith('cuda:')):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', "
                             f'got {self.device!r}')
        if not 0 <= self.min_range < self.max_range:
            raise ValueError(f'need 0 <= min_range < max_range, got {self.min_range}, '
                             f'{self.max_range}')
        if not self.min_z < self.max_z:
            raise ValueError(f'need min_z < max_z, got {self.min_z}, {self.max_z}')
        for name in ('ground_threshold', 'cluster_tolerance', 'cluster_z_tolerance',
                     'min_object_size'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('cluster_tolerance', 'cluster_z_tolerance'):
            if not 0.05 <= getattr(self, name) <= 5.0:
                raise ValueError(f'{name} must be in [0.05, 5] m, got {getattr(self, name)}')
        if not 1 <= self.min_cluster_points <= self.max_cluster_points:
            raise ValueError('need 1 <= min_cluster_points <= max_cluster_points, got '
                             f'{self.min_cluster_points}, {self.max_cluster_points}')
        if not self.min_object_size < self.max_object_size:
            raise ValueError('need min_object_size < max_object_size')
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f'min_confidence must be in [0, 1], got {self.min_confidence}')
        if not 0 <= self.cpu_threads <= 256:
            raise ValueError(f'cpu_threads must be in [0, 256], got {self.cpu_threads}')
        if self.max_input_points < 1:
            raise ValueError('max_input_points must be >= 1')

    def replace(self, **changes: Any) -> 'PipelineConfig':
        """Return a validated copy with ``changes`` applied."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain mapping of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'PipelineConfig':
        """Build from a mapping; unknown keys raise ValueError, types are coerced."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f'unknown pipeline parameters {unknown}; known: {sorted(known)}')
        coerced = {}
        for name, value in values.items():
            kind = type(known[name].default)
            try:
                if kind is bool:
                    coerced[name] = bool(value)
                elif kind is int and isinstance(value, float) and not value.is_integer():
                    raise ValueError('not an integer')
                else:
                    coerced[name] = kind(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f'{name} must be {kind.__name__}, got {value!r}') from exc
        return cls(**coerced)

    @classmethod
    def from_yaml(cls, path: Union[str, Path], node_name: str = '/**') -> 'PipelineConfig':
        """Load from a YAML file (ROS 2 params layout or flat); extra node keys ignored."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        section = data
        for key in (node_name, '/**', 'pointcam'):
            if isinstance(data.get(key), dict) and 'ros__parameters' in data[key]:
                section = data[key]['ros__parameters']
                break
        known = {f.name for f in fields(cls)}
        return cls.from_dict({k: v for k, v in section.items() if k in known})

    def to_yaml(self, path: Union[str, Path]) -> None:
        """Write as a ROS 2 parameter file (``/**: ros__parameters:``)."""
        Path(path).write_text(yaml.safe_dump({'/**': {'ros__parameters': self.to_dict()}},
                                             sort_keys=False))


def output_prefix(topic: str, several: bool) -> str:
    """
    Output namespace (relative) for an input topic, shared by the node and the bag tool.

    One input: ``pointcam``; several: ``pointcam/<topic with / as _>``.
    """
    if not several:
        return 'pointcam'
    return 'pointcam/' + topic.strip('/').replace('/', '_').replace('~', '')
