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

"""Write a file under its final name only once it is complete."""

from contextlib import contextmanager
import os
from pathlib import Path
import tempfile
from typing import Iterator, Union


@contextmanager
def atomic_path(path: Union[str, os.PathLike], suffix: str = '') -> Iterator[Path]:
    """
    Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file is hidden (``.<name>.<random><suffix>``; give the
    ``suffix`` a writer insists on, e.g. ``.npz``), created in the
    destination's folder so the rename is atomic, and deleted if the block
    raises; the parent folder is created if needed. The file gets mode 0644.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these files are not secrets
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Union[str, os.PathLike], text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
