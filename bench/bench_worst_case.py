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
Worst-case cost of one scan: time and peak memory for the extremes of every parameter.

A 130k-point HDL-64E-like scan (64 beams x 2350 columns, range 1000 m) of a
street with objects out to 300 m is processed by ScenePipeline under each
case below, each in a fresh subprocess so that its peak resident memory
(``VmHWM``) is its own: ``rss0`` after loading the model and the scan,
``peak`` after one untimed warm-up and the timed scans. Cases: the defaults, the
issue-11 settings (5 cm voxels with max_range 1000 m) and every range at its
accepted extreme (``worst``, PipelineConfig's bounds) with every saliency method
(each explains at most its ``Explainer.max_objects`` objects a scan: 1,024
for Grad-CAM, 32 for occlusion's 17 forward passes per object), and every
cluster too large to be an object (all of them cut again, looking for people).

    .venv/bin/python bench/bench_worst_case.py [--runs 3] [--device cpu] [--cpu-threads 1]
"""

import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import time

from machine import describe
import numpy as np
from pointcam_ros.common.config import EXPLAINERS

#: PipelineConfig changes per case; 'worst' puts every range at its accepted extreme.
WORST = {'min_range': 0.0, 'max_range': 1000.0, 'min_z': -100.0, 'max_z': 100.0,
         'ground_threshold': 0.01, 'cluster_tolerance': 0.05, 'cluster_z_tolerance': 0.05,
         'min_cluster_points': 1, 'max_cluster_points': 10_000_000, 'min_object_size': 0.01,
         'max_object_size': 1000.0, 'split_size': 0.5, 'split_tolerance': 0.02}
CASES = {
    'defaults': {},
    'max_range 1000': {'max_range': 1000.0},
    'issue 11: tol 0.05, range 1000': {'cluster_tolerance': 0.05, 'max_range': 1000.0},
    'issue 11: tol 0.05/0.05, range 1000': {'cluster_tolerance': 0.05,
                                            'cluster_z_tolerance': 0.05, 'max_range': 1000.0},
    **{f'worst ({method})': {**WORST, 'method': method} for method in EXPLAINERS},
    # every limit at its extreme, and every cluster of two points or more too large to be
    # an object: no object is kept, and all of the scan's clusters are cut on the split's
    # fine grid to look for people in them
    'worst, every cluster oversize': {**WORST, 'max_cluster_points': 1},
}


def make_scan(path: Path) -> int:
    """Simulate the scan and save it as ``(M, 3)`` float32 ``.npy``; return M."""
    from pointcam_ros.sim.simulator import random_scene, scan, SensorPreset, SENSORS
    hdl64 = SENSORS['hdl64']
    # 2350 columns (HDL-64E at ~9 Hz) make the scan ~130k points with the sky rays lost.
    sensor = SensorPreset('hdl64_1000m', hdl64.vertical_deg, 2350, hdl64.rate_hz, 1000.0,
                          hdl64.layout)
    scene = random_scene(7_000_000, num_objects=80, extent=300.0)
    xyz = scan(scene, sensor, 0).flat()[0]
    np.save(path, xyz)
    return len(xyz)


def _vm_hwm_mib() -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError('no VmHWM in /proc/self/status (Linux only)')


def child(case: str, scan_path: str, runs: int, device: str, threads: int) -> dict:
    """Run one case in this process and return its figures."""
    from pointcam_ros.common.config import PipelineConfig
    from pointcam_ros.perception.pipeline import ScenePipeline
    import torch
    config = PipelineConfig(device=device, cpu_threads=threads).replace(**CASES[case])
    pipeline = ScenePipeline(config)
    xyz = np.load(scan_path)
    rss0 = _vm_hwm_mib()
    pipeline.process(xyz)  # warm-up: first-call set-up of torch kernels is not timed
    seconds, stages = [], []
    for _ in range(runs):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = pipeline.process(xyz)
        seconds.append(time.perf_counter() - start)
        stages.append(out.timings)
    stage = {k: float(np.median([s[k] for s in stages])) for k in stages[0]}
    return {'case': case, 'points': len(xyz), 'objects': len(out.objects),
            'median_s': float(np.median(seconds)), 'max_s': float(max(seconds)),
            'rss0_mib': rss0, 'peak_mib': _vm_hwm_mib(), 'stages_ms': stage,
            'gpu_peak_mib': (torch.cuda.max_memory_allocated() / 2 ** 20
                             if device.startswith('cuda') else None)}


def main() -> int:
    """Simulate the scan, run every case in its own subprocess, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=list(CASES))
    parser.add_argument('--cpu-threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--scan', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row = child(args.child, args.scan, args.runs, args.device, args.cpu_threads)
        print(json.dumps(row))
        return 0
    print(f'device: {describe(args.device)}; each case in a subprocess with '
          f'{args.cpu_threads} torch thread(s)')
    with tempfile.TemporaryDirectory() as tmp:
        scan_path = Path(tmp) / 'scan.npy'
        print(f'scan: {make_scan(scan_path)} points, HDL-64E beams, objects to 300 m')
        print(f"{'case':<38} {'objects':>7} {'median s':>9} {'max s':>7} {'rss0 MiB':>9} "
              f"{'peak MiB':>9}  stages ms (median)")
        for case in args.cases:
            done = subprocess.run(
                [sys.executable, __file__, '--child', case, '--scan', str(scan_path),
                 '--runs', str(args.runs), '--device', args.device,
                 '--cpu-threads', str(args.cpu_threads)],
                capture_output=True, text=True)
            if done.returncode != 0:
                print(f'{case:<38} FAILED: {done.stderr.strip().splitlines()[-1:]}')
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            stages = ', '.join(f'{k} {v:.0f}' for k, v in row['stages_ms'].items())
            gpu = f", GPU peak {row['gpu_peak_mib']:.0f} MiB" if row['gpu_peak_mib'] else ''
            print(f"{case:<38} {row['objects']:>7} {row['median_s']:>9.2f} {row['max_s']:>7.2f} "
                  f"{row['rss0_mib']:>9.0f} {row['peak_mib']:>9.0f}  {stages}{gpu}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
