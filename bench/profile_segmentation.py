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
Time each step of ``segment_scene`` per sensor and design; keep a label reference for parity.

Steps: roi, ground (plane fit + local level), voxel (components), split (finer
pass), range (angle criterion: ``neighbour_pairs``, ``beta``, components),
merge (re-joining), keep (filter). Scans are the simulated ones of
``bench/bench_pipeline.py`` (``random_scene(5000 + i, kind)``, finite points
only), cached in ``--scans-file`` (.npz) so the simulator runs once. One
thread; median ms over the scans (fastest of ``--repeat`` runs each).

    .venv/bin/python bench/profile_segmentation.py --kind street --scans 10
        [--save-reference ref.npz | --check-reference ref.npz]
"""

import argparse
from pathlib import Path
import time

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception import range_image, segmentation
import torch

SENSORS = ('vlp16', 'hdl64', 'os1_128')
STEPS = ('roi', 'ground', 'voxel', 'split', 'pairs', 'angle', 'merge', 'keep', 'total')


def load_scans(path: Path, kind: str, count: int) -> dict:
    """``{sensor: [(M, 3) float32 finite points]}``: bench_pipeline's scans, cached in ``path``."""
    if path.exists():
        data = np.load(path)
        return {s: [data[f'{s}_{i}'] for i in range(count)] for s in SENSORS}
    from pointcam_ros.formats.cloud_io import read_cloud
    from pointcam_ros.sim.clouds import scan_to_cloud
    from pointcam_ros.sim.simulator import random_scene, scan, SENSORS as PRESETS
    scans = {}
    for name in SENSORS:
        scans[name] = []
        for i in range(1, count + 1):  # bench_pipeline skips scan 0 (warm-up)
            xyz = read_cloud(scan_to_cloud(scan(random_scene(5_000 + i, kind=kind),
                                                PRESETS[name], i))).xyz
            xyz = xyz[np.isfinite(xyz).all(axis=1)].astype(np.float32)
            scans[name].append(np.ascontiguousarray(xyz))
    np.savez(path, **{f'{s}_{i}': x for s, xs in scans.items() for i, x in enumerate(xs)})
    return scans


def profile_once(xyz: np.ndarray, config: PipelineConfig, design: str) -> dict:
    """Run the steps of ``segment_scene`` on ``xyz`` (M, 3) float32; ``{step: ms}``."""
    times = {}
    clock = time.perf_counter

    def mark(step: str, since: float) -> float:
        now = clock()
        times[step] = 1e3 * (now - since)
        return now

    t = t0 = clock()
    roi_idx = np.flatnonzero(segmentation.region_of_interest(xyz, config))
    roi = xyz[roi_idx]
    t = mark('roi', t)
    plane = segmentation.fit_ground(roi, config.ground_threshold, config.seed)
    height = segmentation.plane_height(roi, plane)
    above_ground = height - segmentation.ground_level(roi, height)
    low = above_ground <= np.float32(config.ground_threshold)
    points, above_height = roi[~low], above_ground[~low]
    t = mark('ground', t)
    cluster, count = segmentation.cluster_voxels(points, config.cluster_tolerance,
                                                 config.cluster_z_tolerance)
    t = mark('voxel', t)
    cluster, count = segmentation.split_wide_clusters(cluster, count, points, config)
    t = mark('split', t)
    if design == 'range':
        extent = segmentation.cluster_extent(cluster, count, points, axes=2)
        split = extent > np.float32(segmentation.RANGE_WIDE)
        sub = np.flatnonzero(split[cluster])
        range_image.neighbour_pairs(points[sub])
        t = mark('pairs', t)
        pieces, num, cut_a, cut_b = range_image.angle_pieces(points, cluster, count, split)
        times['angle'] = 1e3 * (clock() - t) - times['pairs']  # angle_pieces repeats pairs
        t = clock()
        cluster, count = range_image.merge_pieces(points, above_height, pieces, num, cluster,
                                                  config.min_cluster_points, (cut_a, cut_b))
        t = mark('merge', t)
    segmentation.keep_clusters(cluster, count, points, config)
    t = mark('keep', t)
    times['total'] = sum(times.values())
    del t0
    return times


def labels_of(scans: dict, config: PipelineConfig) -> dict:
    """``{key: (M,) int32 labels}`` of ``segment_scene`` on every scan."""
    return {f'{s}_{i}': segmentation.segment_scene(x, config).labels
            for s, xs in scans.items() for i, x in enumerate(xs)}


def main() -> None:
    """Print the per-step table; save or check the label reference."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--kind', default='street')
    parser.add_argument('--scans', type=int, default=10)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--scans-file', type=Path, default=None)
    parser.add_argument('--save-reference', type=Path, default=None)
    parser.add_argument('--check-reference', type=Path, default=None)
    parser.add_argument('--designs', nargs='+', default=['voxel', 'range'])
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = args.scans_file or Path(f'/tmp/profile_segmentation_{args.kind}_{args.scans}.npz')
    scans = load_scans(path, args.kind, args.scans)
    configs = {d: PipelineConfig(segmentation=d) for d in ('voxel', 'range')}
    if args.save_reference or args.check_reference:
        labels = {d: labels_of(scans, c) for d, c in configs.items()}
        flat = {f'{d}/{k}': v for d, ls in labels.items() for k, v in ls.items()}
        if args.save_reference:
            np.savez(args.save_reference, **flat)
        else:
            reference = np.load(args.check_reference)
            bad = [k for k in reference.files if not np.array_equal(reference[k], flat[k])]
            print(f'parity: {len(reference.files) - len(bad)}/{len(reference.files)} '
                  f'scans identical' + (f'; differ: {bad}' if bad else ''))
    print(f"{'sensor':<8} {'design':<6} " + ' '.join(f'{s:>7}' for s in STEPS))
    for sensor in SENSORS:
        for design in args.designs:
            runs = []
            for xyz in scans[sensor]:
                best = None
                for _ in range(args.repeat):
                    times = profile_once(xyz, configs[design], design)
                    if best is None or times['total'] < best['total']:
                        best = times
                runs.append(best)
            row = [np.median([r.get(s, 0.0) for r in runs]) for s in STEPS]
            print(f'{sensor:<8} {design:<6} ' + ' '.join(f'{v:>7.1f}' for v in row))


if __name__ == '__main__':
    main()
