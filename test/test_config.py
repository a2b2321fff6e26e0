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
"""The one parameter schema: validator, generated YAML, docs table, ROS descriptors."""

from pathlib import Path
import re

from pointcam_ros.common.config import (
    ConfigError, markdown_table, NODE_PARAMS, node_params, params_yaml, PipelineConfig)
from pointcam_ros.ros.ros_main import descriptor_for
from pointcam_ros.tools import bag_cli
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_parameter_is_described_and_bounded():
    for spec in node_params():
        assert spec.description, spec.name
        if spec.kind in (int, float):
            assert spec.low is not None and spec.low <= spec.default <= spec.high, spec.name
        spec.check(spec.default)  # defaults pass their own check
    assert [s.name for s in PipelineConfig.params()] == list(PipelineConfig().to_dict())


def test_shipped_yaml_is_the_generated_one():
    shipped = (ROOT / 'config' / 'pointcam.yaml').read_text()
    assert shipped == params_yaml(), 'regenerate config/pointcam.yaml from params_yaml()'
    values = yaml.safe_load(shipped)['/**']['ros__parameters']
    assert values == {spec.name: spec.default for spec in node_params()}
    assert PipelineConfig.from_yaml(ROOT / 'config' / 'pointcam.yaml') == PipelineConfig()


def test_readme_parameter_table_is_the_generated_one():
    doc = (ROOT / 'docs' / 'parameters.md').read_text()
    match = re.search(r'<!-- params:begin -->\n(.*?)<!-- params:end -->', doc, re.S)
    assert match is not None, 'docs/parameters.md lost its params:begin/params:end markers'
    assert match.group(1).strip() == markdown_table().strip(), \
        'paste markdown_table() between the params markers of docs/parameters.md'


def test_markdown_table_has_one_row_per_parameter():
    rows = markdown_table().strip().splitlines()[2:]
    assert [row.split('`')[1] for row in rows] == [spec.name for spec in node_params()]
    assert '| `ground_threshold` | `0.15` | [0.01, 5] m |' in markdown_table()


@pytest.mark.parametrize('changes, parameter, text', [
    ({'ground_threshold': 0.005}, 'ground_threshold', 'must be in [0.01, 5] m'),
    ({'min_range': -3.0}, 'min_range', 'must be in [0, 500] m'),
    ({'device': 'banana'}, 'device', 'must be auto, cpu, cuda or cuda:N'),
    ({'method': 'lime'}, 'method', 'must be one of gradcam'),
    ({'max_range': 'far'}, 'max_range', 'must be a number'),
    ({'seed': 1.5}, 'seed', 'must be an integer'),
    ({'seed': True}, 'seed', 'must be an integer'),
    ({'min_confidence': float('nan')}, 'min_confidence', 'finite'),
    ({'min_label_points': 0}, 'min_label_points', 'must be in [1, 1000000]'),
    ({'novelty_check': 'maybe'}, 'novelty_check', 'must be one of enabled, disabled'),
    ({'min_range': 170.0}, 'max_range', 'need min_range < max_range'),
    ({'min_cluster_points': 50, 'max_cluster_points': 10}, 'max_cluster_points', 'need'),
    ({'max_rnage': 3.0}, 'max_rnage', 'unknown pipeline parameters'),
])
def test_one_validator_names_the_parameter(changes, parameter, text):
    with pytest.raises(ConfigError) as info:
        PipelineConfig.from_dict(changes)
    assert info.value.parameter == parameter and text in info.value.why
    assert str(info.value).startswith(f'{parameter}: ')


def test_integers_are_accepted_for_floats_and_integral_floats_for_ints():
    config = PipelineConfig(max_range=10, seed=3.0)
    assert config.max_range == 10.0 and type(config.max_range) is float
    assert config.seed == 3 and type(config.seed) is int
    assert config.replace(min_z=-2).min_z == -2.0


def test_pointcam_bag_uses_the_same_validator(tmp_path, caplog):
    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters:\n    ground_threshold: 0.005\n')
    code = bag_cli.main([str(tmp_path / 'missing_bag'), '-o', str(tmp_path / 'out'),
                         '--params', str(params)])
    assert code == 1
    assert 'ground_threshold: must be in [0.01, 5] m, got 0.005' in caplog.text
    assert not (tmp_path / 'out').exists()


def _params(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 'p.yaml'
    path.write_text(text)
    return path


#: Parameter files and what the node /pointcam reads from them (max_range; None: default).
LAYOUTS = [
    ('/pointcam:\n  ros__parameters:\n    max_range: 5.0\n', 5.0),
    ('pointcam:\n  ros__parameters:\n    max_range: 5.0\n', 5.0),
    ('/**/pointcam:\n  ros__parameters:\n    max_range: 5.0\n', 5.0),
    ('/*:\n  ros__parameters:\n    max_range: 5.0\n', 5.0),
    ('/**:\n  pointcam:\n    ros__parameters:\n      max_range: 5.0\n', 5.0),
    ('/ns/pointcam:\n  ros__parameters:\n    max_range: 5.0\n'
     '/**:\n  ros__parameters:\n    min_range: 2.0\n', None),
    # In file order, a later section overrides an earlier one, wildcard or not.
    ('/pointcam:\n  ros__parameters:\n    max_range: 5.0\n'
     '/**:\n  ros__parameters:\n    max_range: 7.0\n', 7.0),
    ('/**:\n  ros__parameters:\n    max_range: 7.0\n'
     '/pointcam:\n  ros__parameters:\n    max_range: 5.0\n', 5.0),
]


def test_a_parameter_file_is_read_as_the_node_reads_it(tmp_path):
    for text, max_range in LAYOUTS:
        config = PipelineConfig.from_yaml(_params(tmp_path, text))
        assert config.max_range == (max_range or PipelineConfig.max_range), text
    both = ('/**:\n  ros__parameters:\n    max_range: 7.0\n    min_range: 2.0\n'
            '/pointcam:\n  ros__parameters:\n    max_range: 5.0\n')
    config = PipelineConfig.from_yaml(_params(tmp_path, both))
    assert (config.max_range, config.min_range) == (5.0, 2.0)
    assert PipelineConfig.from_yaml(_params(tmp_path, both), '/ns/pointcam').max_range == 7.0
    # What `ros2 param dump /pointcam` writes: the node's and ROS's own parameters too.
    dump = ('/pointcam:\n  ros__parameters:\n    input_topics: [points]\n'
            '    use_sim_time: false\n    qos_overrides:\n      /parameter_events:\n'
            '        publisher:\n          depth: 1000\n    ground_threshold: 0.2\n')
    assert PipelineConfig.from_yaml(_params(tmp_path, dump)).ground_threshold == 0.2
    flat = _params(tmp_path, 'max_range: 9.0\ndiagnostics_period: 2.0\n')
    assert PipelineConfig.from_yaml(flat).max_range == 9.0
    empty = _params(tmp_path, '/**:\n  ros__parameters:\n')
    assert PipelineConfig.from_yaml(empty) == PipelineConfig()
    # A section for every node may hold other nodes' parameters (rclpy ignores them too).
    shared = _params(tmp_path, '/**:\n  ros__parameters:\n    frame_id: base_link\n'
                               '    max_range: 6.0\n')
    assert PipelineConfig.from_yaml(shared).max_range == 6.0


def test_a_near_miss_in_a_section_for_every_node_is_logged(tmp_path, caplog):
    path = _params(tmp_path, '/**:\n  ros__parameters:\n    max_rnage: 5.0\n'
                             '    frame_id: base_link\n')
    assert PipelineConfig.from_yaml(path).max_range == PipelineConfig.max_range
    assert 'max_rnage is not a parameter of pointcam_node' in caplog.text
    assert 'did you mean max_range' in caplog.text and 'frame_id' not in caplog.text


def test_the_node_reads_the_parameter_files_alike(tmp_path):
    # The same files through rclpy's own parser and parameter overrides.
    rclpy = pytest.importorskip('rclpy')
    from rclpy.node import Node
    for text, max_range in LAYOUTS:
        context = rclpy.Context()
        rclpy.init(args=['--ros-args', '--params-file', str(_params(tmp_path, text))],
                   context=context)
        try:
            node = Node('pointcam', context=context,
                        automatically_declare_parameters_from_overrides=True)
            value = (node.get_parameter('max_range').value
                     if node.has_parameter('max_range') else None)
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
        assert value == max_range, text


#: Five levels of ten aliases of the level below: 111,111 mappings in 510 bytes.
ALIAS_BOMB = 'l0: &l0 {x: 1}\n' + ''.join(
    f'l{i}: &l{i} {{{", ".join(f"k{j}: *l{i - 1}" for j in range(10))}}}\n' for i in range(1, 6))


def test_a_parameter_file_is_read_only_up_to_its_limit(tmp_path):
    big = _params(tmp_path, '# ' + 'x' * (1 << 20) + '\nmax_range: 5.0\n')
    with pytest.raises(ConfigError, match='more than the 1048576 bytes'):
        PipelineConfig.from_yaml(big)
    with pytest.raises(ConfigError, match='more than the 1048576 bytes'):
        PipelineConfig.from_yaml('/dev/zero')  # endless: one read of the limit, then refused


@pytest.mark.parametrize('text, message', [
    ('/pointcam_sim:\n  ros__parameters:\n    max_range: 5.0\n',
     r"no section applies to the node /pointcam: it has \['/pointcam_sim'\]"),
    ('/pointcam:\n  ros__parameters:\n    max_rang: 5.0\n', 'did you mean max_range'),
    ('max_rang: 5.0\n', 'max_rang: not a parameter of pointcam_node'),
    ('foo: [\n', 'not valid YAML'),
    ('- a\n- b\n', 'holds a list, not a mapping'),
    ('just words\n', 'holds a str, not a mapping'),
    ('/**:\n  ros__parameters: [1, 2]\n', 'ros__parameters must be a mapping'),
    ('a:\n' + ''.join('  ' * i + f'n{i}:\n' for i in range(1, 20)) + '  ' * 20 + 'x: 1\n',
     'nested deeper than 16'),
    (ALIAS_BOMB, 'more than 10000 mappings'),
])
def test_a_parameter_file_the_node_would_not_read_is_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_yaml(_params(tmp_path, text))


def test_pointcam_bag_reports_a_bad_parameter_file_in_one_line(tmp_path, caplog):
    params = _params(tmp_path, 'foo: [\n')
    code = bag_cli.main([str(tmp_path / 'missing_bag'), '-o', str(tmp_path / 'out'),
                         '--params', str(params)])
    assert code == 1 and 'not valid YAML' in caplog.text
    assert 'Traceback' not in caplog.text and not (tmp_path / 'out').exists()


def test_node_descriptors_come_from_the_schema():
    by_name = {spec.name: spec for spec in node_params()}
    ground = descriptor_for(by_name['ground_threshold'])
    assert (ground.floating_point_range[0].from_value,
            ground.floating_point_range[0].to_value) == (0.01, 5.0)
    assert 'ground plane' in ground.description and not ground.read_only
    seed = descriptor_for(by_name['seed'])
    assert seed.integer_range[0].to_value == 2**31 - 1 and not seed.floating_point_range
    assert descriptor_for(by_name['device']).read_only
    assert 'gradcam++' in descriptor_for(by_name['method']).additional_constraints
    assert all(descriptor_for(spec).read_only for spec in NODE_PARAMS)
