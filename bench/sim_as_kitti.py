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
Write simulated HDL-64E scans as a KITTI-format folder (velodyne/, label_2/, calib/).

This is a stand-in for the real data when none is at hand. It exercises
``pointcam_dataset kitti`` and ``bench/real_check.py`` at full scan size
(about 100k points), and it gives a ceiling for ``real_check``: the boxes are
exact and the scans are clean. It measures nothing about the real world.

As in KITTI, only cars, trucks, pedestrians and cyclists whose box centre is
in camera 2's view are labelled (Car, Truck, Pedestrian, Cyclist); poles,
trees and clutter are not. The sensor is 1.73 m above the ground. The
calibration is KITTI-like: the axis swap, rotations under a degree, and a
0.3 m offset.

    .venv/bin/python bench/sim_as_kitti.py /tmp/sim_kitti --frames 20 --audit
    .venv/bin/python bench/sim_as_kitti.py /tmp/sim_street --frames 20 --kind street
    .venv/bin/python bench/real_check.py /tmp/sim_kitti --json /tmp/sim_kitti.json
"""

import argparse
from collections import Counter
import math
from pathlib import Path
import sys
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.kitti import IMAGE_SIZE, KittiCalib, list_frames, read_frame
from pointcam_ros.learn.kitti import analyse_frame, frame_examples
from pointcam_ros.sim.simulator import (
    CLASS_NAMES, random_scene, scan, Scene, SCENE_KINDS, SENSORS)

#: KITTI-like calibration: rectification (3x3), LiDAR -> camera 0 (3x4), camera 2 (3x4).
R0_RECT = np.array([[9.999128e-01, 1.009263e-02, -8.511932e-03],
                    [-1.012729e-02, 9.999406e-01, -4.037671e-03],
                    [8.470675e-03, 4.123522e-03, 9.999556e-01]])
TR_VELO_TO_CAM = np.array([[6.927964e-03, -9.999722e-01, -2.757829e-03, -2.457729e-02],
                           [-1.162982e-03, 2.749836e-03, -9.999955e-01, -6.127237e-02],
                           [9.999753e-01, 6.931141e-03, -1.143899e-03, -3.321029e-01]])
P2 = np.array([[7.070493e+02, 0.0, 6.040814e+02, 4.575831e+01],
               [0.0, 7.070493e+02, 1.805066e+02, -3.454157e-01],
               [0.0, 0.0, 1.0, 4.981016e-03]])
KITTI_TYPE = {'car': 'Car', 'truck': 'Truck', 'pedestrian': 'Pedestrian',
              'cyclist': 'Cyclist'}
MOUNT_HEIGHT = 1.73
#: m added on every side of a label box: the returns lie on the object's faces, and range
#: noise (sigma 1-3 cm) puts half of them just outside a box that fits the faces exactly;
#: annotators' boxes leave a margin too.
BOX_MARGIN = 0.05


def calib_text() -> str:
    """Return the calib file text (P0, P1, P3 are copies of P2)."""
    def row(values):
        return ' '.join(f'{v:.6e}' for v in np.ravel(values))
    return '\n'.join([f'P0: {row(P2)}', f'P1: {row(P2)}', f'P2: {row(P2)}', f'P3: {row(P2)}',
                      f'R0_rect: {row(R0_RECT)}', f'Tr_velo_to_cam: {row(TR_VELO_TO_CAM)}', ''])


def label_line(kind: str, center: np.ndarray, size: np.ndarray, yaw: float,
               calib: KittiCalib) -> Optional[str]:
    """
    Return the KITTI label of a LiDAR-frame box, or None when camera 2 cannot see its centre.

    ``center`` (3,) is the box centre and ``size`` (3,) its length, width
    and height, in metres; ``yaw`` is in radians.
    """
    if not calib.in_view(center[None])[0]:
        return None
    length, width, height = (float(v) for v in size)
    to_rect = calib.velo_to_rect
    bottom = to_rect[:3, :3] @ (center - [0.0, 0.0, height / 2]) + to_rect[:3, 3]
    heading = to_rect[:3, :3] @ np.array([math.cos(yaw), math.sin(yaw), 0.0])
    rotation_y = math.atan2(-heading[2], heading[0])
    c, s = math.cos(yaw), math.sin(yaw)
    corners = np.array([[center[0] + a * c * length / 2 - b * s * width / 2,
                         center[1] + a * s * length / 2 + b * c * width / 2,
                         center[2] + h * height / 2]
                        for a in (-1, 1) for b in (-1, 1) for h in (-1, 1)])
    pixels, depth = calib.project(corners)
    pixels = pixels[depth > 0]
    left, top = np.clip(pixels.min(axis=0), 0, IMAGE_SIZE)
    right, bottom_px = np.clip(pixels.max(axis=0), 0, IMAGE_SIZE)
    return (f'{kind} 0.00 0 0.00 {left:.2f} {top:.2f} {right:.2f} {bottom_px:.2f} '
            f'{height:.2f} {width:.2f} {length:.2f} {bottom[0]:.2f} {bottom[1]:.2f} '
            f'{bottom[2]:.2f} {rotation_y:.2f}')


def simulate(seed: int, kind: str = 'open', sensor: str = 'hdl64'
             ) -> tuple[Scene, np.ndarray, np.ndarray]:
    """Scan scene ``seed``: the scene, points ``(M, 3)`` float32 and their class ids ``(M,)``."""
    scene = random_scene(seed, kind=kind)
    xyz, _, class_id = scan(scene, SENSORS[sensor], seed, mount_height=MOUNT_HEIGHT).flat()
    return scene, xyz, class_id


def write_frame(folder: Path, index: int, seed: int, kind: str = 'open',
                sensor: str = 'hdl64') -> tuple[int, int]:
    """
    Simulate scene ``seed`` (``kind``, ``sensor``) as frame ``index``.

    Returns the frame's number of points and of labelled objects.
    """
    calib = KittiCalib(p2=P2, r0=R0_RECT, tr=TR_VELO_TO_CAM)
    scene, xyz, _ = simulate(seed, kind, sensor)
    name = f'{index:06d}'
    reflectance = np.full((len(xyz), 1), 0.3, np.float32)
    np.hstack([xyz, reflectance]).astype('<f4').tofile(folder / 'velodyne' / f'{name}.bin')
    lines = []
    for obj in scene.objects:
        kitti_type = KITTI_TYPE.get(CLASS_NAMES[obj.class_id])
        if kitti_type is None:
            continue
        center, size = obj.box()
        line = label_line(kitti_type, center - [0.0, 0.0, MOUNT_HEIGHT],
                          size + 2 * BOX_MARGIN, obj.yaw, calib)
        if line is not None:
            lines.append(line)
    (folder / 'label_2' / f'{name}.txt').write_text(''.join(f'{ln}\n' for ln in lines))
    (folder / 'calib' / f'{name}.txt').write_text(calib_text())
    return len(xyz), len(lines)


def audit(folder: Path, first_seed: int, kind: str = 'open',
          sensor: str = 'hdl64') -> dict[str, Counter]:
    """
    Check the examples ``pointcam_dataset kitti`` cuts against the simulator's truth.

    Returns, per class of example, a count of the true class of the majority
    of its points ('ground' for ground points).
    """
    truth: dict[str, Counter] = {}
    for index, name in enumerate(list_frames(folder)):
        _, xyz, class_id = simulate(first_seed + index, kind, sensor)
        analysis = analyse_frame(read_frame(folder, name))
        for points, label in frame_examples(analysis, PipelineConfig.min_cluster_points).examples:
            xyz = np.ascontiguousarray(points[:, :3])
            rows = np.flatnonzero(np.isin(analysis.xyz.view('V12'), xyz.view('V12')))
            ids = class_id[rows]
            values, counts = np.unique(ids, return_counts=True)
            top = int(values[np.argmax(counts)])
            truth.setdefault(label, Counter())['ground' if top < 0 else CLASS_NAMES[top]] += 1
    return truth


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write ``--frames`` simulated scans as KITTI frames 000000, 000001, ..."""
    parser = argparse.ArgumentParser(description='Simulated scans as a KITTI-format folder.')
    parser.add_argument('out', type=Path, help='folder to create (must not exist)')
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--first-seed', type=int, default=4_000_000,
                        help='scene seed of frame 0 (default: %(default)s, unseen in training)')
    parser.add_argument('--kind', choices=SCENE_KINDS, default='open',
                        help='scene kind (default: %(default)s)')
    parser.add_argument('--sensor', choices=sorted(SENSORS), default='hdl64',
                        help="sensor preset (default: %(default)s, KITTI's)")
    parser.add_argument('--audit', action='store_true',
                        help='then cut the examples and print the true class behind them')
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f'{args.out} exists: give a new folder')
    for sub in ('velodyne', 'label_2', 'calib'):
        (args.out / sub).mkdir(parents=True)
    points = labels = 0
    for index in range(args.frames):
        n, m = write_frame(args.out, index, args.first_seed + index, args.kind,
                           args.sensor)
        points, labels = points + n, labels + m
    print(f'{args.out}: {args.frames} frames, {points / max(args.frames, 1):.0f} points and '
          f'{labels / max(args.frames, 1):.1f} labelled objects per frame')
    if args.audit:
        print('examples cut by pointcam_dataset kitti, by the true class of most of their '
              'points:')
        truth = audit(args.out, args.first_seed, args.kind, args.sensor)
        for label, counts in sorted(truth.items()):
            print(f'  {label:<10} ' + ', '.join(f'{n} {c}' for c, n in counts.most_common()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
