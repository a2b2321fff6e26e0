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
Fleet throughput: the same bags explained by 1 and 2 local jobs and by Ray with 2 CPUs.

Writes --bags MCAP bags of --scans simulated scans each into a temporary
folder, then times :func:`explain_bags` over all of them with
``LocalBackend(1)``, ``LocalBackend(2)`` and ``RayBackend(workers=2)`` on a
local Ray cluster started with ``num_cpus=2``. Every worker uses one torch
thread (``cpu_threads=1``), so two workers do not oversubscribe two cores.
Each run starts its workers and loads the model in each (included in the
time); one-off costs (the local fork server's imports, starting the Ray
cluster) are paid by a one-bag warm-up run that is not timed. Prints scans/s
per configuration, the speed-up of 2 jobs over 1 and Ray's overhead over 2
local jobs; --repeat N keeps the best of N runs per configuration. It also
prints the workers' CPU time per scan (user + system, from the workers'
own clocks): on a machine shared with other jobs the wall-clock rates say
little about scaling, the CPU cost per scan says whether a configuration
adds work.

    .venv/bin/python bench/bench_fleet.py [--bags 8] [--scans 40] [--sensor vlp16]
"""

import argparse
import os
from pathlib import Path
import tempfile
import time

from machine import describe
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import rosbags_cloud, typestore
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
from pointcam_ros.tools.fleet import explain_bags, FleetOptions, LocalBackend, RayBackend
from rosbags.rosbag2 import StoragePlugin, Writer


def write_bags(folder: Path, bags: int, scans: int, sensor: str) -> list[Path]:
    """Write ``bags`` MCAP bags of ``scans`` simulated scans; return their paths."""
    store = typestore()
    t = store.types
    clouds = [scan_to_cloud(scan(random_scene(7_000 + i), SENSORS[sensor], i))
              for i in range(min(scans, 10))]
    paths = []
    for b in range(bags):
        path = folder / f'drive{b}'
        with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            conn = writer.add_connection('/points', 'sensor_msgs/msg/PointCloud2',
                                         typestore=store)
            for i in range(scans):
                header = t['std_msgs/msg/Header'](
                    stamp=t['builtin_interfaces/msg/Time'](sec=i, nanosec=0), frame_id='lidar')
                msg = rosbags_cloud(store, clouds[(i + b) % len(clouds)], header)
                writer.write(conn, (i + 1) * 100_000_000,
                             store.serialize_cdr(msg, 'sensor_msgs/msg/PointCloud2'))
        paths.append(path)
    return paths


def timed(bags: list[Path], out: Path, config: PipelineConfig,
          backend) -> tuple[float, int, float]:
    """Explain ``bags`` into ``out``; return (seconds, scans, worker CPU seconds)."""
    started = time.perf_counter()
    summary = explain_bags(bags, out, config, FleetOptions(progress=False), backend)
    seconds = time.perf_counter() - started
    if summary.count('done') != len(bags):
        raise RuntimeError(summary.describe())
    return seconds, summary.scans, sum(b.cpu_seconds for b in summary.bags)


def main():
    """Build the bags, run each configuration, print the figures."""
    parser = argparse.ArgumentParser(description='pointcam_bag fleet throughput')
    parser.add_argument('--bags', type=int, default=8)
    parser.add_argument('--scans', type=int, default=40, help='scans per bag')
    parser.add_argument('--sensor', default='vlp16')
    parser.add_argument('--model', default='', help="checkpoint ('' = the shipped model)")
    parser.add_argument('--repeat', type=int, default=1)
    parser.add_argument('--no-ray', action='store_true')
    args = parser.parse_args()
    config = PipelineConfig(model_path=args.model, device='cpu', cpu_threads=1)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bags = write_bags(tmp, args.bags, args.scans, args.sensor)
        runs = [('1 local job', lambda: LocalBackend(1)),
                ('2 local jobs', lambda: LocalBackend(2))]
        if not args.no_ray:
            import ray
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            runs.append(('Ray, 2 CPUs', lambda: RayBackend(workers=2)))
        run = 0
        for name, backend in runs:
            run += 1
            timed(bags[:1], tmp / f'warmup{run}', config, backend())
            best = None
            for _ in range(args.repeat):
                run += 1
                load = os.getloadavg()[0]
                seconds, scans, cpu = timed(bags, tmp / f'out{run}', config, backend())
                if best is None or seconds < best[0]:
                    best = (seconds, cpu, load)
            seconds, cpu, load = best
            rates[name] = scans / seconds
            print(f'{name:>12}: {scans} scans in {seconds:.1f} s = {rates[name]:.2f} scans/s; '
                  f'worker CPU {1e3 * cpu / scans:.1f} ms/scan; load average before the run '
                  f'{load:.1f}', flush=True)
        if not args.no_ray:
            ray.shutdown()
    print(f'machine: {describe("cpu")}')
    print(f'{args.bags} bags x {args.scans} {args.sensor} scans, model '
          f'{args.model or "shipped default"}, 1 torch thread per worker')
    print(f'2 jobs / 1 job: {rates["2 local jobs"] / rates["1 local job"]:.2f}x '
          '(target >= 1.5x)')
    if 'Ray, 2 CPUs' in rates:
        overhead = 1 - rates['Ray, 2 CPUs'] / rates['2 local jobs']
        print(f'Ray overhead vs 2 local jobs: {100 * overhead:.1f} % (target <= 15 %)')


if __name__ == '__main__':
    main()
