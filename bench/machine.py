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
"""One line describing the machine a benchmark ran on."""

import os
import platform

import torch


def describe(device: str = 'cpu') -> str:
    """CPU model and core count (or GPU name), Python and torch versions."""
    if device.startswith('cuda') and torch.cuda.is_available():
        hw = torch.cuda.get_device_name(torch.device(device))
    else:
        hw = platform.processor() or platform.machine()
        try:
            with open('/proc/cpuinfo') as info:
                hw = next(line.split(':', 1)[1].strip() for line in info
                          if line.startswith('model name'))
        except (OSError, StopIteration):
            pass
        hw = f'{hw}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads'
    return f'{hw}; python {platform.python_version()}, torch {torch.__version__}'


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux)."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')
