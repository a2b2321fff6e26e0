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
What the beams just under a raised cluster meet, on the real development scans.

Every road user stands on the ground. A cluster the model names as a road
user whose lowest returns (``rules.cluster_bottom``, strays set aside) are
at least ``--raised`` metres above the ground either floats (a tree crown,
a facade band above a shop window, a sign) or has its lower part hidden.
The beams that passed just under it tell which: per azimuth bin of
``--bin`` degrees of the cluster, the returns of other points whose
elevation lies between the cluster's lowest return there and where the
beam would be 0.3 m above the ground at the cluster's range. The bin is

* ``hidden``: one of them, not ground, is nearer than the cluster (by 1 m
  or more): something in front hid the bottom (a beam in this wedge passes
  0.3 m or more over the ground at the cluster, so what stops it sooner
  stands at least that high);
* ``support``: one, not ground, is at the cluster's range (within 1 m):
  something stands under it (a trunk, wheels cut off as their own cluster);
* ``open``: none of those: the beams met the ground or something beyond;
* ``empty``: no return there (no beam, or nothing came back).

Prints one line per raised cluster: ``clutter`` (not a road user, in
``bench/real_check.py``'s sense, named as one; ``shown`` is a false alarm,
``unknown`` was vetoed by a rule or ``min_confidence``) or ``road user
<class>`` (a labelled one, found). Then, per tag and shown/unknown, how
many clusters have at least half of their bins hidden, and how many open.
Reads the sets as ``bench/real_check.py`` does, with the shipped model at
its defaults.

    .venv/bin/python bench/raised_clusters.py ../shared/realdata [--raised 0.5]
"""

import argparse
from collections import Counter
import math
from pathlib import Path
import sys
from typing import Iterator, NamedTuple

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.results import SceneResult
from pointcam_ros.formats.kitti import list_frames, read_frame
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.rules import cluster_bottom, ROAD_USERS
from pointcam_ros.perception.segmentation import segment_scene

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_check  # noqa: E402,I100  (bench/real_check.py, next to this script)
import realdata  # noqa: E402

#: m; how much nearer (or how close in range) another return must be to hide (to support).
RANGE_MARGIN = 1.0
#: m; the wedge of beams looked at ends this high above the ground at the cluster.
LOW = 0.3
#: rad; returns this close in elevation to the cluster's lowest are on the same beam.
SAME_BEAM = math.radians(0.1)
STATES = ('hidden', 'support', 'open', 'empty')


def under_view(xyz: np.ndarray, ground: np.ndarray, height: np.ndarray, rows: np.ndarray,
               bin_rad: float) -> Counter:
    """
    Count the azimuth bins of one cluster by what the beams under it met (:data:`STATES`).

    ``xyz`` (M, 3) float32 the scan (sensor frame), ``ground`` (M,) bool,
    ``height`` (M,) float32 above the local ground (NaN outside the region
    of interest), ``rows`` (n,) int64 the cluster's points.
    """
    points = xyz.astype(np.float64)
    distance = np.hypot(points[:, 0], points[:, 1])
    elevation = np.arctan2(points[:, 2], distance)
    column = np.floor(np.arctan2(points[:, 1], points[:, 0]) / bin_rad).astype(np.int64)
    own = np.zeros(len(xyz), bool)
    own[rows] = True
    ground_z = float(np.nanmedian(points[rows, 2] - height[rows]))
    counts: Counter = Counter()
    for col in np.unique(column[rows]):
        mine = rows[column[rows] == col]
        lowest, reach = float(elevation[mine].min()), float(np.median(distance[mine]))
        floor = math.atan2(ground_z + LOW, reach)
        wedge = ((column == col) & ~own & (elevation < lowest - SAME_BEAM)
                 & (elevation >= floor))
        if not wedge.any():
            counts['empty'] += 1
            continue
        near, solid = distance[wedge], ~ground[wedge]
        if (solid & (near < reach - RANGE_MARGIN)).any():
            counts['hidden'] += 1
        elif (solid & (np.abs(near - reach) <= RANGE_MARGIN)).any():
            counts['support'] += 1
        else:
            counts['open'] += 1
    return counts


class Checked(NamedTuple):
    """One scan checked by ``bench/real_check.py``, with what the pipeline saw and said."""

    set_name: str
    report: dict  # real_check's dict of the scan
    points: np.ndarray  # (M, 3) float32, as the pipeline saw them
    result: SceneResult


def checked_scans(pipeline: ScenePipeline, root: Path) -> Iterator[Checked]:
    """Check every scan of the real-data folder ``root`` with real_check, one at a time."""
    seen: dict = {}

    def keep(points: np.ndarray, result: SceneResult) -> None:
        seen['points'], seen['result'] = points, result
    if (root / 'kitti' / 'velodyne').is_dir():
        for name in list_frames(root / 'kitti'):
            report = real_check.check_frame(pipeline, read_frame(root / 'kitti', name), 30,
                                            on_result=keep)
            yield Checked('kitti', report, seen['points'], seen['result'])
    for set_name, scans in (('semantickitti', realdata.semantic_kitti(root)),
                            ('av2', realdata.argoverse(root))):
        for scan in scans:
            report = real_check.check_scan(pipeline, scan, 30, on_result=keep)
            yield Checked(set_name, report, seen['points'], seen['result'])


def main() -> None:
    """Print what the beams under every raised road-user-named cluster met."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('dir', type=Path, help='the real-data folder (kitti/, semantickitti/, '
                        'av2/)')
    parser.add_argument('--raised', type=float, default=0.5,
                        help='lowest returns at least this high above the ground (m)')
    parser.add_argument('--bin', type=float, default=0.5, help='azimuth bin (degrees)')
    args = parser.parse_args()
    config = PipelineConfig(device='cpu')
    pipeline = ScenePipeline(config)
    summary: Counter = Counter()
    print('set            tag                  named as   conf shown     pts     r bottom bins '
          + ' '.join(STATES))
    for set_name, checked, xyz, result in checked_scans(pipeline, args.dir):
        segmentation = segment_scene(xyz, config)  # the ground and heights the pipeline used
        ground, height = segmentation.ground, segmentation.height
        items = [('clutter', c['cluster']) for c in checked['clusters']]
        items += [('road user ' + o['class'], o['cluster']) for o in checked['objects']
                  if o['evaluated'] and o['found']]
        for tag, k in items:
            detected = result.objects[k]
            if detected.class_name not in ROAD_USERS:
                continue
            rows = np.flatnonzero(result.object_id == k)
            bottom = cluster_bottom(height[rows])
            if bottom < args.raised:
                continue
            counts = under_view(xyz, ground, height, rows, math.radians(args.bin))
            bins = sum(counts.values())
            shown = 'unknown' if detected.unknown else 'shown'
            print(f'{set_name:<14} {tag:<20} {detected.class_name:<10} '
                  f'{detected.confidence:4.2f} {shown:<7} {detected.num_points:5d} '
                  f'{math.hypot(*detected.center[:2]):5.1f} {bottom:5.2f} {bins:4d} '
                  + ' '.join(f'{counts[s] / bins:.2f}' for s in STATES))
            kind = f'{tag} {shown}'
            summary[(kind, 'all')] += 1
            summary[(kind, 'mostly hidden')] += counts['hidden'] >= bins / 2
            summary[(kind, 'mostly open')] += counts['open'] >= bins / 2
    print(f'\nraised (bottom >= {args.raised} m) clusters named as road users:')
    for kind in sorted({k for k, _ in summary}):
        print(f"  {kind:<28} {summary[(kind, 'all')]:4d}, mostly hidden "
              f"{summary[(kind, 'mostly hidden')]}, mostly open {summary[(kind, 'mostly open')]}")


if __name__ == '__main__':
    main()
