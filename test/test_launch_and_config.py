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
Launch files, RViz config and parameter file, checked without ``launch``.

``launch``/``launch_ros`` are not installable from PyPI, so the launch files
are checked structurally (their AST) against the node's real parameters.
"""

import ast
from pathlib import Path

from pointcam_ros.common.config import node_params, PipelineConfig
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _calls(path):
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call):
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(
        call.func, 'id', '')


def _kw(call, key):
    return next((k.value for k in call.keywords if k.arg == key), None)


def test_pointcam_launch_declares_the_documented_arguments():
    calls = _calls(ROOT / 'launch' / 'pointcam.launch.py')
    declared = {c.args[0].value for c in calls if _name(c) == 'DeclareLaunchArgument'}
    assert declared == {'input_topic', 'params_file', 'model_path', 'device', 'use_sim_time'}
    used = {c.args[0].value for c in calls if _name(c) == 'LaunchConfiguration'}
    assert used == declared  # every argument is used, none is undeclared
    node = next(c for c in calls if _name(c) == 'Node')
    assert _kw(node, 'package').value == 'pointcam_ros'
    assert _kw(node, 'executable').value == 'pointcam_node'
    remap = _kw(node, 'remappings')
    assert isinstance(remap, ast.List) and remap.elts[0].elts[0].value == 'points'
    keys = {k.value for d in ast.walk(_kw(node, 'parameters')) if isinstance(d, ast.Dict)
            for k in d.keys}
    assert keys == {'model_path', 'device', 'use_sim_time'}
    assert keys - {'use_sim_time'} <= set(PipelineConfig().to_dict())


def test_demo_launch_starts_the_simulator_and_includes_pointcam():
    calls = _calls(ROOT / 'launch' / 'demo.launch.py')
    nodes = [c for c in calls if _name(c) == 'Node']
    assert [_kw(n, 'executable').value for n in nodes] == ['pointcam_sim']
    assert any(_name(c) == 'IncludeLaunchDescription' for c in calls)
    assert any(isinstance(a, ast.Constant) and a.value == 'pointcam.launch.py'
               for c in calls if _name(c) == 'join' for a in c.args)


def test_every_launch_file_defines_generate_launch_description():
    for path in (ROOT / 'launch').glob('*.launch.py'):
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
                   for n in tree.body), path


def test_rviz_config_shows_saliency_with_fixed_bounds():
    rviz = yaml.safe_load((ROOT / 'config' / 'pointcam.rviz').read_text())
    manager = rviz['Visualization Manager']
    displays = {d['Name']: d for d in manager['Displays']}
    saliency = displays['Grad-CAM saliency']
    assert saliency['Topic']['Value'] == '/pointcam/saliency'
    assert saliency['Color Transformer'] == 'Intensity'
    assert saliency['Channel Name'] == 'intensity'
    assert saliency['Autocompute Intensity Bounds'] is False
    assert (saliency['Min Intensity'], saliency['Max Intensity']) == (0, 1)
    assert displays['Labels']['Topic']['Value'] == '/pointcam/labels'
    assert displays['Input scan']['Topic']['Reliability Policy'] == 'Best Effort'
    assert manager['Global Options']['Fixed Frame'] == 'lidar'


def test_params_file_declares_every_node_parameter():
    params = yaml.safe_load((ROOT / 'config' / 'pointcam.yaml').read_text())
    values = params['/**']['ros__parameters']
    assert list(values) == [spec.name for spec in node_params()]
    assert set(PipelineConfig().to_dict()) < set(values)
