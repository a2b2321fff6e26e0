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
Scene pipeline speed per stage on simulated scans of real sensors.

Stages: convert (PointCloud2 bytes in the driver layout -> numpy), segment
(ROI, ground, clustering), sample (resample + normalise), model (PointNet +
Grad-CAM, one batch), map_back (saliency to every point, boxes), encode
(saliency cloud bytes). Median and p90 over --scans scans of different
scenes, after one warm-up scan. ``--backend auto`` runs the per-scan path
with torch on the device when it is CUDA (segmentation included) and with
numpy/scipy on the CPU; ``--backend torch --device cpu`` times the GPU code
path on the CPU.

    .venv/bin/python bench/bench_pipeline.py [--device cuda] [--backend auto|numpy|torch]
        [--sensors vlp16 hdl64] [--scans 20] [--cpu-threads N]

With ``--scans-file`` (bench/record_scans.py) the scans come from the file,
cycled to --scans, and open3d is not needed (e.g. on the lent GPU machine).
"""

import argparse
from pathlib import Path
import time

from machine import describe
import numpy as np
from pointcam_ros.formats.cloud_io import read_cloud, saliency_cloud
from pointcam_ros.perception.pipeline import BACKENDS, ScenePipeline
from settings import add_set_option, config_from_set
import torch

STAGES = ('convert', 'segment', 'sample', 'model', 'map_back', 'encode', 'total')


def scan_clouds(name: str, count: int, recorded, kind: str = 'open') -> list:
    """Return ``count`` driver-layout clouds of ``name``: simulated (``kind``), or recorded."""
    if recorded is not None:
        if name not in recorded:
            raise SystemExit(f'the scans file has no {name} scans, only {sorted(recorded)}')
        clouds = recorded[name][1]
        return [clouds[i % len(clouds)] for i in range(count)]
    from pointcam_ros.sim.clouds import scan_to_cloud  # the simulator needs open3d
    from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
    return [scan_to_cloud(scan(random_scene(5_000 + i, kind=kind), SENSORS[name], i))
            for i in range(count)]


def main():
    """Run the benchmark and print one table per sensor."""
    parser = argparse.ArgumentParser(description='pipeline stage timings')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--sensors', nargs='+', default=None,
                        help='default: vlp16 hdl64 os1_128, or those in --scans-file')
    parser.add_argument('--scans', type=int, default=20)
    parser.add_argument('--method', default='gradcam')
    parser.add_argument('--scans-file', type=Path, default=None,
                        help='recorded scans (bench/record_scans.py), cycled; no open3d needed')
    parser.add_argument('--backend', default='auto', choices=BACKENDS)
    parser.add_argument('--kind', default='open', choices=('open', 'street', 'campus'),
                        help='simulated scene kind (default: %(default)s)')
    add_set_option(parser, 'split_size=1000')
    parser.add_argument('--cpu-threads', type=int, default=None,
                        help="torch CPU threads (default: the config's default)")
    args = parser.parse_args()
    recorded = None
    if args.scans_file is not None:
        from record_scans import load_scans
        recorded = load_scans(args.scans_file)
    if args.sensors is None:
        args.sensors = list(recorded) if recorded else ['vlp16', 'hdl64', 'os1_128']
    config = config_from_set(parser, args, device=args.device, method=args.method)
    if args.cpu_threads is not None:
        config = config.replace(cpu_threads=args.cpu_threads)
    pipeline = ScenePipeline(config, backend=args.backend)
    print(f'device: {describe(args.device)}; backend {pipeline.backend}; '
          f'model {pipeline.loaded.path}')
    for name in args.sensors:
        clouds = scan_clouds(name, args.scans + 1, recorded, args.kind)
        rows = {stage: [] for stage in STAGES}
        objects = []
        for i, cloud in enumerate(clouds):
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            start = time.perf_counter()
            points = read_cloud(cloud)
            converted = time.perf_counter()
            result = pipeline.process(points.xyz)
            processed = time.perf_counter()
            saliency_cloud(points.xyz, result.saliency, result.class_id, result.object_id)
            end = time.perf_counter()
            if i == 0:
                continue  # warm-up
            rows['convert'].append(1e3 * (converted - start))
            for stage in ('segment', 'sample', 'model', 'map_back'):
                rows[stage].append(result.timings[stage])
            rows['encode'].append(1e3 * (end - processed))
            rows['total'].append(1e3 * (end - start))
            objects.append(len(result.objects))
        points_per_scan = int(np.mean([c.width * c.height for c in clouds]))
        print(f'\n{name}: {points_per_scan} points/scan (organized), '
              f'{np.mean(objects):.1f} objects/scan, {args.scans} scans')
        print(f"{'stage':<10} {'median ms':>10} {'p90 ms':>8}")
        for stage in STAGES:
            values = rows[stage]
            print(f'{stage:<10} {np.median(values):>10.1f} {np.percentile(values, 90):>8.1f}')


if __name__ == '__main__':
    main()
