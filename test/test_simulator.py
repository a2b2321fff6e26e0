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

"""The LiDAR simulator: beams, labels, occlusion, and each way real returns differ from ideal."""

import math
import re

import numpy as np
from pointcam_ros.common.geometry import box_at_yaw, oriented_box
from pointcam_ros.formats.cloud_io import read_cloud
from pointcam_ros.sim import objects as obj
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import (
    CLASS_NAMES, GROUND_ID, random_scene, scan, Scene, SCENE_KINDS, SceneObject, SENSORS)
from pointcam_ros.sim.surfaces import (
    box, ellipsoid, foliage, GLASS, loft, MESH, rounded_outline, SOLID, WINDOW)
import pytest


def _scene(*surfaces, ground=None):
    """Flat-ish ground plus one object per surface (object i has id i, background)."""
    ground = random_scene(0).ground if ground is None else ground
    return Scene(ground=ground, objects=[
        SceneObject(i, obj.BACKGROUND, s, s.vertices.mean(axis=0), 0.0)
        for i, s in enumerate(surfaces)])


def _ranges(scene, sensor='os1_128', **kwargs):
    """Range (beams, columns) and object id of a noise-free, dropout-free scan."""
    kwargs = {'range_noise': 0.0, 'dropout': 0.0, **kwargs}
    result = scan(scene, SENSORS[sensor], 0, **kwargs)
    return np.linalg.norm(result.xyz, axis=-1), result.object_id


@pytest.mark.parametrize('name, beams, columns', [
    ('vlp16', 16, 1800), ('hdl32', 32, 2170), ('hdl64', 64, 2083), ('os1_64', 64, 1024),
    ('os1_128', 128, 2048)])
def test_presets_have_the_real_beam_geometry(name, beams, columns):
    sensor = SENSORS[name]
    assert sensor.beams == beams and sensor.columns == columns
    result = scan(random_scene(1, 'street'), sensor, 1, range_noise=0.0, dropout=0.0)
    assert result.xyz.shape == (beams, columns, 3)
    elevation = np.degrees(np.arctan2(result.xyz[..., 2],
                                      np.hypot(result.xyz[..., 0], result.xyz[..., 1])))
    for row in range(beams):
        measured = elevation[row][np.isfinite(elevation[row])]
        if len(measured):
            assert np.allclose(measured, sensor.vertical_deg[row], atol=1e-3)
    rng = np.linalg.norm(result.xyz.reshape(-1, 3), axis=1)
    assert np.nanmax(rng) <= sensor.max_range


def test_vertical_angles_and_noise_of_the_datasheets():
    assert SENSORS['vlp16'].vertical_deg[0] == 15 and SENSORS['vlp16'].vertical_deg[-1] == -15
    hdl64 = SENSORS['hdl64'].vertical_deg
    assert hdl64[0] == pytest.approx(2.0) and hdl64[-1] == pytest.approx(-24.33)
    assert np.ptp(SENSORS['os1_128'].vertical_deg) == pytest.approx(45.0)
    assert SENSORS['vlp16'].range_noise == 0.03 and SENSORS['hdl64'].range_noise == 0.02
    assert all(0.01 <= s.range_noise <= 0.03 for s in SENSORS.values())


@pytest.mark.parametrize('kind', SCENE_KINDS)
def test_deterministic_for_a_seed_and_different_across_seeds(kind):
    a = scan(random_scene(7, kind), SENSORS['hdl32'], 3)
    b = scan(random_scene(7, kind), SENSORS['hdl32'], 3)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.object_id, b.object_id)
    c = scan(random_scene(8, kind), SENSORS['hdl32'], 3)
    assert not np.array_equal(np.isnan(a.xyz), np.isnan(c.xyz))


def test_unknown_scene_kind_is_refused():
    with pytest.raises(ValueError, match='street'):
        random_scene(0, 'forest')


def test_labels_cover_all_classes_and_ground():
    seen = set()
    for seed in range(6):
        scene = random_scene(seed, SCENE_KINDS[seed % 3])
        result = scan(scene, SENSORS['hdl64'], seed)
        _, object_id, class_id = result.flat()
        assert (class_id[object_id == GROUND_ID] == -1).all()
        for item in scene.objects:
            assert (class_id[object_id == item.object_id] == item.class_id).all()
        seen |= set(class_id[class_id >= 0].tolist())
    assert seen == set(range(len(CLASS_NAMES)))


def test_objects_occlude_each_other_and_far_objects_are_sparse():
    sensor = 'hdl64'
    counts = {}
    for x in (10.0, 20.0, 40.0):
        _, ids = _ranges(_scene(box((1.0, 4.0, 2.0), (x, 0, 1.0), 0.8)), sensor)
        counts[x] = int((ids == 0).sum())
    assert counts[10.0] > 2.5 * counts[20.0] > 0 and counts[20.0] > 2 * counts[40.0] > 0
    _, ids = _ranges(_scene(box((1.0, 4.0, 2.0), (10, 0, 1.0), 0.8),
                            box((1.0, 6.0, 4.0), (5, 0, 2.0), 0.8)), sensor)
    assert (ids == 0).sum() < 0.2 * counts[10.0]


def test_range_noise_is_the_presets_and_dropout_is_random():
    scene = random_scene(3, 'street')
    clean = scan(scene, SENSORS['hdl32'], 1, range_noise=0.0, dropout=0.0)
    dropped = scan(scene, SENSORS['hdl32'], 1, range_noise=0.0, dropout=0.2)
    valid_clean = np.isfinite(clean.xyz[..., 0]).sum()
    valid_drop = np.isfinite(dropped.xyz[..., 0]).sum()
    assert 0.75 < valid_drop / valid_clean < 0.85
    for name in ('vlp16', 'hdl64'):
        ideal = scan(scene, SENSORS[name], 1, range_noise=0.0, dropout=0.0)
        noisy = scan(scene, SENSORS[name], 1, dropout=0.0)  # the preset's own sigma
        both = np.isfinite(ideal.xyz[..., 0]) & np.isfinite(noisy.xyz[..., 0])
        diff = np.linalg.norm(noisy.xyz[both], axis=1) - np.linalg.norm(ideal.xyz[both], axis=1)
        assert diff.std() == pytest.approx(SENSORS[name].range_noise, rel=0.1)


def test_tree_crowns_are_porous_not_shells():
    """Returns come from throughout a crown's depth, and some rays pass through it."""
    rng = np.random.default_rng(0)
    shell_range, shell_ids = _ranges(_scene(ellipsoid((2, 2, 1.6), (10, 0, 3.0), 0.3,
                                                      resolution=20)), effects=False)
    crossing = shell_ids == 0
    shares = []
    for density in (25, 110):
        crown = foliage(rng, (2, 2, 1.6), (10, 0, 3.0), density)
        crown_range, crown_ids = _ranges(_scene(crown), effects=False)
        hit = crossing & (crown_ids == 0)
        depth = (crown_range - shell_range)[hit]  # how far inside the crown each return is
        assert depth.min() > -0.6 and np.percentile(depth, 90) > 1.2, density  # leaves stick out
        assert depth.std() > 0.5, density
        shares.append(((crown_ids != 0) & crossing).sum() / crossing.sum())
    assert 0.3 < shares[0] < 0.7 and 0.03 < shares[1] < 0.3  # denser crowns stop more rays
    # A whole tree's returns spread through its crown, not on a 10 cm shell.
    tree = obj.tree(np.random.default_rng(3), 'broadleaf').moved(0.0, (8, 0, 0))
    xyz = scan(_scene(tree), SENSORS['os1_128'], 0).xyz
    ids = _ranges(_scene(tree))[1]
    points = xyz[(ids == 0) & (xyz[..., 2] > 1.0)]
    assert np.ptp(points[:, 0]) > 1.5


def test_glass_returns_nothing_or_what_is_behind_and_fences_let_rays_through():
    wall = box((0.3, 8.0, 4.0), (14, 0, 2.0), 0.6)
    pane = {'size': (0.02, 3.0, 2.0), 'center': (8, 0, 1.5)}
    # Facade window in front of a dark room: most rays come back with nothing.
    _, ids = _ranges(_scene(box(**pane, reflectivity=0.1, material=WINDOW)))
    _, solid_ids = _ranges(_scene(box(**pane, reflectivity=0.1)))
    assert (solid_ids == 0).sum() > 500
    assert (ids == 0).sum() < 0.25 * (solid_ids == 0).sum()
    # Car glass: many rays return from what is behind it (through both faces of the pane,
    # each passing half of them).
    _, ids = _ranges(_scene(box(**pane, reflectivity=0.1, material=GLASS), wall))
    _, blocked = _ranges(_scene(box(**pane, reflectivity=0.1), wall))
    shadow = blocked == 0
    assert 0.15 < (ids[shadow] == 1).mean() < 0.4
    # Chain-link and picket fences: the wall behind shows through.
    picket = obj.fence(np.random.default_rng(1), 3.0, 'picket').moved(math.pi / 2, (8, 0, 0))
    for fence in (box((0.01, 3.0, 2.0), (8, 0, 1.5), 0.4, MESH), picket):
        _, ids = _ranges(_scene(fence, wall))
        behind = (ids[shadow] == 1).mean()
        assert 0.2 < behind < 0.85 and (ids[shadow] == 0).mean() > 0.1


def test_dark_surfaces_drop_out_at_range():
    counts = {}
    for shade in (0.05, 0.8):
        for x in (10.0, 40.0):
            _, ids = _ranges(_scene(box((0.3, 4.0, 3.0), (x, 0, 1.5), shade)), 'hdl64')
            counts[shade, x] = (ids == 0).sum()
    assert counts[0.05, 10.0] > 0.9 * counts[0.8, 10.0] > 0
    assert counts[0.05, 40.0] < 0.3 * counts[0.8, 40.0]


def test_mixed_pixels_float_between_an_edge_and_the_background():
    scene = _scene(box((0.5, 2.0, 3.0), (10, 0, 1.5), 0.6), box((0.5, 12.0, 5.0), (16, 0, 2.5)))
    for effects, low, high in ((False, 0, 0), (True, 5, 200)):
        ranges, ids = _ranges(scene, 'vlp16', effects=effects)
        between = (ranges > 10.5) & (ranges < 15.5) & (ids >= 0)
        assert low <= between.sum() <= high, effects
    assert (ids == 0).sum() > 10 * between.sum()


def test_street_has_curbs_facades_and_rows_of_parked_cars():
    for seed in range(3):
        scene = random_scene(seed, 'street')
        center, half, walk, curb = scene.road
        assert 0.08 <= curb <= 0.13 and abs(center) < half  # the sensor stands on the road
        vertices = scene.ground.vertices
        near = np.abs(vertices[:, 0]) < 3
        for side in (-1, 1):
            # The ground mesh has a row of vertices 2 cm either side of each curb.
            road = near & (np.abs(vertices[:, 1] - (center + side * (half - 0.02))) < 1e-3)
            walkway = near & (np.abs(vertices[:, 1] - (center + side * (half + 0.02))) < 1e-3)
            assert road.sum() >= 2 and walkway.sum() >= 2
            step = np.median(vertices[walkway, 2]) - np.median(vertices[road, 2])
            assert curb - 0.06 < step < curb + 0.06
        buildings = [o for o in scene.objects if o.kind == 'building']
        sides = {np.sign(o.center[1] - center) for o in buildings}
        assert sides == {-1.0, 1.0} and all(o.class_id == obj.BACKGROUND for o in buildings)
        parked = [o for o in scene.objects if o.kind == 'car' and o.speed == 0]
        assert len(parked) >= 6
        assert all(min(abs(math.sin(o.yaw)), 1) < 0.2 for o in parked)  # along the road
        kinds = {o.kind for o in scene.objects}
        assert {'pole', 'pedestrian', 'cyclist', 'furniture'} <= kinds
        people = np.array([o.center[:2] for o in scene.objects if o.kind == 'pedestrian'])
        beside = 0  # people within 1 m of a parked car's side
        for car in parked:
            center, size = car.box()
            c, s = math.cos(car.yaw), math.sin(car.yaw)
            local = (people - center[:2]) @ np.array([[c, -s], [s, c]])
            beside += int(((np.abs(local[:, 0]) < size[0] / 2) &
                           (np.abs(local[:, 1]) < size[1] / 2 + 1.0)).sum())
        assert beside >= 1


def test_facades_have_recesses_and_window_glass():
    facade = obj.building(np.random.default_rng(4), length=40.0, depth=10.0, height=9.0)
    walls = facade.vertices[facade.triangles[facade.material == 0]].reshape(-1, 3)
    fronts = np.unique(np.round(walls[:, 1], 2))
    assert 0.0 in fronts and (fronts[(fronts > 0.1) & (fronts < 1.0)]).size  # set back
    windows = facade.material == WINDOW
    assert 10 <= windows.sum() / 12 and (facade.reflectivity[windows] < 0.2).all()
    # Balconies and awnings stick out of the facade (towards -y), up in the air.
    out = walls[walls[:, 1] < -0.3]
    assert len(out) and out[:, 1].min() >= -2.0 - 1e-6 and out[:, 2].min() > 2.0


def test_shrubs_are_tall_dense_rows_and_billboards_float():
    rng = np.random.default_rng(0)
    rows = [obj.shrubbery(rng, 8.0) for _ in range(5)]
    tops = [float(r.vertices[:, 2].max()) for r in rows]
    assert max(tops) > 2.5 and all(1.0 < t < 4.5 for t in tops)
    assert all(np.ptp(r.vertices[:, 0]) > 7.0 for r in rows)  # grown together along the row
    for kind in ('billboard', 'sign'):
        board = obj.billboard(rng, kind)
        solid = board.triangles[board.reflectivity > 0.31]  # the panel, not its posts
        panel = board.vertices[np.unique(solid)]
        assert panel[:, 2].min() >= 0.8 - 1e-6 and np.ptp(panel[:, 1]) <= 0.4 + 1e-6


def test_scattered_things_grow_with_the_scene_and_reach_its_edge():
    small, large = random_scene(5, 'street', extent=45.0), random_scene(5, 'street', extent=90.0)
    assert len(large.objects) > 1.5 * len(small.objects)
    far = [o for o in large.objects if np.hypot(*o.center[:2]) > 60]
    assert {'car', 'building'} <= {o.kind for o in far}


def test_campus_has_merged_tree_clumps_bushes_and_groups():
    clumps = groups = 0
    for seed in range(4):
        scene = random_scene(seed, 'campus')
        trees = np.array([o.center[:2] for o in scene.objects if o.kind == 'tree'])
        gaps = np.linalg.norm(trees[:, None] - trees[None], axis=-1) + 99 * np.eye(len(trees))
        clumps += int((gaps.min(axis=1) < 4.0).sum() >= 2)
        people = np.array([o.center[:2] for o in scene.objects if o.kind == 'pedestrian'])
        gaps = np.linalg.norm(people[:, None] - people[None], axis=-1) + 99 * np.eye(len(people))
        groups += int((gaps.min(axis=1) < 1.5).sum() >= 2)
        assert {'bush', 'hedge', 'building'} <= {o.kind for o in scene.objects}
    assert clumps >= 3 and groups >= 2


def test_ground_is_sloped_and_uneven():
    residuals, slopes = [], []
    for seed in range(4):
        vertices = random_scene(seed).ground.vertices
        inside = np.abs(vertices[:, :2]).max(axis=1) < 40
        a = np.c_[vertices[inside, :2], np.ones(inside.sum())]
        coef, *_ = np.linalg.lstsq(a, vertices[inside, 2], rcond=None)
        residuals.append(np.std(vertices[inside, 2] - a @ coef))
        slopes.append(np.hypot(*coef[:2]))
    assert max(slopes) > 0.01 and min(residuals) > 0.015 and max(residuals) > 0.025


def test_people_vary_in_build_pose_and_what_they_carry():
    rng = np.random.default_rng(0)
    sizes = np.array([np.ptp(obj.person(rng).vertices, axis=0) for _ in range(60)])
    assert np.ptp(sizes[:, 2]) > 0.5  # children and adults
    assert sizes[:, 0].std() > 0.1 and sizes[:, 1].std() > 0.04  # stride, build, bags
    walking = np.ptp(obj.person(rng, 'walk', 1.8, 'none').vertices[:, 0])
    standing = np.ptp(obj.person(rng, 'stand', 1.8, 'none').vertices[:, 0])
    assert walking > standing + 0.15
    stroller = np.ptp(obj.person(rng, 'stand', 1.8, 'stroller').vertices[:, 0])
    assert stroller > standing + 0.6


def test_cyclists_ride_and_standing_bicycles_are_background():
    rng = np.random.default_rng(0)
    rider = obj.cyclist(rng)
    bike = obj.bicycle(rng)
    assert np.ptp(rider.vertices[:, 2]) > 1.4 and np.ptp(bike.vertices[:, 2]) < 1.3
    assert obj.KINDS['cyclist'][1] == obj.CYCLIST and obj.KINDS['bicycle'][1] == obj.BACKGROUND
    # Vans are cars, buses trucks; walls, fences, hedges, bushes, furniture background.
    assert np.ptp(obj.car(rng, 'van').vertices[:, 2]) > 1.8
    assert np.ptp(obj.truck(rng, 'bus').vertices[:, 0]) > 9
    for kind in ('wall', 'fence', 'hedge', 'bush', 'furniture'):
        assert obj.KINDS[kind][1] == obj.BACKGROUND


def _signed_volume(surface):
    """Volume enclosed by a closed, consistently wound triangle surface (divergence theorem)."""
    a, b, c = (surface.vertices[surface.triangles[:, k]] for k in range(3))
    return float(np.einsum('ij,ij->i', a, np.cross(b, c)).sum() / 6)


def test_a_loft_is_a_closed_skin_and_refuses_rings_that_do_not_match():
    count, radius = 48, 0.8
    rings = [rounded_outline(2 * radius, 2 * radius, z, exponent=2.0, count=count)
             for z in (1.0, 1.5, 2.5)]  # off the origin: a cap wound wrongly changes the volume
    skin = loft(rings, 0.3, SOLID)
    polygon = count / 2 * math.sin(2 * math.pi / count) * radius ** 2
    assert _signed_volume(skin) == pytest.approx(polygon * 1.5, rel=1e-9)  # closed, outwards
    # Each edge is shared by two triangles that run it in opposite directions: one winding.
    edges = np.concatenate([skin.triangles[:, [0, 1]], skin.triangles[:, [1, 2]],
                            skin.triangles[:, [2, 0]]])
    assert len({tuple(e) for e in edges.tolist()}) == len(edges)
    assert {tuple(e) for e in edges.tolist()} == {tuple(e) for e in edges[:, ::-1].tolist()}
    assert len(skin.triangles) == 2 * count * 2 + 2 * count
    open_top = loft(rings, 0.3, SOLID, cap_top=False)
    assert len(open_top.triangles) == len(skin.triangles) - count
    with pytest.raises(ValueError, match='same'):
        loft([rings[0], rings[1][:-1]])
    with pytest.raises(ValueError, match='two or more'):
        loft(rings[:1])
    with pytest.raises(ValueError, match='two or more'):
        loft([])
    square = rounded_outline(4.0, 2.0, 0.3, x=1.0, exponent=40.0)
    assert np.allclose(square[:, 2], 0.3)
    assert square[:, 0].min() == pytest.approx(-1.0) and square[:, 0].max() == pytest.approx(3.0)
    assert np.abs(square[:, 1]).max() == pytest.approx(1.0)


def roof_rows(surface, top: float) -> np.ndarray:
    """Rows (bool, per triangle) of ``surface`` lying wholly at its top height ``top``."""
    rows = surface.vertices[surface.triangles][:, :, 2].min(axis=1) > top - 1e-6
    assert rows.any()
    return rows


@pytest.mark.parametrize('kind', ['sedan', 'hatch', 'suv', 'van'])
def test_curved_cars_are_the_same_cars_with_another_body(kind):
    boxed_rng, curved_rng = np.random.default_rng(5), np.random.default_rng(5)
    boxed, curved = obj.car(boxed_rng, kind), obj.car(curved_rng, kind, body='curved')
    assert boxed_rng.random() == curved_rng.random()  # the same numbers were drawn
    lo, hi = boxed.vertices.min(axis=0), boxed.vertices.max(axis=0)
    clo, chi = curved.vertices.min(axis=0), curved.vertices.max(axis=0)
    assert np.allclose(clo[:2], lo[:2], atol=0.02) and np.allclose(chi[:2], hi[:2], atol=0.02)
    assert chi[2] == pytest.approx(hi[2], abs=0.05)  # the roof: same height
    # The cabin narrows upwards (tumblehome) and its glass leans back: at the roof the
    # glass-and-roof part is narrower and shorter than where it meets the body.
    cabin = curved.vertices[curved.triangles[curved.material == GLASS]].reshape(-1, 3)
    top, bottom = cabin[:, 2] > cabin[:, 2].max() - 0.01, cabin[:, 2] < cabin[:, 2].min() + 0.01
    assert np.ptp(cabin[top, 1]) < np.ptp(cabin[bottom, 1]) - 0.15
    assert np.ptp(cabin[top, 0]) < np.ptp(cabin[bottom, 0]) * (0.9 if kind == 'van' else 0.7)
    # The windscreen (the nose is +x) leans back further than the rear window.
    if kind != 'van':  # a van's glass ends at its cargo walls: no rear window
        front = cabin[bottom, 0].max() - cabin[top, 0].max()
        rear = cabin[top, 0].min() - cabin[bottom, 0].min()
        assert front > 2 * rear > 0
    # The roof is painted like the body, not glass; a van's cabin is painted behind its
    # front doors, where the box van's cargo walls are.
    assert (curved.material[roof_rows(curved, chi[2])] == SOLID).all()
    body_paint = curved.reflectivity[0]  # the body's first triangle
    assert np.allclose(curved.reflectivity[roof_rows(curved, chi[2])], body_paint)
    if kind == 'van':  # glass only ahead of the middle: the box van's cargo walls reach past it
        glass = curved.vertices[curved.triangles[curved.material == GLASS]]
        assert glass[:, :, 0].mean(axis=1).min() > 0
    with pytest.raises(ValueError, match='car body'):
        obj.car(np.random.default_rng(5), kind, body='round')


def test_a_curved_bonnet_never_folds_under_the_body():
    """The bonnet's drop stays above the ring below the shoulder, on every kind and size."""
    count = len(rounded_outline(1.0, 1.0, 0.0))  # the rings' vertices (loft keeps them first)
    for seed in range(300):
        rings = obj.car(np.random.default_rng(seed), body='curved').vertices[:4 * count]
        below, shoulder = rings[2 * count:3 * count, 2], rings[3 * count:, 2]
        assert (shoulder > below).all(), seed


def test_car_shape_probe_scans_the_same_car_with_both_bodies(capsys):
    """bench/car_shape_probe.py: one car, alone at 10 m, is found and named car either way."""
    import importlib.util
    from pathlib import Path
    from pointcam_ros.common.config import PipelineConfig
    from pointcam_ros.perception.pipeline import ScenePipeline
    path = Path(__file__).resolve().parents[1] / 'bench' / 'car_shape_probe.py'
    spec = importlib.util.spec_from_file_location('car_shape_probe', path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    pipeline = ScenePipeline(PipelineConfig(device='cpu'))
    for body in obj.CAR_BODIES:
        surface = obj.car(np.random.default_rng(2), 'sedan', body=body)
        named, confidence = probe.shown_as(pipeline, surface, (10.0, 0.0, 0.4), 'hdl64', 1.8, 2)
        assert named and confidence >= pipeline.config.min_confidence
    # Too far for any cluster to hold half of it: not counted.
    far = obj.car(np.random.default_rng(2), 'sedan', body='curved')
    assert probe.shown_as(pipeline, far, (95.0, 0.0, 0.4), 'vlp16', 1.8, 2) is None
    assert probe.main(['--cars', '2']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == list(obj.CAR_BODIES)
    cars, both, only_box, only_curved = (int(v) for v in re.findall(r'\d+', lines[2]))
    assert cars == 2 and both + only_box + only_curved <= cars
    named = [int(line.split('named car ')[1].split('/')[0]) for line in lines[:2]]
    assert named == [both + only_box, both + only_curved]


def test_scene_boxes_use_the_shared_box_math():
    size = np.array([4.0, 1.8, 1.5])
    yaw = 0.7
    surface = box(size, (0, 0, size[2] / 2)).moved(yaw, (5.0, -3.0, 0.2))
    item = SceneObject(0, obj.CAR, surface, np.array([5.0, -3.0, 0.2]), yaw)
    center, measured = item.box()
    np.testing.assert_allclose(measured, size, atol=1e-6)
    np.testing.assert_allclose(center, (5.0, -3.0, 0.2 + size[2] / 2), atol=1e-6)
    c2, s2 = box_at_yaw(surface.vertices, yaw)
    np.testing.assert_array_equal(center, c2)
    _, s3, yaw3 = oriented_box(surface.vertices)
    np.testing.assert_allclose(s3, size, atol=1e-6)
    assert math.isclose(math.cos(2 * (yaw3 - yaw)), 1.0, abs_tol=1e-6)


@pytest.mark.parametrize('sensor, point_step', [('vlp16', 22), ('os1_64', 48)])
def test_scans_are_published_in_the_driver_layout(sensor, point_step):
    result = scan(random_scene(2, 'street'), SENSORS[sensor], 2)
    cloud = scan_to_cloud(result)
    assert cloud.point_step == point_step and cloud.height == SENSORS[sensor].beams
    points = read_cloud(cloud, ['ring', 'intensity'])
    valid = np.isfinite(result.xyz.reshape(-1, 3)).all(axis=1)
    np.testing.assert_array_equal(points.xyz, result.xyz.reshape(-1, 3)[valid])
    np.testing.assert_array_equal(points.extras['ring'], result.ring.reshape(-1)[valid])
