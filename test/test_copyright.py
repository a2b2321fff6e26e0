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
Copyright/license header check.

ament_copyright is used where it is installed (ROS machines); PyPI has no
wheel of it, so elsewhere the same rule is checked directly: every Python
source file starts with the project's Apache-2.0 header.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LICENSE_LINES = (
    '# Licensed under the Apache License, Version 2.0 (the "License");',
    '#     http://www.apache.org/licenses/LICENSE-2.0',
)


def _sources():
    for folder in ('pointcam_ros', 'test', 'bench', 'launch'):
        yield from sorted((ROOT / folder).rglob('*.py'))


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    try:
        from ament_copyright.main import main
    except ImportError:
        main = None
    if main is not None:
        assert main(argv=['.', 'test']) == 0, 'Found errors'
        return
    missing = []
    for path in _sources():
        head = path.read_text(encoding='utf-8').splitlines()[:15]
        if not head or not head[0].startswith('# Copyright ') or \
                any(line not in head for line in LICENSE_LINES):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, 'files without the Apache-2.0 header: ' + ', '.join(missing)
