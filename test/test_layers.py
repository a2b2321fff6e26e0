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

"""The package layout is a layering: imports run one way, and only ros/ touches ROS."""

import ast
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'pointcam_ros'
#: Rank of each subpackage; a module may import its own package or lower ranks only.
LAYERS = {'common': 0, 'formats': 1, 'model': 2, 'explain': 3, 'perception': 4, 'sim': 4,
          'learn': 5, 'tools': 6, 'ros': 7}
ROS_PACKAGES = {'rclpy', 'rcl_interfaces', 'sensor_msgs', 'std_msgs', 'visualization_msgs',
                'diagnostic_msgs', 'builtin_interfaces', 'geometry_msgs', 'launch',
                'launch_ros', 'sensor_msgs_py', 'ament_index_python'}
#: The PointCloud2 codec prefers ROS's own helper library where it is installed.
ALLOWED = {('_pc2_backend.py', 'sensor_msgs_py')}


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (any depth)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) > 1:
            yield parts[0], path


def test_every_module_lives_in_a_layer():
    top = {p.name for p in PACKAGE.glob('*.py')}
    assert top == {'__init__.py'}, f'modules outside the layers: {top}'
    assert {layer for layer, _ in _modules()} == set(LAYERS)


@pytest.mark.parametrize('layer,path', list(_modules()),
                         ids=[str(p.relative_to(PACKAGE)) for _, p in _modules()])
def test_imports_run_downward_and_only_ros_imports_ros(layer, path):
    for name in _imports(path):
        parts = name.split('.')
        if parts[0] == 'pointcam_ros' and len(parts) > 1 and parts[1] in LAYERS:
            other = parts[1]
            assert other == layer or LAYERS[other] < LAYERS[layer], \
                f'{path.name} ({layer}) imports {name} ({other}): imports must run downward'
        if layer != 'ros' and (path.name, parts[0]) not in ALLOWED:
            assert parts[0] not in ROS_PACKAGES, f'{path.name} ({layer}) imports {name}'


def _import_without(modules: list[str], blocked: list[str],
                    then: str = '') -> subprocess.CompletedProcess:
    """Import ``modules`` in a fresh interpreter where ``blocked`` cannot load; run ``then``."""
    code = f"""
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(f'{{name}} is blocked by the layering test')
sys.meta_path.insert(0, Block())
for module in {modules!r}:
    importlib.import_module(module)
{then}
for name in {blocked!r}:
    assert name not in sys.modules, name
"""
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)


def test_formats_and_common_need_neither_torch_nor_open3d_nor_ros():
    modules = [f'pointcam_ros.{layer}.{p.stem}' for layer, p in _modules()
               if layer in ('common', 'formats') and p.stem != '__init__']
    result = _import_without(modules, ['torch', 'open3d', 'rclpy', 'scipy'])
    assert result.returncode == 0, result.stderr


def test_the_runtime_imports_and_runs_without_open3d():
    """Issue 14.1: node, bag tool and pipeline need torch, numpy, scipy, yaml and ROS only."""
    run = """
import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.pipeline import ScenePipeline
rng = np.random.default_rng(0)
ground = np.c_[rng.uniform(-20, 20, (20000, 2)), rng.normal(-1.8, 0.02, 20000)]
box = rng.uniform([5, 5, -1.7], [7, 6, -0.3], (800, 3))
out = ScenePipeline(PipelineConfig(device='cpu')).process(np.r_[ground, box].astype('f4'))
assert len(out.objects) == 1 and out.objects[0].num_points > 700, out.objects
"""
    result = _import_without(['pointcam_ros.perception.pipeline',
                              'pointcam_ros.perception.segmentation',
                              'pointcam_ros.tools.bag_tool', 'pointcam_ros.ros.node'],
                             ['open3d'], then=run)
    assert result.returncode == 0, result.stderr


def test_segmentation_needs_neither_torch_nor_open3d():
    """The shared algorithm and its numpy backend import and run without torch (issue 23)."""
    run = """
import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.segmentation import segment_scene
rng = np.random.default_rng(0)
ground = np.c_[rng.uniform(-20, 20, (20000, 2)), rng.normal(-1.8, 0.02, 20000)]
box = rng.uniform([5, 5, -1.7], [7, 6, -0.3], (800, 3))
assert segment_scene(np.r_[ground, box].astype('f4'), PipelineConfig()).num_objects == 1
"""
    result = _import_without(['pointcam_ros.perception.segmentation',
                              'pointcam_ros.perception.segmentation_numpy',
                              'pointcam_ros.perception.rules'], ['torch', 'open3d'], then=run)
    assert result.returncode == 0, result.stderr


def test_perception_never_sees_a_pointcloud2():
    """Issue 24.1: decode -> process -> encode lives in formats/scan_io, not in perception/."""
    for layer, path in _modules():
        if layer == 'perception':
            codec = {n for n in _imports(path) if n.startswith('pointcam_ros.formats')}
            assert not codec, f'{path.name} imports {codec}'


def _layer_of(frame) -> str:
    """Return the layer of the nearest pointcam_ros frame at or above ``frame`` ('' if none)."""
    while frame is not None:
        parts = str(frame.f_globals.get('__name__', '')).split('.')
        if parts[0] == 'pointcam_ros' and len(parts) > 2 and parts[1] in LAYERS:
            return parts[1]
        frame = frame.f_back
    return ''


def test_one_scan_enters_each_layer_once(tiny_model):
    """
    Issue 24.7: a message's way to the saliency cloud and markers, as the node takes it.

    The caller (the node, here the test) enters ``formats/`` once
    (``explain_cloud``: decode, process, encode), which enters ``perception/``
    once (the pipeline's ``process``, handed in); nothing below ``formats/``
    calls back into it, and that hand-in is the only call up the layers into
    ``perception/``.
    """
    from pointcam_ros.common.config import PipelineConfig
    from pointcam_ros.formats.cloud_io import FieldSpec, FLOAT32, pack_cloud
    from pointcam_ros.formats.scan_io import explain_cloud
    from pointcam_ros.perception.pipeline import ScenePipeline
    rng = np.random.default_rng(0)
    ground = np.c_[rng.uniform(-20, 20, (4000, 2)), rng.normal(-1.8, 0.02, 4000)]
    box = rng.uniform([5, 5, -1.7], [7, 6, -0.3], (400, 3))
    xyz = np.r_[ground, box].astype(np.float32)
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]},
                       [FieldSpec(name, 4 * i, FLOAT32) for i, name in enumerate('xyz')], 12)
    pipeline = ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'))
    entries = []

    def profile(frame, event, arg):
        if event == 'call':
            callee, caller = _layer_of(frame), _layer_of(frame.f_back)
            if callee and callee != caller:
                entries.append((caller, callee, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        scan = explain_cloud(cloud, pipeline.process, buffer=bytearray)
    finally:
        sys.setprofile(None)
    assert len(scan.result.objects) == 1 and scan.cloud.width == len(xyz)
    assert scan.markers is not None
    assert [e for e in entries if e[0] == ''] == [('', 'formats', 'explain_cloud')]
    assert [e for e in entries if e[1] == 'perception'] == [('formats', 'perception', 'process')]
    assert [e for e in entries if e[1] == 'formats'] == [('', 'formats', 'explain_cloud')]
