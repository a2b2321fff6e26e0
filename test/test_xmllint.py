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
package.xml checks.

ament_xmllint is not on PyPI; the manifest is checked with catkin_pkg (the
parser colcon and rosdep use), which validates format 3 and every tag.
"""

from pathlib import Path

import pytest

parse_package = pytest.importorskip(
    'catkin_pkg.package', reason='catkin_pkg is not installed (requirements-dev.txt)'
).parse_package

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.xmllint
def test_package_xml_is_valid_format_3():
    package = parse_package(str(ROOT / 'package.xml'), warnings=(warnings := []))
    package.validate(warnings=warnings)
    assert not warnings, warnings
    assert package.package_format == 3
    assert package.get_build_type() == 'ament_python'
    exec_deps = {d.name for d in package.exec_depends}
    assert {'rclpy', 'sensor_msgs', 'sensor_msgs_py', 'std_msgs', 'visualization_msgs',
            'diagnostic_msgs', 'python3-numpy', 'python3-open3d-pip'} <= exec_deps
    # Keys that ros/rosdistro's rosdep/python.yaml does not define (or only as Debian's old
    # CPU torch): rosdep install fails on an unknown key, so they are pip steps in the README.
    assert not exec_deps & {'python3-rosbags-pip', 'python3-rosbags', 'python3-torch',
                            'python3-pytorch-pip'}
    assert {'ament_flake8', 'ament_pep257', 'ament_copyright', 'ament_xmllint'} <= \
        {d.name for d in package.test_depends}
