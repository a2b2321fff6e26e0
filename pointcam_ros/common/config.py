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
Typed configuration of the scene pipeline: the one schema of the node's parameters.

Every field of :class:`PipelineConfig` carries its description, unit and
allowed range (:class:`Param`); :data:`NODE_PARAMS` adds the parameters that
only ``pointcam_node`` has. One validator (``PipelineConfig.__post_init__``)
serves the node, ``pointcam_bag`` and the Python API; the node builds its
``ParameterDescriptor``s, ``--help`` text, the table in ``docs/parameters.md``
(:func:`markdown_table`) and ``config/pointcam.yaml`` (:func:`params_yaml`)
from the same specs.

YAML files use the ROS 2 parameter layout (``/**: ros__parameters: {...}``)
so the same file configures ``pointcam_node`` (``--params-file``),
``pointcam_bag`` and :class:`~pointcam_ros.perception.pipeline.ScenePipeline`; a flat
mapping is accepted too. :meth:`PipelineConfig.from_yaml` reads a parameter
file the way the node does (the sections that name it, wildcards first).
"""

from dataclasses import asdict, dataclass, field, fields, replace
import difflib
import json
import logging
import math
import numbers
from pathlib import Path
import re
from typing import Any, Mapping, Optional, Sequence, Union

import yaml

MODES = ('scene', 'object')
#: ``pointcam_node``'s fully qualified name (its default name, and the launch files').
NODE_FQN = '/pointcam'
#: Parameters that ROS itself gives every node; a parameter file may set them (ignored here).
ROS_PARAMS = ('use_sim_time', 'start_type_description_service', 'qos_overrides')
#: Bytes a parameter file may have (a full one of this node is about 4 KB).
MAX_PARAMS_BYTES = 1 << 20
#: Nesting of namespaces a parameter file may have (``ns: node: ros__parameters: ...``).
MAX_PARAMS_DEPTH = 16
#: Mappings a parameter file may hold outside its sections' parameters.
MAX_PARAMS_MAPPINGS = 10_000
LOG = logging.getLogger(__name__)
EXPLAINERS = ('gradcam', 'gradcam++', 'xgradcam', 'hirescam', 'occlusion', 'pointshift')


class ConfigError(ValueError):
    """A parameter value the schema refuses; ``str()`` is ``'<parameter>: <why>'``."""

    def __init__(self, parameter: str, why: str):
        super().__init__(f'{parameter}: {why}')
        self.parameter = parameter
        self.why = why


@dataclass(frozen=True)
class Param:
    """
    Specification of one parameter: type (from the default), meaning and allowed values.

    ``low``/``high`` bound numbers (inclusive), ``choices`` lists the allowed
    strings, ``pattern`` is a regular expression a string must match in full
    (``allowed`` says it in words). ``read_only`` parameters cannot change
    while the node runs.
    """

    name: str
    default: Any
    description: str
    unit: str = ''
    low: Optional[float] = None
    high: Optional[float] = None
    choices: tuple = ()
    pattern: str = ''
    allowed: str = ''
    read_only: bool = False

    @property
    def kind(self) -> type:
        """Python type of the value: float, int, str or list (of str)."""
        return type(self.default)

    def range_text(self) -> str:
        """Describe the allowed values in words, e.g. ``[0.01, 5] m`` or ``scene, object``."""
        if self.choices:
            return ', '.join(self.choices)
        if self.allowed:
            return self.allowed
        if self.low is not None:
            text = f'[{_number(self.low)}, {_number(self.high)}]'
            return f'{text} {self.unit}' if self.unit else text
        if self.kind is list:
            return 'non-empty list of topic names'
        return 'any string'

    def check(self, value: Any) -> Any:
        """
        Return ``value`` as this parameter's type; raise :class:`ConfigError` if not allowed.

        Integers are accepted for float parameters (``max_range:=10``) and
        integral floats for integer ones; booleans never count as numbers.
        """
        kind = self.kind
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(self.name, f'must be a number, got {value!r}')
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(self.name, f'must be a finite number, got {value!r}')
        elif kind is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(self.name, f'must be an integer, got {value!r}')
            value = int(value)
        elif kind is str:
            if not isinstance(value, str):
                raise ConfigError(self.name, f'must be a string, got {value!r}')
        elif kind is list:
            if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value \
                    or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(self.name, f'must be a non-empty list of topic names, '
                                             f'got {value!r}')
            value = list(value)
        if self.low is not None and not self.low <= value <= self.high:
            raise ConfigError(self.name, f'must be in {self.range_text()}, got {value!r}')
        if self.choices and value not in self.choices:
            raise ConfigError(self.name, f'must be one of {", ".join(self.choices)}; '
                                         f'got {value!r}')
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ConfigError(self.name, f'must be {self.allowed}, got {value!r}')
        return value


def _number(value: float) -> str:
    return f'{value:g}' if abs(value) < 1e6 else f'{value:.0f}'


def _param(default: Any, description: str, **spec: Any) -> Any:
    """Dataclass field whose metadata holds its :class:`Param` spec (name filled later)."""
    return field(default=default, metadata={'param': dict(description=description, **spec)})


@dataclass(frozen=True)
class PipelineConfig:
    """Every knob of :class:`ScenePipeline`, with its default, meaning and range."""

    mode: str = _param('scene', "'scene': segment scans into objects; 'object': each cloud is "
                       'one object, still in the sensor frame (the model sees it from the '
                       'origin, at its range; its lowest point is taken as the ground, '
                       'which costs the shipped model accuracy: '
                       'bench/object_mode_check.py), whatever its size and range: the '
                       'region of interest and the cluster limits are for scene mode',
                       choices=MODES)
    model_path: str = _param('', "checkpoint file (.pt); '' = the model shipped with the "
                             'package', read_only=True)
    device: str = _param('auto', 'where the model runs; auto = CUDA when available',
                         pattern=r'auto|cpu|cuda(:\d+)?', allowed='auto, cpu, cuda or cuda:N',
                         read_only=True)
    method: str = _param('gradcam', 'saliency method', choices=EXPLAINERS)
    target_class: str = _param('', "class to explain for every object; '' = each object's "
                               'predicted class')
    min_confidence: float = _param(0.59, 'calibrated confidence below which an object is '
                                   'shown as "unknown (car 0.41)"; the default is the value '
                                   'chosen for the shipped model on validation data '
                                   '(docs/model.md)', low=0.0, high=1.0)
    min_label_points: int = _param(30, 'in scene mode, a cluster of fewer points that the '
                                   'model calls a road user is shown as "unknown (car 0.93)" '
                                   '(rule few): on real streets most clusters this small are '
                                   'not road users (docs/real_scans.md); 1 = name every '
                                   'cluster', low=1, high=1_000_000)
    novelty_check: str = _param('enabled', "'enabled': in scene mode, a cluster that the "
                                'model calls a road user but whose features are unlike those '
                                'of its training data (novelty score above the threshold '
                                'stored with the model) is shown as "unknown (car 0.93)" (rule '
                                "novel; docs/real_scans.md); 'disabled': no check. A model "
                                'without novelty statistics is never checked',
                                choices=('enabled', 'disabled'))
    cpu_threads: int = _param(1, "torch threads on the CPU (process-wide); 0 = torch's "
                              'default, one per core, much slower when the cores are busy '
                              '(docs/parameters.md)', low=0, high=256, read_only=True)
    min_range: float = _param(1.0, 'ignore points closer than this (the robot itself)',
                              unit='m', low=0.0, high=500.0)
    max_range: float = _param(100.0, 'ignore points farther than this', unit='m', low=0.1,
                              high=1000.0)
    min_z: float = _param(-4.0, 'lowest point height kept, sensor frame', unit='m',
                          low=-100.0, high=100.0)
    max_z: float = _param(4.0, 'highest point height kept, sensor frame', unit='m',
                          low=-100.0, high=100.0)
    ground_threshold: float = _param(0.15, 'height above the fitted ground plane still '
                                     'counted as ground', unit='m', low=0.01, high=5.0)
    cluster_tolerance: float = _param(0.5, 'horizontal voxel size of the clustering',
                                      unit='m', low=0.05, high=5.0)
    cluster_z_tolerance: float = _param(1.0, 'vertical voxel size of the clustering (rings '
                                        'are far apart)', unit='m', low=0.05, high=5.0)
    split_size: float = _param(9.0, 'clusters wider than this (x or y) are clustered again, '
                               'split_tolerance wide, then 0.6x finer: parked cars in a row, '
                               'a pedestrian by a wall come apart; 2 x max_range or more = '
                               'never', unit='m', low=0.5, high=2000.0)
    split_tolerance: float = _param(0.3, 'horizontal voxel size of the first re-clustering '
                                    'of a wide cluster (at most 0.6 x cluster_tolerance is '
                                    'used)', unit='m', low=0.02, high=5.0)
    segmentation: str = _param('range', "'range': voxel clusters, then the range-image angle "
                               'criterion cuts clusters wider than 1.2 m (people by cars, '
                               'walls, trees) and re-joins over-split pieces up to car size; '
                               "'voxel': voxel clusters only (wide ones split finer), "
                               'faster, merges touching objects (docs/segmentation.md)',
                               choices=('voxel', 'range'))
    min_cluster_points: int = _param(15, 'smaller clusters are not classified', low=1,
                                     high=1_000_000)
    max_cluster_points: int = _param(30000, 'larger clusters (buildings) are not classified',
                                     low=1, high=10_000_000)
    min_object_size: float = _param(0.2, 'smallest longest-extent (x, y or z) of an object',
                                    unit='m', low=0.01, high=100.0)
    max_object_size: float = _param(15.0, 'largest longest-extent of an object', unit='m',
                                    low=0.05, high=1000.0)
    max_input_points: int = _param(2_000_000, 'scans with more points are rejected as '
                                   'malformed', low=1, high=100_000_000)
    seed: int = _param(0, 'seed of the ground fit and of the per-object resampling '
                       '(results are reproducible)',
                       low=0, high=2**31 - 1)

    def __post_init__(self):
        """Validate every field, then the rules between fields; raise :class:`ConfigError`."""
        for spec in self.params():
            value = spec.check(getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)  # 10 -> 10.0 for float fields
        for low, high in (('min_range', 'max_range'), ('min_z', 'max_z'),
                          ('min_object_size', 'max_object_size')):
            if not getattr(self, low) < getattr(self, high):
                raise ConfigError(high, f'need {low} < {high}, got {getattr(self, low)} and '
                                        f'{getattr(self, high)}')
        if not self.min_cluster_points <= self.max_cluster_points:
            raise ConfigError('max_cluster_points', 'need min_cluster_points <= '
                              f'max_cluster_points, got {self.min_cluster_points} and '
                              f'{self.max_cluster_points}')

    @classmethod
    def params(cls) -> tuple[Param, ...]:
        """Return the :class:`Param` spec of every field, in declaration order."""
        return tuple(Param(name=f.name, default=f.default, **f.metadata['param'])
                     for f in fields(cls))

    def replace(self, **changes: Any) -> 'PipelineConfig':
        """Return a validated copy with ``changes`` applied."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain mapping of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'PipelineConfig':
        """Build from a mapping; unknown keys and bad values raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(unknown[0], f'unknown pipeline parameters {unknown}; known: '
                                          f'{sorted(known)}')
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Union[str, Path], node_name: str = NODE_FQN) -> 'PipelineConfig':
        """
        Load from a YAML file: a ROS 2 parameter file, or a flat mapping.

        A parameter file (``<node>: ros__parameters: {...}``, as ``ros2 param
        dump`` writes it; namespaces may nest, ``/**: pointcam: ...``) is read
        as rclpy reads it for the node ``node_name`` (fully qualified): every
        section whose name matches it (``/**``, ``/**/pointcam``,
        ``/*/pointcam``, ``/pointcam`` or ``pointcam``), in file order, a later
        one overriding an earlier one. A flat mapping holds the parameters at
        its top. The node's own parameters (``input_topics``, ...) and those
        ROS gives every node (:data:`ROS_PARAMS`) are skipped; so are other
        nodes' parameters in a wildcard section, where a near miss of a
        parameter's name is logged as a warning. :class:`ConfigError` for a
        file over :data:`MAX_PARAMS_BYTES` (or with more namespaces than
        :func:`_parameter_sections` reads), one that is not YAML or not a mapping, a
        parameter file with no section for ``node_name``, a key of the
        node's own section or of a flat file that is no parameter (with the
        one it resembles), or a bad value.
        """
        path = Path(path)
        with path.open('rb') as stream:  # at most one byte over the limit, whatever the file
            raw = stream.read(MAX_PARAMS_BYTES + 1)
        if len(raw) > MAX_PARAMS_BYTES:
            raise ConfigError(str(path), f'more than the {MAX_PARAMS_BYTES} bytes a parameter '
                                         'file may have')
        try:
            data = yaml.safe_load(raw.decode('utf-8'))
        except yaml.YAMLError as exc:
            detail = ' '.join(str(exc).split())[:300]
            raise ConfigError(str(path), f'not valid YAML ({detail})') from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(str(path), 'not a text file: give a YAML parameter file') from exc
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError(str(path), f'holds a {type(data).__name__}, not a mapping of '
                                         'parameters (see config/pointcam.yaml)')
        sections = _parameter_sections(data, str(path))
        if not sections:
            return cls._from_parameters(data, str(path))
        matching = [(name, values) for name, values in sections
                    if _names_node(name, node_name)]
        if not matching:
            raise ConfigError(str(path), f'no section applies to the node {node_name}: it has '
                                         f'{[name for name, _ in sections]}; name the section '
                                         f"'/**' or '{node_name}'")
        merged: dict = {}
        for name, values in matching:  # file order: a later section overrides, as in rclpy
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f'{path}: {name}', 'ros__parameters must be a mapping of '
                                                     f'parameters, got {type(values).__name__}')
            if '*' in name:  # a section for every node: other nodes' parameters are its right
                values = cls._own_parameters(values, f'{path}: {name}')
            merged.update(values)
        return cls._from_parameters(merged, f'{path}: {", ".join(n for n, _ in matching)}')

    @classmethod
    def _own_parameters(cls, values: Mapping[Any, Any], where: str) -> dict:
        """Return this node's parameters among ``values``; log near misses of their names."""
        names = cls._names()
        for key in values:
            if key in names or _is_ros_param(key):
                continue
            close = difflib.get_close_matches(str(key), sorted(names), n=1, cutoff=0.85)
            if close:
                LOG.warning('%s: %s is not a parameter of pointcam_node and is ignored (did '
                            'you mean %s?)', where, key, close[0])
        return {key: value for key, value in values.items() if key in names}

    @classmethod
    def _names(cls) -> set[str]:
        """Return the names of the pipeline's parameters and of the node's own."""
        return {f.name for f in fields(cls)} | {spec.name for spec in NODE_PARAMS}

    @classmethod
    def _from_parameters(cls, values: Mapping[Any, Any], where: str) -> 'PipelineConfig':
        """Build from the pipeline's parameters among ``values``; skip the node's and ROS's."""
        known, names = {f.name for f in fields(cls)}, cls._names()
        unknown = [str(key) for key in values if key not in names and not _is_ros_param(key)]
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(names), n=1)
            hint = f' (did you mean {close[0]}?)' if close else ''
            raise ConfigError(unknown[0], f'not a parameter of pointcam_node{hint}, in {where}; '
                                          'the parameters: docs/parameters.md')
        return cls.from_dict({key: value for key, value in values.items() if key in known})

    def to_yaml(self, path: Union[str, Path]) -> None:
        """Write as a ROS 2 parameter file (``/**: ros__parameters:``)."""
        Path(path).write_text(yaml.safe_dump({'/**': {'ros__parameters': self.to_dict()}},
                                             sort_keys=False))


def _parameter_sections(data: Mapping[Any, Any], where: str) -> list[tuple[str, Any]]:
    """
    Return the ``(node name, ros__parameters)`` sections of a parameter file, in file order.

    Nested namespaces are joined (``/**: pointcam: ros__parameters`` is
    ``/**/pointcam``). :class:`ConfigError` beyond :data:`MAX_PARAMS_DEPTH`
    levels or :data:`MAX_PARAMS_MAPPINGS` mappings visited (YAML aliases can
    repeat one mapping many times over).
    """
    found: list[tuple[str, Any]] = []
    visited = [0]

    def walk(mapping: Mapping[Any, Any], prefix: str, depth: int) -> None:
        visited[0] += 1
        if depth > MAX_PARAMS_DEPTH or visited[0] > MAX_PARAMS_MAPPINGS:
            raise ConfigError(where, f'nested deeper than {MAX_PARAMS_DEPTH} namespaces or '
                                     f'holding more than {MAX_PARAMS_MAPPINGS} mappings: not a '
                                     'parameter file')
        for key, value in mapping.items():
            if not isinstance(value, dict):
                continue
            name = f'{prefix}/{str(key).strip("/")}' if prefix else str(key)
            if 'ros__parameters' in value:
                found.append((name, value['ros__parameters']))
            else:
                walk(value, name, depth + 1)

    walk(data, '', 0)
    return found


def _is_ros_param(key: Any) -> bool:
    """Tell whether ``key`` is a parameter ROS gives every node (:data:`ROS_PARAMS`)."""
    return str(key).split('.')[0] in ROS_PARAMS


def _names_node(pattern: str, node_name: str) -> bool:
    """
    Tell whether a parameter file's section ``pattern`` names the node ``node_name``.

    ROS 2's rules: ``*`` stands for one name, ``**`` for any number (also
    none); a pattern without a leading ``/`` is in the root namespace.
    """
    if not pattern.startswith('/'):
        pattern = '/' + pattern
    regex = ''.join('.*' if token == '**' else '[^/]+' if token == '*' else re.escape(token)
                    for token in re.split(r'(\*\*|\*)', pattern.strip('/')))
    regex = regex.replace('.*/', '(?:.*/)?')  # '/**/name' also names '/name'
    return re.fullmatch(regex, node_name.strip('/')) is not None


#: Parameters of ``pointcam_node`` that are not pipeline settings.
NODE_PARAMS = (
    Param('input_topics', ['points'], 'PointCloud2 topics to explain; several get '
          'pointcam/<topic>/saliency and .../labels', read_only=True),
    Param('diagnostics_period', 1.0, 'time between /diagnostics messages', unit='s', low=0.1,
          high=60.0, read_only=True),
    Param('diagnostics_window', 10.0, 'the /diagnostics level (OK, WARN, ERROR) follows the '
          'scans of this recent window; counters stay cumulative', unit='s', low=1.0,
          high=3600.0, read_only=True),
)


def node_params() -> tuple[Param, ...]:
    """Every parameter of ``pointcam_node``: :data:`NODE_PARAMS`, then the pipeline's."""
    return NODE_PARAMS + PipelineConfig.params()


def _value_text(value: Any) -> str:
    if isinstance(value, (str, list)):
        return json.dumps(value)
    return repr(value)


def markdown_table(params: Optional[Sequence[Param]] = None) -> str:
    """Markdown table of ``params`` (default: the node's): name, default, range, meaning."""
    rows = ['| parameter | default | allowed | meaning |', '|---|---|---|---|']
    for spec in params if params is not None else node_params():
        meaning = spec.description.replace('|', '\\|')
        if spec.read_only:
            meaning += ' (read-only)'
        rows.append(f'| `{spec.name}` | `{_value_text(spec.default)}` | '
                    f'{spec.range_text().replace("|", "/")} | {meaning} |')
    return '\n'.join(rows) + '\n'


def help_text(params: Sequence[Param]) -> str:
    """Plain-text parameter list for ``--help``: name, default, allowed values, meaning."""
    lines = []
    for spec in params:
        ro = ', read-only' if spec.read_only else ''
        lines.append(f'  {spec.name} (default {_value_text(spec.default)}; '
                     f'{spec.range_text()}{ro})')
        lines.append(f'      {spec.description}')
    return '\n'.join(lines) + '\n'


def params_yaml() -> str:
    """Text of ``config/pointcam.yaml``: every node parameter at its default, commented."""
    lines = [
        '# pointcam_node parameters (also read by pointcam_bag and PipelineConfig.from_yaml).',
        '# Generated from pointcam_ros.common.config (params_yaml()); keep them equal.',
        '#   ros2 run pointcam_ros pointcam_node --ros-args --params-file config/pointcam.yaml',
        '/**:',
        '  ros__parameters:',
    ]
    for spec in node_params():
        allowed = spec.range_text()
        comment = spec.description + ('' if allowed == 'any string' else f'; {allowed}')
        lines.append(f'    {spec.name}: {_value_text(spec.default)}  # {comment}')
    return '\n'.join(lines) + '\n'


def output_prefix(topic: str, several: bool) -> str:
    """
    Output namespace (relative) for an input topic, shared by the node and the bag tool.

    One input: ``pointcam``; several: ``pointcam/<topic with / as _>``.
    """
    if not several:
        return 'pointcam'
    return 'pointcam/' + topic.strip('/').replace('/', '_').replace('~', '')


def output_prefixes(topics: Sequence[str], parameter: str = 'input_topics') -> dict[str, str]:
    """
    Output namespace of every input topic (:func:`output_prefix`), refusing clashes.

    Two inputs that map to one namespace (``/lidar/front`` and ``/lidar_front``, or one
    topic given twice) would interleave two sensors on one output topic, so they raise
    :class:`ConfigError` naming both; so does an empty list or an empty name.
    """
    if not topics:
        raise ConfigError(parameter, 'no input topic given; name at least one PointCloud2 topic')
    prefixes: dict[str, str] = {}
    owner: dict[str, str] = {}
    for topic in topics:
        if not topic.strip('/~'):
            raise ConfigError(parameter, f'{topic!r} is not a topic name')
        prefix = output_prefix(topic, len(topics) > 1)
        if prefix in owner:
            raise ConfigError(parameter, f'{owner[prefix]!r} and {topic!r} would both publish '
                                         f'on {prefix}/...; rename or remap one of them')
        owner[prefix] = topic
        prefixes[topic] = prefix
    return prefixes
