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
Model + Grad-CAM time per scan for cpu_threads 0 (torch's default), 1, 2, alone and under load.

Each setting runs in a fresh process (``torch.set_num_threads`` is
process-wide) that explains the same simulated VLP-16 / HDL-64E scans with
:class:`ScenePipeline` on the CPU and reports the median and p90 of the
model step (PointNet forward + Grad-CAM backward, ``timings['model']``) and
of the whole scan. "loaded" runs the same while ``--hogs`` busy-loop
processes (default: one per core) compete for the CPUs::

    .venv/bin/python bench/bench_threads.py [--sensors vlp16 hdl64] [--scans 10]
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import numpy as np

HOG = 'while True: pass'


def worker(scans_path: str, threads: int) -> None:
    """Child process: explain the saved scans, print one JSON line of timings."""
    import torch
    from pointcam_ros.common.config import PipelineConfig
    from pointcam_ros.perception.pipeline import ScenePipeline
    pipeline = ScenePipeline(PipelineConfig(device='cpu', cpu_threads=threads))
    data = np.load(scans_path)
    scans = [data[k] for k in sorted(data.files)]
    model, total = [], []
    for i, xyz in enumerate([scans[0]] + scans):  # the first one warms up
        start = time.perf_counter()
        result = pipeline.process(xyz)
        if i:
            total.append(1e3 * (time.perf_counter() - start))
            model.append(result.timings['model'])
    print(json.dumps({'torch_threads': torch.get_num_threads(), 'model': model,
                      'total': total, 'objects': len(result.objects)}))


def measure(scans_path: Path, threads: int, hogs: int) -> dict:
    """Run :func:`worker` in a fresh process, with ``hogs`` busy loops beside it."""
    busy = [subprocess.Popen([sys.executable, '-c', HOG]) for _ in range(hogs)]
    try:
        out = subprocess.run([sys.executable, __file__, '--worker', str(scans_path),
                              '--threads', str(threads)], capture_output=True, text=True,
                             check=True, timeout=1800)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Simulate the scans once, then time every setting; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--sensors', nargs='+', default=['vlp16', 'hdl64'])
    parser.add_argument('--scans', type=int, default=10)
    parser.add_argument('--threads', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--hogs', type=int, default=os.cpu_count())
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads[0])
        return 0
    from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
    print(f'{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}; '
          f'loaded = {args.hogs} busy-loop processes beside the pipeline')
    print(f'{"sensor":7} {"threads":>7} {"load":>6} {"model p50":>10} {"p90":>8} '
          f'{"scan p50":>9} {"p90":>8}   (ms; torch threads)')
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sensors:
            path = Path(tmp) / f'{name}.npz'
            scans = [scan(random_scene(6_000 + i), SENSORS[name], i).xyz.reshape(-1, 3)
                     for i in range(args.scans)]
            np.savez(path, **{f's{i:03d}': xyz for i, xyz in enumerate(scans)})
            for hogs in (0, args.hogs):
                for threads in args.threads:
                    out = measure(path, threads, hogs)
                    m50, m90 = np.percentile(out['model'], [50, 90])
                    t50, t90 = np.percentile(out['total'], [50, 90])
                    print(f'{name:7} {threads:>7} {"loaded" if hogs else "alone":>6} '
                          f'{m50:10.1f} {m90:8.1f} {t50:9.1f} {t90:8.1f}   '
                          f'({out["torch_threads"]})', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
