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
Where one scan's time goes, step by step, on the torch (GPU) path.

bench_pipeline.py times the pipeline's stages; this script splits them
further. It times each step function of the torch segmentation and of the
pipeline (inclusive: a step that calls another counts its time too),
synchronising the device around each, so that launch-bound and sync-bound
steps show up. Then one scan under ``torch.profiler``: the operators with
the most host time, and how often the host waited for the device. Also
whether each scan's objects equal the numpy backend's. The timed scans
are distinct (a recorded entry caps their number) and the first is also
run once before, as a warm-up.

    .venv/bin/python bench/profile_pipeline.py --device cuda \
        --scans-file bench/data/scans.npz --sensors hdl64 hdl64_street

Without ``--scans-file`` it simulates (needs open3d). The step timers add a
device sync per call, so their sum exceeds bench_pipeline.py's figures.
"""

import argparse
from collections import defaultdict
import contextlib
import functools
from pathlib import Path
import time

from bench_pipeline import scan_clouds
from machine import describe
import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.cloud_io import read_cloud
from pointcam_ros.perception import segmentation, segmentation_torch
from pointcam_ros.perception import stages as stages_module
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.stages import Stages
import torch

SEGMENT_STEPS = ('region_of_interest', 'fit_ground', 'ground_level', 'cluster_voxels',
                 'connected_components', 'split_wide_clusters', 'keep_clusters')
#: Functions the torch stages call (looked up in the stages module at each call).
PIPELINE_STEPS = ('largest_objects_torch', 'oriented_boxes_torch', 'core_sizes_torch')
#: Methods: the model step of the stages, the labelling of the pipeline.
METHOD_STEPS = ((Stages, 'model'), (ScenePipeline, '_label'))


@contextlib.contextmanager
def step_timers(device: torch.device, totals: dict):
    """Wrap the step functions so that each call adds its synced wall time to ``totals``."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def timed(name, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            sync()
            start = time.perf_counter()
            out = function(*args, **kwargs)
            sync()
            totals[name][0] += 1e3 * (time.perf_counter() - start)
            totals[name][1] += 1
            return out
        return wrapper

    saved = [(segmentation_torch if name == 'connected_components' else segmentation, name)
             for name in SEGMENT_STEPS]
    saved += [(stages_module, name) for name in PIPELINE_STEPS]
    saved += list(METHOD_STEPS)
    originals = [(owner, name, getattr(owner, name)) for owner, name in saved]
    try:
        for owner, name, function in originals:
            setattr(owner, name, timed(name, function))
        yield
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def main() -> None:
    """Print the step table, the profiler's top operators and the numpy comparison."""
    parser = argparse.ArgumentParser(description='per-step profile of the torch path')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--sensors', nargs='+', default=['hdl64'])
    parser.add_argument('--scans', type=int, default=6)
    parser.add_argument('--kind', default='open', choices=('open', 'street', 'campus'))
    parser.add_argument('--scans-file', type=Path, default=None)
    parser.add_argument('--top', type=int, default=25, help='profiler rows to print')
    args = parser.parse_args()
    if args.scans < 1:
        parser.error('--scans must be at least 1')
    recorded = None
    if args.scans_file is not None:
        from record_scans import load_scans
        recorded = load_scans(args.scans_file)
    device = torch.device(args.device)
    pipeline = ScenePipeline(PipelineConfig(device=args.device), backend='torch')
    reference = ScenePipeline(PipelineConfig(device='cpu'), backend='numpy')
    print(f'device: {describe(args.device)}')
    for name in args.sensors:
        count = args.scans  # distinct scans: a recorded entry may hold fewer
        if recorded is not None and name in recorded:
            count = min(count, len(recorded[name][1]))
        clouds = scan_clouds(name, count, recorded, args.kind)
        scans = [read_cloud(cloud).xyz for cloud in clouds]
        pipeline.process(scans[0])  # warm-up: CUDA context, graphs, caches
        totals = defaultdict(lambda: [0.0, 0])
        walls, same = [], 0
        with step_timers(device, totals):
            for xyz in scans:
                start = time.perf_counter()
                out = pipeline.process(xyz)
                walls.append(1e3 * (time.perf_counter() - start))
        for xyz in scans:
            same += bool(np.array_equal(pipeline.process(xyz).object_id,
                                        reference.process(xyz).object_id))
        print(f'\n{name}: {len(scans[-1])} points, {len(out.objects)} objects in the last '
              f'scan; process() {np.median(walls):.1f} ms median with the step syncs; '
              f'objects equal to the numpy backend in {same} of {count} scans')
        print(f"{'step':<24} {'ms/scan':>8} {'calls/scan':>10}")
        for step, (total, calls) in totals.items():
            print(f'{step:<24} {total / count:>8.2f} {calls / count:>10.1f}')
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == 'cuda':
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            pipeline.process(scans[-1])
        events = prof.key_averages()
        print(events.table(sort_by='self_cpu_time_total', row_limit=args.top,
                           max_name_column_width=40))
        waits = {e.key: e.count for e in events
                 if e.key in ('cudaStreamSynchronize', 'cudaDeviceSynchronize',
                              'aten::_local_scalar_dense', 'aten::nonzero',
                              'cudaMemcpyAsync', 'cudaLaunchKernel')}
        print(f'host waits and launches in one scan: {waits}')


if __name__ == '__main__':
    main()
