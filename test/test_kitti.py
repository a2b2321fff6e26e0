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
"""KITTI object format in: reading, the camera -> velodyne boxes, crops, CLI, real_check."""

from dataclasses import dataclass
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.kitti import (
    box_in_velodyne, KittiCalib, KittiFormatError, list_frames, read_calib, read_frame,
    read_labels, read_velodyne)
from pointcam_ros.learn.dataset import load_dataset, ObjectDataset, save_dataset
from pointcam_ros.learn.dataset_cli import main as dataset_main, merge_datasets
from pointcam_ros.learn.kitti import analyse_frame, build_kitti_dataset
from pointcam_ros.sim.simulator import CLASS_NAMES
import pytest

ROOT = Path(__file__).resolve().parents[1]
THETA = math.radians(10.0)  # R0_rect: a rotation about the camera's y axis
R0 = np.array([[math.cos(THETA), 0, math.sin(THETA)], [0, 1, 0],
               [-math.sin(THETA), 0, math.cos(THETA)]])
AXES = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # camera x right, y down, z forward
T = np.array([0.3, -0.08, -0.27])  # Tr_velo_to_cam translation
P2 = np.array([[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791],
               [0, 0, 1, 0.002745884]])
GROUND_Z = -1.73


def velo_from_rect(rect):
    """Hand inverse of X_rect = R0 (AXES X_velo + T): undo R0, then the axis permutation."""
    cam = R0.T @ np.asarray(rect, float)
    return np.array([cam[2] - T[2], -(cam[0] - T[0]), -(cam[1] - T[1])])


def rect_from_velo(velo):
    return R0 @ (AXES @ np.asarray(velo, float) + T)


def pixel_of(velo):
    image = P2 @ np.append(rect_from_velo(velo), 1.0)
    return image[:2] / image[2]


@dataclass
class Thing:
    """
    A hand-made object: KITTI type, box in the velodyne frame, lattice of points.

    Lattice points are < 0.5 m apart, so the clustering keeps each object in one piece.
    """

    kind: object
    bottom: tuple  # (x, y, z) of the bottom centre, velodyne frame
    lwh: tuple
    yaw: float
    grid: tuple  # lattice size along, across, up (points inside the box)
    outside: bool = False  # add points beyond both ends of the box and at ground level

    def inside_points(self) -> np.ndarray:
        """``(n, 3)`` float32 lattice points strictly inside the box, above the ground."""
        length, width, height = self.lwh
        along = np.linspace(-0.45 * length, 0.45 * length, self.grid[0])
        across = np.linspace(-0.4 * width, 0.4 * width, self.grid[1])
        up = np.linspace(0.3, height - 0.1, self.grid[2])
        a, c, u = (v.ravel() for v in np.meshgrid(along, across, up, indexing='ij'))
        return self._place(a, c, u)

    def outside_points(self) -> np.ndarray:
        """``(4, 3)`` float32: 0.1 m beyond each end of the box (not in the crop)."""
        half = self.lwh[0] / 2 + 0.1
        return self._place(np.array([-half, -half, half, half]), np.zeros(4),
                           np.array([0.5, 1.0, 0.5, 1.0]))

    def low_points(self) -> np.ndarray:
        """``(3, 3)`` float32: in the box but 5 cm above the ground (removed as ground)."""
        return self._place(np.array([-1.0, 0.0, 1.0]), np.zeros(3), np.full(3, 0.05))

    def _place(self, along, across, up):
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        x = self.bottom[0] + along * c - across * s
        y = self.bottom[1] + along * s + across * c
        return np.stack([x, y, self.bottom[2] + up], axis=1).astype(np.float32)

    def label_line(self) -> str:
        """Write the KITTI label of the box: bottom centre in the camera frame, rotation_y."""
        x, y, z = rect_from_velo(self.bottom)
        rotation_y = THETA - self.yaw - math.pi / 2  # inverse of the hand formula below
        length, width, height = self.lwh
        return (f'{self.kind} 0.00 0 -1.50 100.0 120.0 200.0 220.0 {height:.6f} {width:.6f} '
                f'{length:.6f} {x:.6f} {y:.6f} {z:.6f} {rotation_y:.6f}')


def lattice(center, size=(0.8, 0.8, 1.2), grid=(4, 4, 4)) -> np.ndarray:
    axes = [np.linspace(c - s / 2, c + s / 2, n) for c, s, n in zip(center, size, grid)]
    return np.stack([v.ravel() for v in np.meshgrid(*axes, indexing='ij')], 1).astype(
        np.float32)


GROUND = np.stack([v.ravel() for v in np.meshgrid(
    np.arange(-15, 40, 0.5), np.arange(-12, 12, 0.5), [GROUND_Z], indexing='ij')],
    1).astype(np.float32)

FRAME0 = [
    Thing('Car', (12.0, 2.0, GROUND_Z), (4.0, 1.8, 1.5), 0.4, (9, 4, 4), outside=True),
    Thing('Pedestrian', (10.0, -2.5, GROUND_Z), (0.8, 0.6, 1.7), 1.2, (3, 3, 6)),
    Thing('Van', (18.0, -4.0, GROUND_Z), (5.0, 2.0, 2.2), -0.3, (11, 5, 5)),
    Thing('Tram', (26.0, 7.0, GROUND_Z), (10.0, 2.5, 3.4), 0.1, (21, 5, 5)),
    Thing('Misc', (20.0, 3.0, GROUND_Z), (1.0, 1.0, 1.0), 0.0, (3, 3, 4)),
]
FRAME1 = [
    Thing('Cyclist', (11.0, 1.0, GROUND_Z), (1.8, 0.6, 1.7), 2.5, (5, 2, 5)),
    Thing('Person_sitting', (9.0, -2.5, GROUND_Z), (0.8, 0.6, 1.1), 0.0, (3, 3, 4)),
    Thing('Truck', (20.0, 5.0, GROUND_Z), (8.0, 2.5, 3.5), 0.2, (17, 5, 5)),
    Thing('Truck', (35.0, -5.0, GROUND_Z), (8.0, 2.5, 3.5), 0.0, (2, 2, 2)),  # 8 points
]
BACKGROUND_IN_VIEW = (15.0, 6.0, -0.9)  # frame 0, in the image, near no box
BEHIND = (-10.0, 3.0, -0.9)  # behind the camera
BESIDE = (6.0, -7.0, -0.9)  # in front of the camera, right of the image
IN_DONTCARE = (30.0, -8.0, -0.9)  # inside a DontCare region of the image


def _calib_text() -> str:
    tr = np.hstack([AXES, T[:, None]])
    numbers = ' '.join
    return '\n'.join([
        'P0: ' + numbers(['0'] * 12), 'P1: ' + numbers(['0'] * 12),
        'P2: ' + numbers(f'{v:.12e}' for v in P2.ravel()), 'P3: ' + numbers(['0'] * 12),
        'R0_rect: ' + numbers(f'{v:.12e}' for v in R0.ravel()),
        'Tr_velo_to_cam: ' + numbers(f'{v:.12e}' for v in tr.ravel()),
        'Tr_imu_to_velo: ' + numbers(['0'] * 12), ''])


def _write_frame(folder: Path, name: str, things, extra_clusters, extra_lines=()):
    parts = [GROUND]
    for thing in things:
        parts.append(thing.inside_points())
        if thing.outside:
            parts.extend([thing.outside_points(), thing.low_points()])
    parts.extend(extra_clusters)
    xyz = np.concatenate(parts)
    scan = np.hstack([xyz, np.full((len(xyz), 1), 0.5, np.float32)])
    scan.astype('<f4').tofile(folder / 'velodyne' / f'{name}.bin')
    lines = [t.label_line() for t in things] + list(extra_lines)
    (folder / 'label_2' / f'{name}.txt').write_text('\n'.join(lines) + '\n')
    (folder / 'calib' / f'{name}.txt').write_text(_calib_text())


def _dontcare_line(cluster: np.ndarray) -> str:
    pixels = np.array([pixel_of(p) for p in cluster])
    left, top = pixels.min(axis=0) - 5
    right, bottom = pixels.max(axis=0) + 5
    return (f'DontCare -1 -1 -10 {left:.2f} {top:.2f} {right:.2f} {bottom:.2f} '
            '-1 -1 -1 -1000 -1000 -1000 -10')


@pytest.fixture(scope='module')
def kitti_root(tmp_path_factory) -> Path:
    """Two hand-made KITTI frames (see FRAME0, FRAME1 and the extra clusters)."""
    root = tmp_path_factory.mktemp('kitti')
    for sub in ('velodyne', 'label_2', 'calib'):
        (root / sub).mkdir()
    dontcare = lattice(IN_DONTCARE)
    _write_frame(root, '000000', FRAME0,
                 [lattice(BACKGROUND_IN_VIEW), lattice(BEHIND), lattice(BESIDE), dontcare],
                 [_dontcare_line(dontcare)])
    _write_frame(root, '000001', FRAME1, [])
    return root


def _rows(points: np.ndarray) -> np.ndarray:
    """Rows sorted lexicographically, to compare point sets."""
    points = np.asarray(points, np.float32)
    return points[np.lexsort(points.T[::-1])]


def read_labels_from(folder: Path, text: str):
    path = folder / 'label.txt'
    path.write_text(text + '\n')
    return read_labels(path)


def read_calib_from(folder: Path, text: str):
    path = folder / 'calib.txt'
    path.write_text(text)
    return read_calib(path)


# --- camera -> velodyne --------------------------------------------------------------------

def test_box_in_velodyne_with_kitti_axes_is_the_textbook_formula(tmp_path):
    calib = KittiCalib(p2=P2, r0=np.eye(3), tr=np.hstack([AXES, np.zeros((3, 1))]))
    label = read_labels_from(tmp_path, 'Car 0 0 0 0 0 10 10 1.5 1.8 4.0 2.0 1.6 20.0 0.3')[0]
    box = box_in_velodyne(label, calib)
    # camera (x, y - h/2, z) = (2.0, 0.85, 20.0) -> velodyne (z, -x, -y)
    np.testing.assert_allclose(box.center, [20.0, -2.0, -0.85], atol=1e-12)
    np.testing.assert_allclose(box.size, [4.0, 1.8, 1.5])
    assert box.yaw == pytest.approx(-0.3 - math.pi / 2)


def test_box_in_velodyne_with_rotated_rectification_and_offset(tmp_path):
    calib = read_calib_from(tmp_path, _calib_text())
    label = read_labels_from(tmp_path, 'Car 0 0 0 0 0 10 10 1.5 1.8 4.0 2.0 1.6 20.0 0.3')[0]
    box = box_in_velodyne(label, calib)
    np.testing.assert_allclose(box.center, velo_from_rect([2.0, 1.6 - 0.75, 20.0]), atol=1e-9)
    # Worked by hand: R0^T turns the heading by -THETA about the camera's y axis.
    assert box.yaw == pytest.approx(-(0.3 - THETA) - math.pi / 2)
    # ... and the same numbers written out: camera = R0^T rect, velo = (cz - tz, -(cx - tx),
    # -(cy - ty)).
    cx = math.cos(THETA) * 2.0 - math.sin(THETA) * 20.0
    cz = math.sin(THETA) * 2.0 + math.cos(THETA) * 20.0
    np.testing.assert_allclose(box.center, [cz + 0.27, -(cx - 0.3), -(0.85 + 0.08)],
                               atol=1e-9)


def test_projection_matches_p2_r0_tr(kitti_root):
    calib = read_calib(kitti_root / 'calib' / '000000.txt')
    points = np.array([BACKGROUND_IN_VIEW, BEHIND, BESIDE], np.float32)
    pixels, depth = calib.project(points)
    np.testing.assert_allclose(pixels[0], pixel_of(BACKGROUND_IN_VIEW), rtol=1e-6)
    assert depth[0] > 0 and depth[1] < 0
    assert calib.in_view(points).tolist() == [True, False, False]
    assert calib.in_view(points, image_size=(4000, 375)).tolist() == [True, False, True]


# --- crops ---------------------------------------------------------------------------------

def test_crops_are_the_points_inside_each_box_above_the_ground(kitti_root):
    frame = read_frame(kitti_root, '000000')
    analysis = analyse_frame(frame)
    assert [b.label.kind for b in analysis.boxes] == ['Car', 'Pedestrian', 'Van', 'Tram',
                                                      'Misc']
    for box, thing in zip(analysis.boxes, FRAME0):
        crop = analysis.object_points(box)
        np.testing.assert_array_equal(_rows(crop), _rows(thing.inside_points()))
    # the car's points beyond its ends are outside its box; its points at ground level are
    # inside it but were not in the crop above
    car = analysis.boxes[0]
    assert not car.box.contains(FRAME0[0].outside_points()).any()
    assert car.box.contains(FRAME0[0].low_points()).all()
    assert car.mask.sum() >= len(FRAME0[0].inside_points()) + 3


def test_dataset_classes_skipped_types_and_background(kitti_root):
    dataset, stats = build_kitti_dataset(kitti_root, progress=False)
    assert dataset.class_names == list(CLASS_NAMES)
    names = [CLASS_NAMES[i] for i in dataset.labels]
    by_frame = {s: sorted(n for n, f in zip(names, dataset.seeds) if f == s) for s in (0, 1)}
    # Car, Van -> car; Pedestrian; one background (Tram, Misc, DontCare, behind and beside
    # the camera are not background); Cyclist, Person_sitting -> pedestrian, Truck
    assert by_frame[0] == ['background', 'car', 'car', 'pedestrian']
    assert by_frame[1] == ['cyclist', 'pedestrian', 'truck']
    assert stats.frames == 2 and stats.skipped_types == 2 and stats.too_few_points == 1
    background = dataset.points[names.index('background')]
    np.testing.assert_array_equal(_rows(background[:, :3]), _rows(lattice(BACKGROUND_IN_VIEW)))
    for points, name in zip(dataset.points, names):
        # x, y, z and the height above the local ground level: the ground is flat at
        # GROUND_Z, but the car's points 5 cm above it (removed as ground) raise the level
        # of the cells they share with it by up to those 5 cm
        assert points.dtype == np.float32 and points.shape[1] == 4
        below = (points[:, 2] - GROUND_Z) - points[:, 3]
        assert below.min() > -1e-4 and below.max() < 0.05 + 1e-4, name
    car = dataset.points[names.index('car')]
    np.testing.assert_array_equal(_rows(car[:, :3]), _rows(FRAME0[0].inside_points()))
    i = names.index('car')
    assert dataset.distance[i] == pytest.approx(np.hypot(*car.mean(axis=0)[:2]), rel=1e-5)


def test_no_background_and_min_points(kitti_root):
    dataset, stats = build_kitti_dataset(kitti_root, min_points=40, background=False,
                                         progress=False)
    names = sorted(CLASS_NAMES[i] for i in dataset.labels)
    # Person_sitting (36 points) now has too few points; Pedestrian has 54
    assert names == ['car', 'car', 'cyclist', 'pedestrian', 'truck']
    assert stats.too_few_points == 2


def test_out_of_view_clusters_are_not_background(kitti_root):
    analysis = analyse_frame(read_frame(kitti_root, '000000'))
    centres = {}
    for k in range(analysis.num_clusters):
        members = analysis.xyz[analysis.cluster == k]
        centres[tuple(np.round(members.mean(axis=0)[:2]))] = k
    flags = {name: (bool(analysis.in_view[centres[c[:2]]]),
                    bool(analysis.unlabelled[centres[c[:2]]]))
             for name, c in (('in_view', BACKGROUND_IN_VIEW), ('behind', BEHIND),
                             ('beside', BESIDE), ('dontcare', IN_DONTCARE))}
    assert flags == {'in_view': (True, True), 'behind': (False, True),
                     'beside': (False, True), 'dontcare': (True, False)}


# --- errors --------------------------------------------------------------------------------

def test_malformed_label_names_file_and_line(tmp_path):
    good = 'Car 0 0 0 0 0 10 10 1.5 1.8 4.0 2.0 1.6 20.0 0.3'
    with pytest.raises(KittiFormatError, match=r'label\.txt:3: .*15 values'):
        read_labels_from(tmp_path, f'{good}\n\nCar 0 0 0')
    with pytest.raises(KittiFormatError, match=r'label\.txt:2: .*could not convert'):
        read_labels_from(tmp_path, f'{good}\nCar 0 0 0 0 0 10 10 1.5 1.8 x 2.0 1.6 20.0 0.3')
    with pytest.raises(KittiFormatError, match=r'label\.txt:1: Car has a box size'):
        read_labels_from(tmp_path, 'Car 0 0 0 0 0 10 10 1.5 -1 4.0 2.0 1.6 20.0 0.3')
    # result files carry a 16th value (score); DontCare has no 3D box
    assert len(read_labels_from(tmp_path, good + ' 0.9\nDontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 '
                                '-1000 -1000 -10')) == 2


def test_malformed_calib_names_file_and_line(tmp_path):
    text = _calib_text().splitlines()
    with pytest.raises(KittiFormatError, match=r'calib\.txt:5: R0_rect needs 9 numbers'):
        read_calib_from(tmp_path, '\n'.join(text[:4] + ['R0_rect: 1 0 0 0 1 0 0 0'] + text[5:]))
    with pytest.raises(KittiFormatError, match=r'calib\.txt: missing Tr_velo_to_cam'):
        read_calib_from(tmp_path, '\n'.join(text[:5]))
    with pytest.raises(KittiFormatError, match=r'calib\.txt:2: expected'):
        read_calib_from(tmp_path, '\n'.join(text[:1] + ['garbage line'] + text[1:]))
    with pytest.raises(KittiFormatError, match='singular'):
        zero_r0 = 'R0_rect: ' + ' '.join(['0'] * 9)
        read_calib_from(tmp_path, '\n'.join(text[:4] + [zero_r0] + text[5:]))


def test_missing_folders_and_files(tmp_path, kitti_root):
    with pytest.raises(FileNotFoundError, match='no velodyne/ folder'):
        list_frames(tmp_path)
    (tmp_path / 'training' / 'velodyne').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='label_2: missing folder'):
        list_frames(tmp_path)
    (tmp_path / 'training' / 'label_2').mkdir()
    (tmp_path / 'training' / 'calib').mkdir()
    assert list_frames(tmp_path) == []
    bad = tmp_path / 'training' / 'velodyne' / '000007.bin'
    bad.write_bytes(b'\0' * 20)
    with pytest.raises(KittiFormatError, match='000007.bin: 20 bytes'):
        read_velodyne(bad)
    bad.write_bytes(b'\0' * 32)
    with pytest.raises(FileNotFoundError, match=r'label_2/000007.txt: no such label file'):
        read_frame(tmp_path, '000007')


# --- CLI: build, merge, train on it ------------------------------------------------------

def test_cli_kitti_then_merge_with_simulated(tmp_path, kitti_root, capsys):
    out = tmp_path / 'kitti.npz'
    assert dataset_main(['kitti', str(kitti_root), '--out', str(out), '--no-progress']) == 0
    assert '7 objects' in capsys.readouterr().out
    kitti = load_dataset(out)
    assert sorted(kitti.seeds.tolist()) == [0, 0, 0, 0, 1, 1, 1]
    # refuses to overwrite what exists
    with pytest.raises(SystemExit):
        dataset_main(['kitti', str(kitti_root), '--out', str(out)])
    frames = tmp_path / 'train.txt'
    frames.write_text('000001\n')
    only = tmp_path / 'only1.npz'
    assert dataset_main(['kitti', str(kitti_root), '--frame-list', str(frames),
                         '--out', str(only), '--no-progress']) == 0
    assert load_dataset(only).seeds.tolist() == [1, 1, 1]
    # a params file's min_cluster_points is the default --min-points: Person_sitting (36
    # points) goes
    params = tmp_path / 'params.yaml'
    PipelineConfig(min_cluster_points=40).to_yaml(params)
    assert dataset_main(['kitti', str(kitti_root), '--frame-list', str(frames), '--params',
                         str(params), '--out', str(tmp_path / 'p.npz'), '--no-progress']) == 0
    assert 'with < 40 visible points' in capsys.readouterr().out
    assert sorted(load_dataset(tmp_path / 'p.npz').labels.tolist()) == [
        CLASS_NAMES.index('truck'), CLASS_NAMES.index('cyclist')]

    # a set of an older version (x, y, z only) does not mix with one that has heights
    old = ObjectDataset(points=[np.ones((20, 3), np.float32)], labels=np.array([4]),
                        distance=np.array([3.0], np.float32), seeds=np.array([77]),
                        class_names=list(CLASS_NAMES))
    save_dataset(old, tmp_path / 'old.npz')
    mixed = tmp_path / 'mixed.npz'
    assert dataset_main(['merge', str(tmp_path / 'old.npz'), str(out),
                         '--out', str(mixed)]) == 1
    assert 'rebuild the older set' in capsys.readouterr().err and not mixed.exists()
    sim = ObjectDataset(points=[np.ones((20, 4), np.float32)], labels=np.array([4]),
                        distance=np.array([3.0], np.float32), seeds=np.array([77]),
                        class_names=list(CLASS_NAMES))
    save_dataset(sim, tmp_path / 'sim.npz')
    assert dataset_main(['merge', str(tmp_path / 'sim.npz'), str(out),
                         '--out', str(mixed)]) == 0
    merged = load_dataset(mixed)
    assert len(merged) == 8 and merged.labels[0] == 4 and merged.seeds[0] == 77
    np.testing.assert_array_equal(merged.points[1], kitti.points[0])
    np.testing.assert_array_equal(merged.labels[1:], kitti.labels)


def test_train_on_kitti_then_check_the_installed_model(tmp_path, kitti_root, capsys):
    """pointcam_dataset kitti -> train -> model_path in a params file -> real_check."""
    import torch
    from pointcam_ros.learn.train import train
    from pointcam_ros.model.checkpoint import load_checkpoint
    data = tmp_path / 'kitti.npz'
    assert dataset_main(['kitti', str(kitti_root), '--out', str(data), '--no-progress']) == 0
    kitti = load_dataset(data)
    model = tmp_path / 'model.pt'
    arch = {'mlp1': (16,), 'mlp2': (32, 64), 'head': (32, 16), 'tnet_conv': (16, 32, 64),
            'tnet_fc': (32, 16), 'dropout': 0.1}
    report = train(kitti, kitti, model, epochs=1, num_points=32, normalization='center',
                   batch_size=4, lr=1e-3, seed=0, device=torch.device('cpu'), arch=arch,
                   progress=False)
    assert report['train_objects'] == 7
    assert load_checkpoint(model).class_names == list(CLASS_NAMES)
    params = tmp_path / 'pointcam.yaml'
    PipelineConfig(model_path=str(model), device='cpu').to_yaml(params)
    capsys.readouterr()
    assert _real_check().main([str(kitti_root), '--params', str(params)]) == 0
    assert f'model {model}' in capsys.readouterr().out


def test_merge_refuses_other_class_lists():
    a = ObjectDataset([np.zeros((3, 3), np.float32)], np.array([0]), np.array([1.0]),
                      np.array([0]), ['car', 'tree'])
    b = ObjectDataset([np.zeros((3, 3), np.float32)], np.array([0]), np.array([1.0]),
                      np.array([0]), ['tree', 'car'])
    with pytest.raises(ValueError, match='same class list'):
        merge_datasets([a, b])


def test_cli_reports_malformed_input(tmp_path, kitti_root, capsys):
    root = tmp_path / 'bad'
    for sub in ('velodyne', 'label_2', 'calib'):
        (root / sub).mkdir(parents=True)
    for name in ('velodyne/000000.bin', 'label_2/000000.txt', 'calib/000000.txt'):
        src = kitti_root / name
        (root / name).write_bytes(src.read_bytes())
    (root / 'label_2' / '000000.txt').write_text('Car 1 2 3\n')
    assert dataset_main(['kitti', str(root), '--out', str(tmp_path / 'x.npz'),
                         '--no-progress']) == 1
    err = capsys.readouterr().err
    assert 'label_2/000000.txt:1:' in err
    assert not (tmp_path / 'x.npz').exists()


# --- bench/real_check.py -------------------------------------------------------------------

def _real_check():
    spec = importlib.util.spec_from_file_location('real_check', ROOT / 'bench' / 'real_check.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_check_table_and_json(tmp_path, kitti_root, tiny_model, capsys):
    report = tmp_path / 'check.json'
    # Voxel clusters: the frames' objects are boxes filled at random, not a scan's rings.
    assert _real_check().main([str(kitti_root), '--model', tiny_model, '--device', 'cpu',
                               '--min-points', '30', '--json', str(report),
                               '--set', 'segmentation=voxel']) == 0
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    objects = [o for f in data['frames'] for o in f['objects']]
    # every labelled 3D box is listed; Person_sitting (36 points) is evaluated, the far
    # truck (8 points) is not
    assert [(o['frame'], o['type'], o['points']) for o in objects] == [
        ('000000', t.kind, len(t.inside_points())) for t in FRAME0] + [
        ('000001', t.kind, len(t.inside_points())) for t in FRAME1]
    assert [o['evaluated'] for o in objects] == [True] * 5 + [True, True, True, False]
    car = objects[0]
    # the car's cluster also holds its 4 points beyond the box
    inside = len(FRAME0[0].inside_points())
    assert car['found'] and car['iou'] == pytest.approx(inside / (inside + 4), abs=1e-3)
    assert car['prediction'] in CLASS_NAMES and 0 < car['confidence'] <= 1
    assert car['correct'] == (car['prediction'] == 'car')
    assert all(o['found'] for o in objects if o['evaluated'])
    assert car['distance'] == pytest.approx(np.hypot(*box_center(FRAME0[0])), abs=0.01)
    # frame 0: one in-view unlabelled cluster; frame 1 none
    frame0, frame1 = data['frames']
    assert frame0['unlabelled_in_view'] == 1 and frame1['unlabelled_in_view'] == 0
    cluster = frame0['clusters'][0]
    shown = (cluster['prediction'] in ('car', 'truck', 'pedestrian', 'cyclist')
             and not cluster['unknown'])  # an unknown is not shown as a road user
    assert frame0['shown_as_road_user'] == int(shown)
    summary = data['summary']
    assert summary['objects'] == 6 and summary['found'] == 6  # Tram, Misc: no class
    assert summary['false_alarm_share'] == float(shown)
    assert f"000000   Car            car        {inside:>6}   12.2  {car['iou']:.2f} yes" in out
    assert 'false alarms: ' in out and 'in-view unlabelled clusters' in out


def test_real_check_unknown_is_not_a_false_alarm(tmp_path, kitti_root, tiny_model, capsys):
    report = tmp_path / 'check.json'
    assert _real_check().main([str(kitti_root), '--model', tiny_model, '--device', 'cpu',
                               '--min-confidence', '1.0', '--json', str(report)]) == 0
    data = json.loads(report.read_text())
    assert data['summary']['shown_as_road_user'] == 0
    assert data['summary']['false_alarm_share'] == 0.0
    found = [o for f in data['frames'] for o in f['objects'] if o['found']]
    assert found and all(o['unknown'] and not o['correct'] for o in found)
    assert 'unknown' in capsys.readouterr().out


def test_real_check_seeds_rerun_with_the_next_seeds(tmp_path, kitti_root, tiny_model, capsys):
    """--seeds 3: the figures of seeds 0, 1 and 2, each as a run with that seed gives."""
    check = _real_check()
    seeds = []

    class Recording(check.ScenePipeline):  # the real pipeline; notes the seed it runs with
        def __init__(self, config, **kwargs):
            seeds.append(config.seed)
            super().__init__(config, **kwargs)

    check.ScenePipeline = Recording
    common = [str(kitti_root), '--model', tiny_model, '--device', 'cpu', '--quiet']
    report = tmp_path / 'seeds.json'
    assert check.main(common + ['--seeds', '3', '--json', str(report)]) == 0
    assert seeds == [0, 1, 2]
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data['seeds']['first'] == 0
    runs = data['seeds']['summaries']['kitti']
    assert len(runs) == 3 and runs[0] == data['summary']
    for seed in (1, 2):
        alone = tmp_path / f'seed{seed}.json'
        assert check.main(common + ['--set', f'seed={seed}', '--json', str(alone)]) == 0
        assert json.loads(alone.read_text())['summary'] == runs[seed]
    assert f'over seeds 0-2: {check.seed_spread(runs)}' in out
    with pytest.raises(SystemExit):
        check.main(common + ['--seeds', '0'])


def test_seed_spread_gives_range_and_median():
    """Each figure as low-high (median), once where it does not move."""
    def summary(right, peds, alarms, base):
        return {'correct': right, 'objects': 16, 'shown_as_road_user': alarms,
                'unlabelled_in_view': base,
                'per_class': {'pedestrian': {'correct': peds, 'objects': 4}}}

    line = _real_check().seed_spread([summary(13, 2, 25, 205), summary(15, 2, 30, 202),
                                      summary(14, 2, 28, 209), summary(14, 2, 27, 205)])
    assert line == ('right 13-15 (median 14) of 16; pedestrian 2 of 4; '
                    'false alarms 25-30 (median 27.5) of 202-209')


def box_center(thing: Thing) -> np.ndarray:
    return np.array(thing.bottom[:2])


def test_sim_as_kitti_labels_come_back_as_the_same_boxes(tmp_path):
    """bench/sim_as_kitti.py writes labels through a tilted calib; read them back."""
    spec = importlib.util.spec_from_file_location('sim_as_kitti',
                                                  ROOT / 'bench' / 'sim_as_kitti.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / 'calib.txt').write_text(module.calib_text())
    calib = read_calib(tmp_path / 'calib.txt')
    lines = []
    boxes = [((12.0, -3.0, -0.9), (4.2, 1.8, 1.6), 0.7),
             ((25.0, 6.0, -0.2), (9.0, 2.5, 3.2), -2.9)]
    for center, size, yaw in boxes:
        lines.append(module.label_line('Car', np.array(center), np.array(size), yaw, calib))
    assert module.label_line('Car', np.array([-5.0, 0.0, 0.0]), np.ones(3), 0.0, calib) is None
    labels = read_labels_from(tmp_path, '\n'.join(lines))
    for label, (center, size, yaw) in zip(labels, boxes):
        box = box_in_velodyne(label, calib)
        np.testing.assert_allclose(box.center, center, atol=0.02)  # labels have 2 decimals
        np.testing.assert_allclose(box.size, size, atol=0.005)
        assert math.remainder(box.yaw - yaw, 2 * math.pi) == pytest.approx(0, abs=0.01)
