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
Segmentation designs side by side (issue #23): road users found as one cluster.

Segmentation only, no classifier. For each design of
:data:`~pointcam_ros.perception.segmentation.DESIGNS` and each road user
(car, truck, pedestrian, cyclist) with >= ``--min-points`` points:

* ``one``: the cluster holding most of its points has point IoU >= 0.7;
* ``under``: otherwise, and that cluster is mostly (>= 30 %) other points
  (merged with something: a wall, a tree, another road user);
* ``over``: otherwise, in pieces or partly dropped (the best cluster is
  mostly it but holds < 70 % of it);
* ``miss``: none of its points in any kept cluster.

Simulator: scenes of unseen seeds (from 5,000,000; the data sets use
0-2,999,999), street and campus, each sensor preset in turn, sensor mount
height 1.8 m; objects within 40 m (IoU over all their points, as
``bench/pipeline_quality.py``). Real scans (``--real``, skipped when the
folder is missing): SemanticKITTI 00/000000 (per-point instance labels),
KITTI 000006-000010 (boxes) and Argoverse 2 (cuboids), IoU over the
object's points the segmentation sees (in the region of interest, not
ground), objects at any range up to ``max_range``; also the share found
with IoU >= 0.5 (real_check's bar). Also the mean segmentation time per
scan on this machine (one thread) and the mean number of kept clusters.

    .venv/bin/python bench/segmentation_compare.py --scenes 12 --real ../shared/realdata
"""

import argparse
from dataclasses import dataclass, field
import glob
import math
from pathlib import Path
import sys
import time
from typing import Optional

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.segmentation import DESIGNS, region_of_interest, segment_scene
import realdata  # bench/realdata.py: readers shared with real_check.py
import torch

ROAD_USERS = ('car', 'truck', 'pedestrian', 'cyclist')
OUTCOMES = ('one', 'under', 'over', 'miss')
#: Runs per scan and design; the fastest is the time counted (``--repeat``).
REPEAT = 1


@dataclass
class Tally:
    """Outcome counts per class, clusters kept and seconds spent, for one design and set."""

    counts: dict = field(default_factory=lambda: {c: dict.fromkeys(OUTCOMES, 0)
                                                  for c in ROAD_USERS})
    loose: dict = field(default_factory=lambda: dict.fromkeys(ROAD_USERS, 0))  # IoU >= 0.5
    seconds: float = 0.0
    scans: int = 0
    clusters: int = 0


def outcome(labels: np.ndarray, truth: np.ndarray) -> tuple[str, float]:
    """Outcome of one object (``truth`` (M,) bool) under ``labels`` (M,) int32, and its IoU."""
    ids = labels[truth]
    ids = ids[ids >= 0]
    if len(ids) == 0:
        return 'miss', 0.0
    cluster = labels == np.bincount(ids).argmax()
    inter = float((cluster & truth).sum())
    iou = inter / float((cluster | truth).sum())
    if iou >= 0.7:
        return 'one', iou
    if inter < 0.7 * cluster.sum():
        return 'under', iou
    return 'over', iou


def run_designs(xyz: np.ndarray, objects: list[tuple[str, np.ndarray]], config: PipelineConfig,
                designs: list[str], tallies: dict, visible_only: bool) -> None:
    """
    Segment ``xyz`` with every design; add each object's outcome to ``tallies[design]``.

    The time counted is the fastest of ``REPEAT`` runs (the machine is shared).
    """
    for design in designs:
        best = math.inf
        for _ in range(REPEAT):
            started = time.perf_counter()
            seg = segment_scene(xyz, config, design)
            best = min(best, time.perf_counter() - started)
        tally = tallies[design]
        tally.seconds += best
        tally.scans += 1
        tally.clusters += seg.num_objects
        visible = region_of_interest(xyz, config) & ~seg.ground
        for name, truth in objects:
            mask = truth & visible if visible_only else truth
            result, iou = outcome(seg.labels, mask)
            tally.counts[name][result] += 1
            tally.loose[name] += iou >= 0.5


def simulated(args: argparse.Namespace, config: PipelineConfig, designs: list[str]) -> dict:
    """Tallies per scene kind over ``args.scenes`` scenes of each kind."""
    from pointcam_ros.sim.simulator import CLASS_NAMES, random_scene, scan, SENSORS
    sensors = list(SENSORS)
    out = {}
    for kind in args.kinds:
        tallies = {d: Tally() for d in designs}
        for k in range(args.scenes):
            seed = args.first_seed + k
            scene = random_scene(seed, kind=kind)
            xyz, object_id, _ = scan(scene, SENSORS[sensors[k % len(sensors)]], seed).flat()
            objects = []
            for obj in scene.objects:
                name = CLASS_NAMES[obj.class_id]
                truth = object_id == obj.object_id
                if (name in ROAD_USERS and truth.sum() >= args.min_points
                        and math.hypot(*obj.center[:2]) <= 40):
                    objects.append((name, truth))
            run_designs(xyz, objects, config, designs, tallies, visible_only=False)
        out[f'sim {kind}'] = tallies
    return out


def semantic_kitti(root: Path, config: PipelineConfig, designs: list[str],
                   min_points: int) -> Optional[dict]:
    """Tallies on SemanticKITTI scans under ``root`` (instances from the label files)."""
    scans = list(realdata.semantic_kitti(root))
    return _labelled_scans(scans, config, designs, min_points) if scans else None


def _labelled_scans(scans: list, config: PipelineConfig, designs: list[str],
                    min_points: int) -> dict:
    """Tallies on real scans whose ``objects`` carry a name and a point mask each."""
    tallies = {d: Tally() for d in designs}
    for scan in scans:
        objects = _enough(scan.xyz, [(o.name, o.mask) for o in scan.objects], config,
                          min_points)
        run_designs(scan.xyz, objects, config, designs, tallies, visible_only=True)
    return tallies


def _enough(xyz: np.ndarray, objects: list, config: PipelineConfig, min_points: int) -> list:
    """Objects with at least ``min_points`` points in the region of interest."""
    roi = region_of_interest(xyz, config)
    return [(n, t) for n, t in objects if (t & roi).sum() >= min_points]


def kitti(root: Path, config: PipelineConfig, designs: list[str],
          min_points: int) -> Optional[dict]:
    """Tallies on the KITTI object frames under ``root / 'kitti'`` (boxes)."""
    from pointcam_ros.formats.kitti import box_in_velodyne, KITTI_TYPES, list_frames, read_frame
    folder = root / 'kitti'
    if not (folder / 'velodyne').is_dir():
        return None
    tallies = {d: Tally() for d in designs}
    for name in list_frames(folder):
        frame = read_frame(folder, name)
        xyz = np.ascontiguousarray(frame.points[:, :3], np.float32)
        objects = [(KITTI_TYPES[o.kind], box_in_velodyne(o, frame.calib).contains(xyz))
                   for o in frame.labels if o.kind in KITTI_TYPES]
        run_designs(xyz, _enough(xyz, objects, config, min_points), config, designs, tallies,
                    visible_only=True)
    return tallies


def argoverse(root: Path, config: PipelineConfig, designs: list[str],
              min_points: int) -> Optional[dict]:
    """Tallies on the Argoverse 2 sweeps under ``root / 'av2'`` (needs pyarrow)."""
    if not glob.glob(str(root / 'av2/*/annotations.feather')):
        return None
    try:
        scans = list(realdata.argoverse(root))
    except ImportError:
        print('argoverse 2: pyarrow missing, skipped (pip install pyarrow)', file=sys.stderr)
        return None
    return _labelled_scans(scans, config, designs, min_points)


def print_table(title: str, tallies: dict) -> None:
    """One block per set: per design, per class one/total and the over/under/miss counts."""
    print(f'\n{title}')
    print(f'{"design":<14} ' + ' '.join(f'{c:<22}' for c in ROAD_USERS)
          + f'{"all one":>12} {"iou>=.5":>8} {"clusters":>9} {"ms/scan":>8}')
    for design, tally in tallies.items():
        cells, one, total, loose = [], 0, 0, 0
        for name in ROAD_USERS:
            c = tally.counts[name]
            n = sum(c.values())
            one, total, loose = one + c['one'], total + n, loose + tally.loose[name]
            cells.append(f"{c['one']}/{n} o{c['over']} u{c['under']} m{c['miss']}")
        share = f'{one}/{total} {100 * one / max(total, 1):.0f}%'
        print(f'{design:<14} ' + ' '.join(f'{c:<22}' for c in cells)
              + f'{share:>12} {loose:>8} {tally.clusters / max(tally.scans, 1):>9.1f} '
              f'{1e3 * tally.seconds / max(tally.scans, 1):>8.0f}')


def main() -> None:
    """Measure every design on simulated scenes and, if given, the real scans."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--scenes', type=int, default=10, help='scenes per kind')
    parser.add_argument('--first-seed', type=int, default=5_000_000)
    parser.add_argument('--kinds', nargs='+', default=['street', 'campus'])
    parser.add_argument('--designs', nargs='+', default=list(DESIGNS), choices=DESIGNS)
    parser.add_argument('--min-points', type=int, default=30)
    parser.add_argument('--real', type=Path, help='../shared/realdata (skipped if missing)')
    parser.add_argument('--no-sim', action='store_true')
    parser.add_argument('--repeat', type=int, default=1,
                        help='segment each scan this often, count the fastest (timing)')
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    torch.set_num_threads(1)
    config = PipelineConfig()
    started = time.perf_counter()
    print(f'designs {args.designs}; {args.scenes} scenes per kind, seeds {args.first_seed}+'
          f', sensors in turn; objects with >= {args.min_points} points; time: fastest of '
          f'{REPEAT} per scan, one thread')
    results = {} if args.no_sim else simulated(args, config, args.designs)
    if args.real is not None and args.real.is_dir():
        for name, reader in (('SemanticKITTI', semantic_kitti), ('KITTI (boxes)', kitti),
                             ('Argoverse 2 (cuboids)', argoverse)):
            tallies = reader(args.real, config, args.designs, args.min_points)
            if tallies is not None:
                results[name] = tallies
    for title, tallies in results.items():
        print_table(title, tallies)
    print(f'\n(one/total o=over-segmented u=under-segmented (merged) m=missed; '
          f'{time.perf_counter() - started:.0f} s in all)')


if __name__ == '__main__':
    main()
