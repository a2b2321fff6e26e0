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
"""A real colcon build installs the package where ROS tools look for it."""

from conftest import run_in_install
import pytest


@pytest.mark.colcon
def test_ament_index_finds_share_files(colcon_install):
    result = run_in_install(colcon_install, (
        'python -c "import glob, os;'
        'from ament_index_python.packages import get_package_share_directory as g;'
        "d = g('pointcam_ros'); print(d);"  # noqa: Q000
        "print(sorted(os.listdir(d)));"  # noqa: Q000
        "print(sorted(os.path.basename(p) for p in glob.glob(d + '/launch/*.launch.py')));"  # noqa: Q000,E501
        "print(sorted(os.listdir(d + '/config')))\""))  # noqa: Q000
    assert result.returncode == 0, result.stderr
    share, listing, launches, configs = result.stdout.strip().splitlines()
    assert share == str(colcon_install / 'pointcam_ros' / 'share' / 'pointcam_ros')
    assert 'package.xml' in listing
    assert 'pointcam.launch.py' in launches and 'demo.launch.py' in launches
    assert 'pointcam.yaml' in configs and 'pointcam.rviz' in configs


@pytest.mark.colcon
def test_installed_package_imports_from_install_space(colcon_install):
    result = run_in_install(colcon_install, (
        'python -c "import pointcam_ros.formats.cloud_io as m; print(m.__file__)"'))
    assert result.returncode == 0, result.stderr
    assert str(colcon_install) in result.stdout


@pytest.mark.colcon
def test_shipped_model_is_installed_and_found(colcon_install):
    result = run_in_install(colcon_install, (
        'python -c "from pointcam_ros.model.checkpoint import load_checkpoint; '
        'm = load_checkpoint(); print(m.path); print(len(m.class_names))"'))
    assert result.returncode == 0, result.stderr
    path, classes = result.stdout.split()
    assert path.startswith(str(colcon_install)) and path.endswith('default_pointnet.pt')
    assert int(classes) == 7
