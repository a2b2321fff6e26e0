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

"""ament_pep257 (docstring conventions) over the package."""

from pathlib import Path

import pytest

# ament_pep257 comes with ROS (or `pip install ros-ament-pep257`, requirements-dev.txt).
main = pytest.importorskip(
    'ament_pep257.main', reason='ament_pep257 is not installed (requirements-dev.txt)').main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=[str(ROOT / 'pointcam_ros'), str(ROOT / 'test'), str(ROOT / 'bench')])
    assert rc == 0, 'Found code style errors / warnings'
