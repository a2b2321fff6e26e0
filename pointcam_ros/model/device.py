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

"""The one place that turns a device name into a ``torch.device``."""

import torch

#: Accepted device names; ``cuda:N`` picks a GPU by index.
DEVICE_HELP = "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(name: str) -> torch.device:
    """
    Map ``auto`` to CUDA when available, else CPU; check an explicit CUDA request.

    Raises ValueError for a name torch does not know, or for CUDA on a
    machine without it.
    """
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f'device must be {DEVICE_HELP}, got {name!r}') from exc
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available: "
                         "use 'auto' or 'cpu'")
    return device
