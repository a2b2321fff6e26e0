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
Peak memory of load_checkpoint on the shipped model and on hostile checkpoint files.

Each hostile file is the shipped model with one field changed (an expanded
tensor that claims 5e8, 2e9 or 1e13 values of one stored float, a meta
tensor, a complex NaN classifier, a tiny weight viewing 64 MiB of storage,
temperature 1e-300) or a file over the size bound; two larger models (about
11M parameters, stored as float32 and as float64) show how a legitimate load
scales with the model (its float32 size is printed). Each file is loaded in a
fresh Python process; the table gives that process's resident memory after
importing torch and pointcam_ros, its peak RSS during load_checkpoint (Linux
VmHWM, reset after the imports through /proc/self/clear_refs), the growth,
the time, and what happened (loaded, or the start of the CheckpointError).

    .venv/bin/python bench/bench_checkpoint_memory.py
"""

import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import Callable

from machine import describe
from pointcam_ros.model.checkpoint import default_model_path, MAX_FILE_BYTES, save_checkpoint
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
import torch

#: A larger PointNet (~11M parameters, 44 MB of float32) for the legitimate-load rows.
LARGE = PointNetConfig(num_classes=7, mlp2=(128, 4096), head=(2048, 1024))

#: Run in a fresh interpreter: import, measure, load, measure, print one JSON line.
_CHILD = """
import json, sys, time
from pointcam_ros.model.checkpoint import CheckpointError, load_checkpoint
import torch
def status(field):
    with open('/proc/self/status') as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field)) / 1024
with open('/proc/self/clear_refs', 'w') as clear:
    clear.write('5')  # peak RSS (VmHWM) := current RSS, forgetting the imports' peak
before, started = status('VmRSS'), time.perf_counter()
try:
    loaded = load_checkpoint(sys.argv[1])
    outcome = f'loaded ({sum(p.numel() for p in loaded.model.parameters()):,} parameters)'
except CheckpointError as exc:
    outcome = 'CheckpointError: ' + str(exc).replace(sys.argv[1], '<file>')
except BaseException as exc:  # what the loader must never let through
    outcome = f'RAW {type(exc).__name__}: {exc}'
print(json.dumps({'before': before, 'after': status('VmHWM'),
                  'seconds': time.perf_counter() - started, 'outcome': outcome}))
"""


def _variants(payload: dict) -> dict[str, Callable[[dict], None]]:
    """Name -> change of the shipped model's payload that makes a hostile file."""
    def expanded(count: int) -> Callable[[dict], None]:
        def change(p: dict) -> None:
            p['state_dict']['classifier.bias'] = torch.zeros(1).expand(count)
        return change

    def set_entry(key: str, value) -> Callable[[dict], None]:
        def change(p: dict) -> None:
            p['state_dict'][key] = value
        return change

    weight = payload['state_dict']['classifier.weight']
    return {
        'expanded tensor, 5e8 values': expanded(int(5e8)),
        'expanded tensor, 2e9 values': expanded(int(2e9)),
        'expanded tensor, 1e13 values': expanded(int(1e13)),
        'meta tensor': set_entry('classifier.bias', torch.zeros(
            payload['state_dict']['classifier.bias'].shape, device='meta')),
        'complex64 NaN classifier': set_entry('classifier.weight', torch.full(
            weight.shape, complex(float('nan'), 0), dtype=torch.complex64)),
        'weight viewing 64 MiB': set_entry('classifier.bias', torch.zeros(2 ** 24)[
            :payload['state_dict']['classifier.bias'].numel()]),
        'temperature 1e-300': lambda p: p.update(temperature=1e-300),
    }


def _measure(path: Path) -> dict:
    result = subprocess.run([sys.executable, '-c', _CHILD, str(path)], capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ['no output'])[-1]
        return {'before': float('nan'), 'after': float('nan'), 'seconds': float('nan'),
                'outcome': f'process failed ({result.returncode}): {tail}'}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """Write the hostile files to a temporary folder, load each in a subprocess, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--width', type=int, default=90, help='characters of each outcome')
    args = parser.parse_args()
    print(f'# {describe()}')
    shipped = default_model_path()
    cases = {'shipped model': shipped}
    with tempfile.TemporaryDirectory() as folder:
        for name, change in _variants(torch.load(shipped, weights_only=True)).items():
            payload = torch.load(shipped, weights_only=True)
            change(payload)
            path = Path(folder) / (name.replace(' ', '_').replace(',', '') + '.pt')
            torch.save(payload, path)
            cases[name] = path
        large = PointNetClassifier(LARGE).eval()
        megabytes = sum(p.numel() for p in large.parameters()) * 4 / 2 ** 20
        for dtype in (torch.float32, torch.float64):
            path = Path(folder) / f'large_{dtype}.pt'
            save_checkpoint(path, large.to(dtype), [f'c{i}' for i in range(7)], 256, 'center')
            cases[f'{megabytes:.0f} MB model as {str(dtype)[6:]}'] = path
        huge = Path(folder) / 'oversized.pt'
        with open(huge, 'wb') as stream:
            stream.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
        cases['file over MAX_FILE_BYTES'] = huge
        print(f"{'case':30} {'file':>10} {'RSS':>8} {'peak':>8} {'growth':>8} {'time':>7}"
              '  outcome')
        for name, path in cases.items():
            row = _measure(path)
            size = path.stat().st_size
            print(f"{name:30} {size / 2 ** 20:8.2f}MB {row['before']:6.0f}MB "
                  f"{row['after']:6.0f}MB {row['after'] - row['before']:6.1f}MB "
                  f"{row['seconds']:6.2f}s  {row['outcome'][:args.width]}")


if __name__ == '__main__':
    main()
