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

"""ament_flake8 over the package, with the ament default configuration."""

from pathlib import Path

import pytest

# ament_flake8 comes with ROS (or `pip install ros-ament-flake8`, requirements-dev.txt).
main_with_errors = pytest.importorskip(
    'ament_flake8.main', reason='ament_flake8 is not installed (requirements-dev.txt)'
).main_with_errors

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    paths = [str(ROOT / p) for p in ('pointcam_ros', 'test', 'bench', 'launch', 'setup.py')
             if (ROOT / p).exists()]
    rc, errors = main_with_errors(argv=['--config', str(ROOT / 'setup.cfg'), *paths])
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + \
        '\n'.join(errors)
