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
Real labelled scans and the shape rules, and the bench scripts that read the scans.

bench/realdata.py, real_check.py, raised_clusters.py, real_crops.py and
underbody_probe.py. The real-data tests read ``../shared/realdata`` (the project root's
sibling; see its README) and skip when it is missing; they assert facts of
the data and of the readers, not the model's scores.
"""

import importlib.util
import math
from pathlib import Path
import sys

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.rules import (
    FRAGMENT, PLANE, plane_fits, PLANE_THICKNESS, shape_features, shape_rule)
from pointcam_ros.perception.segmentation import segment_scene
import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / 'shared' / 'realdata'
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(),
                                    reason=f'{REALDATA} (real labelled scans) not present')


def _bench(name: str):
    """Import ``bench/<name>.py`` (bench/ is not a package)."""
    if str(ROOT / 'bench') not in sys.path:
        sys.path.insert(0, str(ROOT / 'bench'))
    spec = importlib.util.spec_from_file_location(name, ROOT / 'bench' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the plane rule on synthetic clusters ------------------------------------------------

def _plane_cluster(length: float, height: float, noise: float, rng: np.random.Generator,
                   distance: float = 20.0, bottom: float = -1.0) -> np.ndarray:
    """``(n, 3)`` float32 returns of a flat vertical panel facing the sensor, range noise."""
    u, z = np.meshgrid(np.arange(-length / 2, length / 2, 0.08),
                       np.arange(bottom, bottom + height, 0.1))
    pts = np.stack([np.full(u.size, distance), u.ravel(), z.ravel()], 1)
    pts[:, 0] += rng.normal(0.0, noise, len(pts))
    return pts.astype(np.float32)


def _car_cluster(rng: np.random.Generator) -> np.ndarray:
    """``(n, 3)`` float32 returns of a car seen at a corner from above: two sides, bonnet, roof."""
    side = np.stack([np.full(400, 15.0), rng.uniform(-2.2, 2.2, 400),
                     rng.uniform(-1.5, -0.9, 400)], 1)
    side[:, 0] += 0.15 * np.cos(side[:, 1] / 2.2 * math.pi / 2)  # curved flank
    rear = np.stack([rng.uniform(15.0, 16.8, 150), np.full(150, -2.2),
                     rng.uniform(-1.5, -0.9, 150)], 1)
    roof = np.stack([rng.uniform(15.3, 16.5, 200), rng.uniform(-1.0, 1.0, 200),
                     rng.uniform(-0.32, -0.28, 200)], 1)
    glass = np.stack([rng.uniform(15.1, 15.3, 80), rng.uniform(-1.0, 1.0, 80),
                      rng.uniform(-0.9, -0.3, 80)], 1)  # returns through and off the windows
    pts = np.concatenate([side, rear, roof, glass])
    return (pts + rng.normal(0.0, 0.02, pts.shape)).astype(np.float32)


def _rule(points: np.ndarray, class_name: str) -> str:
    plane = plane_fits(points, np.zeros(len(points), np.int32), 1)[0]
    size = np.ptp(points, axis=0)
    return shape_rule(np.array([max(size[:2]), min(size[:2]), size[2]]), class_name,
                      plane=plane)[0]


def test_a_wall_piece_called_truck_is_background():
    rng = np.random.default_rng(0)
    wall = _plane_cluster(1.4, 2.5, 0.02, rng)  # a facade piece: 1.4 m wide, HDL-64E noise
    thickness, normal_z = plane_fits(wall, np.zeros(len(wall), np.int32), 1)[0]
    assert thickness == pytest.approx(0.02, abs=0.005) and normal_z < 0.01
    assert _rule(wall, 'truck') == PLANE
    assert _rule(_plane_cluster(1.8, 1.0, 0.03, rng), 'bus') == PLANE  # a sign board, VLP-16
    assert 'vertical plane' in shape_rule(np.array([1.4, 0.1, 2.5]), 'truck',
                                          plane=(0.02, 0.0))[1]


def test_vehicle_shapes_and_other_classes_are_left_to_the_model():
    rng = np.random.default_rng(1)
    car = _car_cluster(rng)
    assert plane_fits(car, np.zeros(len(car), np.int32), 1)[0, 0] > PLANE_THICKNESS
    for name in ('car', 'truck'):
        assert _rule(car, name) == ''
    # a box truck's flat side or rear (>= 2.3 m wide, however much of it is seen): the model
    assert _rule(_plane_cluster(6.0, 2.2, 0.02, rng), 'truck') == ''
    assert _rule(_plane_cluster(2.3, 0.9, 0.02, rng), 'truck') == ''
    wall = _plane_cluster(1.4, 2.5, 0.02, rng)
    for name in ('car', 'pole', 'background'):  # only large-vehicle classes
        assert _rule(wall, name) == ''
    assert _rule(wall, 'pedestrian') == 'tall'  # not a plane either: 2.5 m, taller than people
    tilted = wall @ np.array([[math.cos(0.5), 0, -math.sin(0.5)], [0, 1, 0],
                              [math.sin(0.5), 0, math.cos(0.5)]], np.float32)
    # A windscreen-like slope is not a wall; 1.4 m is still shorter than any truck face.
    assert _rule(tilted, 'truck') == FRAGMENT
    assert shape_rule(np.array([1.4, 0.1, 2.5]), 'truck')[0] == FRAGMENT  # no plane given


def test_plane_fits_matches_one_cluster_at_a_time():
    rng = np.random.default_rng(2)
    parts = [_plane_cluster(1.4, 2.5, 0.02, rng, distance=45.0), _car_cluster(rng),
             rng.normal(0, 1, (2, 3)).astype(np.float32)]
    xyz = np.concatenate(parts + [rng.normal(0, 1, (5, 3)).astype(np.float32)])
    labels = np.concatenate([np.full(len(p), k, np.int32) for k, p in enumerate(parts)]
                            + [np.full(5, -1, np.int32)])
    fits = plane_fits(xyz, labels, 4)
    for k, part in enumerate(parts[:2]):
        values, vectors = np.linalg.eigh(np.cov(part.astype(np.float64).T, bias=True))
        assert fits[k, 0] == pytest.approx(math.sqrt(values[0]), rel=1e-6)
        assert fits[k, 1] == pytest.approx(abs(vectors[2, 0]), abs=1e-6)
    assert fits[2].tolist() == [0.0, 0.0] and fits[3].tolist() == [0.0, 0.0]  # < 3 points, none
    assert plane_fits(xyz, np.full(len(xyz), -1, np.int32), 0).shape == (0, 2)


def test_shape_features_of_a_wall_and_a_car():
    rng = np.random.default_rng(3)
    wall = _plane_cluster(1.4, 2.5, 0.02, rng)
    f = shape_features(wall, wall[:, 2] + 1.5)
    assert f.points == len(wall) and f.range == pytest.approx(20.0, abs=0.05)
    assert f.verticality > 0.99 and f.thickness < 0.03 and f.planarity > 0.3
    assert f.bottom == pytest.approx(0.55, abs=0.1) and f.width < 0.1
    car = shape_features(_car_cluster(rng))
    assert car.thickness > PLANE_THICKNESS and car.length > 3.5
    assert set(car.as_dict()) >= {'thickness', 'verticality', 'hull_share', 'top'}


# --- the real scans ------------------------------------------------------------------------

@needs_realdata
def test_semantic_kitti_reader():
    scans = list(_bench('realdata').semantic_kitti(REALDATA))
    assert len(scans) == 1
    scan = scans[0]
    assert scan.name == '00/000000' and scan.xyz.shape == (124_668, 3)
    assert scan.xyz.dtype == np.float32
    cars = [o for o in scan.objects if o.name == 'car']
    sizes = sorted(int(o.mask.sum()) for o in cars)
    assert len(cars) == 13 and sizes[0] == 5 and sizes[-1] == 1_737
    assert [o.name for o in scan.objects if o.name != 'car'] == ['cyclist']  # the motorcyclist
    # every road-user point is not clutter; most of the scan is (road, buildings, trees)
    for obj in scan.objects:
        assert not scan.clutter[obj.mask].any()
    assert 0.9 < scan.clutter.mean() < 1.0


@needs_realdata
def test_argoverse_points_are_moved_to_the_up_lidar():
    pytest.importorskip('pyarrow')
    realdata = _bench('realdata')
    offset = realdata.av2_sensor_offset(REALDATA)
    # the up LiDAR sits 1.64 m above the ego origin (the rear axle, ~0.3 m above the ground)
    assert offset[2] == pytest.approx(1.64, abs=0.05)
    scans = list(realdata.argoverse(REALDATA))
    assert len(scans) == 3 and all(len(s.xyz) > 90_000 for s in scans)
    for scan in scans:  # the ground the segmentation finds lies ~1.9-2 m below the origin
        seg = segment_scene(scan.xyz, PipelineConfig(max_range=60.0))
        near = seg.ground & (np.hypot(scan.xyz[:, 0], scan.xyz[:, 1]) < 20.0)
        assert near.sum() > 10_000
        assert float(np.median(scan.xyz[near, 2])) == pytest.approx(-1.95, abs=0.2)
    objects = scans[0].objects
    assert {o.name for o in objects} <= {'car', 'truck', 'pedestrian', 'cyclist'}
    assert sum(int(o.mask.sum()) >= 30 for o in objects) == 19
    for obj in objects:
        assert not scans[0].clutter[obj.mask].any()


@needs_realdata
def test_real_check_on_semantic_kitti(tmp_path, capsys):
    report = tmp_path / 'check.json'
    assert _bench('real_check').main([str(REALDATA), '--sets', 'semantickitti', '--device',
                                      'cpu', '--json', str(report), '--features']) == 0
    import json
    data = json.loads(report.read_text())
    summary = data['sets']['semantickitti']['summary']
    # 12 road users with >= 30 points the pipeline sees: 11 cars and the motorcyclist
    assert summary['objects'] == 12
    assert summary['per_class']['car']['objects'] == 11
    assert summary['found'] >= 11  # both designs find all 12 today (docs/segmentation.md)
    clusters = data['sets']['semantickitti']['frames'][0]['clusters']
    assert summary['unlabelled_in_view'] == len(clusters) > 50
    assert all('features' in c and 'semantic' in c for c in clusters)
    assert summary['shown_as_road_user'] == sum(c['shown_as_road_user'] for c in clusters)
    bands = summary['labels_by_size']
    assert list(bands) == ['<30', '30-59', '60+']
    assert sum(b['false_alarms'] for b in bands.values()) == summary['shown_as_road_user']
    # Every road user shown right is counted in a band (and more: those under 30 points).
    assert sum(b['right'] for b in bands.values()) >= summary['correct']
    # min_label_points (30 by default) names no road user on a smaller cluster.
    assert bands['<30']['right'] == bands['<30']['wrong_class'] == 0
    assert bands['<30']['false_alarms'] == 0 < bands['<30']['not_road_users']
    assert sum(b['not_road_users'] for b in bands.values()) == summary['unlabelled_in_view']
    out = capsys.readouterr().out
    assert '== semantickitti ==' in out and 'false alarms:' in out
    assert 'road-user labels by cluster points' in out


@pytest.mark.parametrize('points, band', [(1, '<30'), (29, '<30'), (30, '30-59'),
                                          (59, '30-59'), (60, '60+'), (10 ** 6, '60+')])
def test_size_bands(points, band):
    assert _bench('label_bands').size_band(points) == band


@needs_realdata
def test_real_check_reads_the_kitti_folder_and_set_overrides(capsys):
    real_check = _bench('real_check')
    assert real_check.main([str(REALDATA / 'kitti'), '--device', 'cpu', '--max-frames', '1',
                            '--set', 'max_range=40', '--quiet']) == 0
    out = capsys.readouterr().out
    assert 'max_range 40.0 (max_range=40)' in out and 'kitti (1 scans)' in out
    assert real_check.main([str(REALDATA), '--set', 'no_such_param=1']) == 1


@needs_realdata
def test_the_plane_rule_fires_on_real_wall_pieces():
    # Argoverse 2: some clusters in no cuboid are flat vertical pieces the model calls a
    # truck; the pipeline shows them as background, and no labelled road user.
    pytest.importorskip('pyarrow')
    from pointcam_ros.perception.pipeline import ScenePipeline
    real_check, realdata = _bench('real_check'), _bench('realdata')
    scan = list(realdata.argoverse(REALDATA))[-1]
    checked = real_check.check_scan(ScenePipeline(PipelineConfig(device='cpu')), scan, 30)
    planes = [c for c in checked['clusters'] if c['rule'].startswith('plane')]
    assert planes and all(c['prediction'] == 'background' and not c['shown_as_road_user']
                          for c in planes)
    assert not any(o['rule'].startswith('plane') for o in checked['objects'] if o['found'])


@needs_realdata
def test_the_raised_rule_on_real_bands_and_road_users():
    # Argoverse 2: crown and facade bands in no cuboid, seen over parked cars 1.7-2.8 m up,
    # called truck; the pipeline shows them as unknown, and no labelled road user.
    pytest.importorskip('pyarrow')
    from pointcam_ros.perception.pipeline import ScenePipeline
    real_check, realdata = _bench('real_check'), _bench('realdata')
    scan = list(realdata.argoverse(REALDATA))[-1]
    checked = real_check.check_scan(ScenePipeline(PipelineConfig(device='cpu')), scan, 30,
                                    features=True)
    raised = [c for c in checked['clusters'] if c['rule'].startswith('raised')]
    assert sum(c['features']['bottom'] > 1.5 for c in raised) >= 3  # well above 0.8 m
    assert all(c['prediction'] == 'truck' and c['unknown'] for c in raised)
    assert not any(o['rule'].startswith('raised') for o in checked['objects'] if o['found'])


def _raised_scene(below: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Scan a panel 1.5-2.5 m up at 20 m, flat ground 1.8 m below the sensor, beams 0.4 deg apart.

    Returns points (M, 3) float32, ground (M,) bool, heights (M,) float32 and
    the panel's rows. ``below``: what else stands there: ``''`` nothing, ``wall``
    a wall 1.5 m tall at 10 m, ``kerb`` one 0.2 m tall at 10 m, ``post`` a
    post 0.3 m wide under the panel's middle, up to 1.4 m.
    """
    mount = 1.8
    points, ground, height, panel = [], [], [], []
    for azimuth in np.radians(np.arange(-3.0, 3.0, 0.2)):
        for elevation in np.radians(np.arange(-15.0, 2.0, 0.4)):
            direction = np.array([math.cos(azimuth), math.sin(azimuth), 0.0]) * math.cos(
                elevation) + np.array([0.0, 0.0, math.sin(elevation)])
            hits = []
            top = {'wall': 1.5, 'kerb': 0.2}.get(below)
            t = 10.0 / direction[0]
            if top is not None and 0.0 <= mount + t * direction[2] <= top:
                hits.append((t, 'solid'))
            t = 20.0 / direction[0]
            up = mount + t * direction[2]
            if 1.5 <= up <= 2.5 and abs(azimuth) < math.radians(2.0):
                hits.append((t, 'panel'))
            if below == 'post' and 0.0 <= up <= 1.4 and abs(t * direction[1]) < 0.15:
                hits.append((t, 'solid'))
            if direction[2] < 0:
                hits.append((-mount / direction[2], 'ground'))
            if not hits:
                continue
            t, what = min(hits)
            point = t * direction
            panel.append(what == 'panel')
            ground.append(what == 'ground')
            height.append(point[2] + mount)
            points.append(point)
    return (np.array(points, np.float32), np.array(ground), np.array(height, np.float32),
            np.flatnonzero(panel))


@pytest.mark.parametrize('below, state', [('', 'open'), ('kerb', 'open'), ('wall', 'hidden')])
def test_raised_clusters_tells_an_open_bottom_from_a_hidden_one(below, state):
    xyz, ground, height, rows = _raised_scene(below)
    counts = _bench('raised_clusters').under_view(xyz, ground, height, rows, math.radians(0.5))
    assert sum(counts.values()) >= 6  # the panel spans 4 deg: eight 0.5 deg bins
    assert counts[state] == sum(counts.values())


def test_raised_clusters_sees_what_stands_under_a_cluster():
    xyz, ground, height, rows = _raised_scene('post')
    counts = _bench('raised_clusters').under_view(xyz, ground, height, rows, math.radians(0.5))
    assert 1 <= counts['support'] <= 2  # the post, 0.9 deg wide, in the middle bins
    assert counts['open'] == sum(counts.values()) - counts['support']


# --- the classifier on each road user's own points (bench/real_crops.py) -----------------

@needs_realdata
def test_real_crops_hands_the_model_every_road_user_real_check_counts(capsys):
    real_crops = _bench('real_crops')
    config = PipelineConfig(device='cpu')
    crops = real_crops.labelled_road_users(REALDATA, config)
    by_set = {}
    for crop in crops:
        by_set[crop.set_name] = by_set.get(crop.set_name, 0) + 1
        assert len(crop.xyz) == len(crop.height) >= 30 and np.isfinite(crop.height).all()
        assert crop.height.min() > config.ground_threshold  # ground left out, as the pipeline
    # real_check.py's road users with >= 30 points the pipeline sees (docs/real_scans.md)
    assert by_set == {'kitti': 16, 'semantickitti': 12, 'av2': 60}
    assert real_crops.main([str(REALDATA)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith('/88')


def test_underbody_rows_lie_under_the_body_behind_the_face_the_sensor_sees():
    probe = _bench('underbody_probe')
    rng = np.random.default_rng(0)
    car = _car_cluster(rng)  # its near face 15 m away along x; the ground 1.7 m down
    car[:, 1] -= car[:, 1].mean()  # straight ahead: the sensor looks along +x at it
    height = car[:, 2] + 1.7
    (xyz, lifted), = probe.with_underbody([(car, height)], rows=12)
    added, added_height = xyz[len(car):], lifted[len(car):]
    assert len(added) == 12
    assert ((added_height >= 0.16) & (added_height <= 0.25)).all()
    np.testing.assert_allclose(added[:, 2] + 1.7, added_height, atol=1e-5)
    behind = added[:, 0] - car[:, 0].min()
    assert ((behind >= 0.4 - 1e-4) & (behind <= 1.5 + 1e-4)).all()
    assert (np.abs(added[:, 1] - np.median(car[:, 1])) <= 0.6 + 1e-3).all()
