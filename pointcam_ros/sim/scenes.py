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
Scenes: a street, a campus/park or an open lot, built from :mod:`objects` on uneven ground.

:func:`random_scene` is deterministic for a seed. Street scenes follow a road
along x with curbs, sidewalks, building facades on both sides, rows of
parked cars, people in groups and next to cars, cyclists, poles, trees and
street furniture. Campus scenes have scattered buildings, merged tree clumps
with bushes, hedges, paths with people and cyclists and sometimes a parking
lot. Open scenes scatter single objects at random, as in a car park.
"""

from dataclasses import dataclass, field
import math
from typing import Callable, Optional

import numpy as np
from pointcam_ros.common.geometry import box_at_yaw
from pointcam_ros.sim import objects as obj
from pointcam_ros.sim.surfaces import Surface

GROUND_ID = -1  # object id of ground points (class id -1 too)
SCENE_KINDS = ('street', 'campus', 'open')
#: Share of each scene kind in generated data sets (:func:`scene_kind_for_seed`).
SCENE_MIX = (0.45, 0.3, 0.25)


@dataclass
class SceneObject:
    """One placed object: its surface (world frame), class, pose, and speed along ``yaw``."""

    object_id: int
    class_id: int
    surface: Surface
    center: np.ndarray  # (3,) float64, world frame, base at ground height
    yaw: float
    kind: str = ''  # builder kind ('car', 'bush', 'building' ...)
    speed: float = 0.0  # m/s along yaw; 0 for parked and static things

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the object's box at its yaw: center (3,), size (3,), world frame."""
        return box_at_yaw(self.surface.vertices, self.yaw)


@dataclass
class Scene:
    """Ground (with curbs) plus objects, in the world frame (z up, ground near z = 0)."""

    ground: Surface
    objects: list[SceneObject] = field(default_factory=list)
    kind: str = 'open'
    #: Street scenes: road centre y, road half width, sidewalk width, curb height (m).
    road: Optional[tuple[float, float, float, float]] = None


class _Terrain:
    """Ground height: slope, long undulations, raised sidewalks (curbs); 0 at the origin."""

    def __init__(self, rng: np.random.Generator, rough: float,
                 raised: tuple[tuple[float, float, float], ...] = ()):
        self.slope = rng.normal(0, 0.02, 2)
        self.amplitude = rng.uniform(0.0, 0.06)
        self.wave = 2 * math.pi / rng.uniform(20, 80, 2)
        self.phase = rng.uniform(0, 2 * math.pi, 2)
        self.raised = raised  # (y_low, y_high, height) bands
        self.rough = rough
        self.offset = 0.0
        self.offset = -float(self.height(np.zeros(1), np.zeros(1))[0])

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return the ground's height in m at ``x``, ``y`` (same shapes)."""
        z = self.slope[0] * x + self.slope[1] * y + self.offset + self.amplitude * (
            np.sin(self.wave[0] * x + self.phase[0]) * np.sin(self.wave[1] * y + self.phase[1]))
        for low, high, rise in self.raised:
            z = z + rise * ((y >= low) & (y <= high))
        return z

    def mesh(self, rng: np.random.Generator, extent: float) -> Surface:
        """Grid mesh over [-extent, extent]^2, with extra rows at curb edges."""
        xs = np.linspace(-extent, extent, int(extent) + 1)
        ys = np.linspace(-extent, extent, int(extent) + 1)
        edges = [e + d for low, high, _ in self.raised for e in (low, high) for d in (-0.02, 0.02)]
        ys = np.unique(np.concatenate([ys, np.clip(edges, -extent, extent)]))
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        gz = self.height(gx, gy) + rng.normal(0, self.rough, gx.shape)
        vertices = np.stack([gx, gy, gz], axis=-1).reshape(-1, 3)
        idx = np.arange(gx.size).reshape(gx.shape)
        a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
        triangles = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                                    np.stack([a, c, d], -1).reshape(-1, 3)]).astype(np.int32)
        return Surface(vertices, triangles, rng.uniform(0.1, 0.3, len(triangles)).astype(
            np.float32), np.zeros(len(triangles), np.uint8))


class _Placer:
    """Adds objects to a scene unless their footprints overlap (0.25 m occupancy grid)."""

    CELL = 0.25

    def __init__(self, scene: Scene, terrain: _Terrain, rng: np.random.Generator,
                 extent: float, keep_out: float = 2.5):
        self.scene, self.terrain, self.rng, self.extent = scene, terrain, rng, extent
        size = int(2 * (extent + 20) / self.CELL)
        self.grid = np.zeros((size, size), bool)
        self.origin = -(extent + 20)
        axis = self.origin + (np.arange(size) + 0.5) * self.CELL
        self.grid |= np.hypot(axis[:, None], axis[None, :]) < keep_out

    def _cells(self, lo, hi, x, y, yaw, margin) -> Optional[tuple[np.ndarray, np.ndarray]]:
        u = np.arange(lo[0] - margin, hi[0] + margin + 1e-9, self.CELL / 2)
        v = np.arange(lo[1] - margin, hi[1] + margin + 1e-9, self.CELL / 2)
        gu, gv = np.meshgrid(u, v, indexing='ij')
        c, s = math.cos(yaw), math.sin(yaw)
        wx, wy = x + c * gu - s * gv, y + s * gu + c * gv
        i = ((wx - self.origin) / self.CELL).astype(int).ravel()
        j = ((wy - self.origin) / self.CELL).astype(int).ravel()
        if i.min() < 0 or j.min() < 0 or max(i.max(), j.max()) >= len(self.grid):
            return None
        return i, j

    def add(self, kind: str, x: float, y: float, yaw: float, surface: Optional[Surface] = None,
            margin: float = 0.3, speed: float = 0.0,
            footprint: Optional[tuple[float, float]] = None) -> bool:
        """
        Build ``kind`` (unless ``surface`` is given) and place it at ``x``, ``y``, ``yaw``.

        ``footprint`` (half length, half width) overrides the surface's own
        (trees claim only their trunk, so crowns may merge). Returns False,
        placing nothing, where it would overlap something or leave the scene.
        """
        if max(abs(x), abs(y)) > self.extent + 5:
            return False
        builder, class_id = obj.KINDS.get(kind, (None, obj.BACKGROUND))
        surface = surface if surface is not None else builder(self.rng)
        if footprint is None:
            lo, hi = surface.vertices[:, :2].min(axis=0), surface.vertices[:, :2].max(axis=0)
        else:
            lo, hi = -np.asarray(footprint), np.asarray(footprint)
        cells = self._cells(lo, hi, x, y, yaw, margin)
        if cells is None or self.grid[cells].any():
            return False
        self.grid[cells] = True
        z = float(self.terrain.height(np.array([x]), np.array([y]))[0]) - 0.03
        self.scene.objects.append(SceneObject(
            object_id=len(self.scene.objects), class_id=class_id,
            surface=surface.moved(yaw, (x, y, z)), center=np.array([x, y, z]), yaw=yaw,
            kind=kind, speed=speed))
        return True

    def scatter(self, kind: str, count: int, sample: Callable[[], tuple[float, float, float]],
                tries: int = 20, surface: Optional[Surface] = None, **kwargs) -> None:
        """
        Place ``count`` objects of ``kind`` at poses drawn from ``sample()`` (x, y, yaw).

        Each object is built once and tried at up to ``tries`` poses;
        ``surface`` (for kinds without a builder, like buildings) needs ``count`` 1.
        """
        if surface is not None and count != 1:
            raise ValueError(f'one given surface cannot be placed {count} times')
        for _ in range(count):
            built = surface if surface is not None else obj.KINDS[kind][0](self.rng)
            for _ in range(tries):
                if self.add(kind, *sample(), surface=built, **kwargs):
                    break


#: Scene size (m) that the counts of scattered things are drawn for (:func:`_count`).
BASE_EXTENT = 45.0


def _count(rng: np.random.Generator, low: int, high: int, extent: float) -> int:
    """Draw a count in [``low``, ``high``) for a 45 m scene, grown by ``extent`` / 45."""
    return int(round(int(rng.integers(low, high)) * extent / BASE_EXTENT))


def _group(placer: _Placer, x: float, y: float, heading: float, size: int,
           walking: bool) -> None:
    """People standing or walking together, 0.5-1.2 m apart."""
    rng = placer.rng
    for k in range(size):
        dx, dy = rng.uniform(-0.6, 0.6) * k, rng.uniform(-0.9, 0.9) * k
        pose = 'walk' if walking else str(rng.choice(['stand', 'phone']))
        yaw = heading + rng.normal(0, 0.2) if walking else rng.uniform(-math.pi, math.pi)
        placer.add('pedestrian', x + dx, y + dy, yaw, surface=obj.person(rng, pose=pose),
                   margin=0.05, speed=rng.uniform(0.8, 1.6) if walking else 0.0)


def _street(placer: _Placer, rng: np.random.Generator, extent: float, road: float,
            center: float, walk: float) -> None:
    """
    Road along x centred on y = ``center`` with half width ``road``; sidewalks ``walk``.

    The street runs from -``extent`` to ``extent``; counts of scattered
    things (furniture, people, traffic) grow with its length as in
    :func:`_campus`.
    """
    sides = ((-1, center - road), (1, center + road))
    for side, curb in sides:
        facade = curb + side * walk
        garden = rng.uniform(1.5, 5.0) if rng.random() < 0.3 else 0.0
        x = -extent - 5
        while x < extent + 5:  # building blocks with gaps, facades towards the road
            length = rng.uniform(8, 30)
            depth = rng.uniform(8, 15)
            surface = obj.building(rng, length, depth)
            placer.add('building', x + length / 2, facade + side * garden,
                       0.0 if side > 0 else math.pi, surface=surface, margin=-0.3)
            x += length + (rng.uniform(2, 8) if rng.random() < 0.3 else 0.0)
        if garden:  # front gardens: hedges, walls, fences along the property line
            x = -extent
            while x < extent:
                length = rng.uniform(4, 14)
                kind = str(rng.choice(['hedge', 'wall', 'fence', 'shrubbery']))
                builder = {'hedge': obj.hedge, 'wall': obj.wall, 'fence': obj.fence,
                           'shrubbery': obj.shrubbery}[kind]
                placer.add(kind, x + length / 2, facade + side * 0.5, 0.0,
                           surface=builder(rng, length), margin=0.05)
                x += length + rng.uniform(1, 4)
            placer.scatter('bush', _count(rng, 2, 8, extent), lambda: (
                rng.uniform(-extent, extent), facade + side * rng.uniform(1.5, garden + 1),
                rng.uniform(-math.pi, math.pi)), margin=0.05)
            placer.scatter('tree', _count(rng, 0, 4, extent), lambda: (
                rng.uniform(-extent, extent), facade + side * rng.uniform(1.5, garden + 1),
                rng.uniform(-math.pi, math.pi)), footprint=(0.3, 0.3))
        # Parked cars (vans among them) and some trucks along the curb, bumper to bumper.
        x = -extent + rng.uniform(0, 5)
        lane = curb - side * rng.uniform(1.15, 1.45)
        while x < extent:
            if rng.random() < 0.25:
                x += rng.uniform(3, 8)
                continue
            kind = 'truck' if rng.random() < 0.08 else 'car'
            surface = obj.KINDS[kind][0](rng)
            half = float(np.ptp(surface.vertices[:, 0])) / 2
            placer.add(kind, x + half, lane, rng.normal(0, 0.04) + (0 if rng.random() < 0.8
                                                                    else math.pi),
                       surface=surface, margin=0.1)
            x += 2 * half + rng.uniform(0.8, 3.0)
        # Poles, trees and furniture on the sidewalk.
        spacing = rng.uniform(15, 30)
        for x in np.arange(-extent + rng.uniform(0, spacing), extent, spacing):
            placer.add('pole', x, curb + side * 0.7, (0.0 if side < 0 else math.pi),
                       surface=obj.pole(rng, 'lamp'), margin=0.05)
        placer.scatter('pole', _count(rng, 1, 5, extent), lambda: (
            rng.uniform(-extent, extent), curb + side * rng.uniform(0.6, 1.0),
            rng.uniform(-math.pi, math.pi)), margin=0.05)
        if rng.random() < 0.6:
            spacing = rng.uniform(6, 12)
            for x in np.arange(-extent + rng.uniform(0, spacing), extent, spacing):
                placer.add('tree', x, curb + side * rng.uniform(1.2, 2.0), rng.uniform(0, 6),
                           footprint=(0.3, 0.3))
        placer.scatter('billboard', _count(rng, 0, 3, extent), lambda: (
            rng.uniform(-extent, extent), curb + side * rng.uniform(0.8, walk),
            0.0 if rng.random() < 0.7 else math.pi / 2), margin=0.1)
        placer.scatter('furniture', _count(rng, 2, 10, extent), lambda: (
            rng.uniform(-extent, extent), curb + side * rng.uniform(0.8, walk - 0.8),
            rng.uniform(-math.pi, math.pi)), margin=0.1)
        if rng.random() < 0.4:  # a row of bollards
            x0 = rng.uniform(-extent, extent - 10)
            for k in range(int(rng.integers(3, 8))):
                placer.add('furniture', x0 + 1.5 * k, curb + side * 0.6, 0.0,
                           surface=obj.furniture(rng, 'bollard'), margin=0.05)
        if rng.random() < 0.5:  # bicycles at a rack
            x0 = rng.uniform(-extent, extent - 5)
            for k in range(int(rng.integers(2, 6))):
                placer.add('bicycle', x0 + 0.75 * k, facade - side * 1.5,
                           math.pi / 2 + rng.normal(0, 0.1), margin=0.0)
        # People on the sidewalk: alone, in groups, next to parked cars.
        for _ in range(_count(rng, 3, 9, extent)):
            x, y = rng.uniform(-extent, extent), curb + side * rng.uniform(0.9, walk - 0.7)
            if rng.random() < 0.4:
                _group(placer, x, y, rng.choice([0.0, math.pi]), int(rng.integers(2, 5)),
                       walking=rng.random() < 0.5)
            else:
                _group(placer, x, y, rng.choice([0.0, math.pi]), 1, walking=rng.random() < 0.7)
    parked = [o for o in placer.scene.objects if o.kind == 'car']
    for car in rng.permutation(len(parked))[:_count(rng, 1, 4, extent)]:
        o = parked[int(car)]
        _, size = o.box()
        person = obj.person(rng, pose='stand')
        for _ in range(8):  # at a door, on either side
            along = rng.uniform(-1, 1)
            offset = (size[1] / 2 + rng.uniform(0.5, 0.9)) * rng.choice([-1, 1])
            if placer.add('pedestrian',
                          o.center[0] + along * math.cos(o.yaw) - offset * math.sin(o.yaw),
                          o.center[1] + along * math.sin(o.yaw) + offset * math.cos(o.yaw),
                          rng.uniform(-math.pi, math.pi), surface=person, margin=0.0):
                break
    # Traffic: cars, trucks, buses, cyclists near the curb, people crossing.
    lanes = np.arange(center - road + 2.8, center + road - 2.5, 3.2)
    for _ in range(_count(rng, 0, 5, extent)):
        kind = 'truck' if rng.random() < 0.3 else 'car'
        heading = 0.0 if rng.random() < 0.5 else math.pi
        placer.scatter(kind, 1, lambda: (rng.uniform(-extent, extent), rng.choice(lanes),
                                         heading + rng.normal(0, 0.03)),
                       speed=rng.uniform(4, 12), margin=0.5)
    for _ in range(_count(rng, 2, 7, extent)):
        side = rng.choice([-1, 1])
        placer.scatter('cyclist', 1, lambda: (
            rng.uniform(-extent, extent), center + side * (road - rng.uniform(1.6, 2.6)),
            (0.0 if side < 0 else math.pi) + rng.normal(0, 0.1)), speed=rng.uniform(3, 7),
            margin=0.2)
    if rng.random() < 0.5:
        x = rng.uniform(-20, 20)
        _group(placer, x, center + rng.uniform(-road, road), math.pi / 2, int(rng.integers(1, 4)),
               walking=True)


def _campus(placer: _Placer, rng: np.random.Generator, extent: float) -> None:
    """
    Scattered buildings, clumps of trees over bushes, hedges, paths with people.

    Things are placed at distances drawn uniformly up to ``extent``; their
    counts grow with ``extent`` (as drawn for 45 m, times ``extent`` / 45)
    so the density at any distance stays the same in a larger scene.
    """
    def anywhere(low: float = 4.0) -> tuple[float, float, float]:
        dist, bearing = rng.uniform(low, extent), rng.uniform(-math.pi, math.pi)
        return dist * math.cos(bearing), dist * math.sin(bearing), rng.uniform(-math.pi, math.pi)

    for _ in range(_count(rng, 1, 5, extent)):
        length, depth = rng.uniform(15, 45), rng.uniform(10, 25)
        surface = obj.building(rng, length, depth)
        placer.scatter('building', 1, lambda: anywhere(18.0), surface=surface, margin=1.0)
    for _ in range(_count(rng, 3, 9, extent)):  # tree clumps: crowns merge, bushes beneath
        x, y, _ = anywhere(5.0)
        for _ in range(int(rng.integers(1, 6))):
            placer.add('tree', x + rng.normal(0, 2.5), y + rng.normal(0, 2.5),
                       rng.uniform(0, 6), footprint=(0.3, 0.3))
        for _ in range(int(rng.integers(0, 5))):
            placer.add('bush', x + rng.normal(0, 3), y + rng.normal(0, 3), rng.uniform(0, 6),
                       margin=0.0)
    placer.scatter('bush', _count(rng, 2, 10, extent), anywhere, margin=0.05)
    placer.scatter('hedge', _count(rng, 1, 6, extent), anywhere, margin=0.1)
    placer.scatter('shrubbery', _count(rng, 1, 6, extent), anywhere, margin=0.1)
    placer.scatter('billboard', _count(rng, 0, 3, extent), anywhere, margin=0.1)
    placer.scatter('wall', _count(rng, 0, 3, extent), anywhere)
    placer.scatter('fence', _count(rng, 0, 3, extent), anywhere)
    placer.scatter('furniture', _count(rng, 3, 10, extent), anywhere, margin=0.1)
    placer.scatter('pole', _count(rng, 2, 8, extent), anywhere, margin=0.1)
    placer.scatter('bicycle', _count(rng, 0, 5, extent), anywhere, margin=0.05)
    for _ in range(_count(rng, 4, 11, extent)):  # people: alone or in groups, on paths
        x, y, heading = anywhere(3.5)
        _group(placer, x, y, heading, int(rng.integers(1, 5)), walking=rng.random() < 0.6)
    placer.scatter('cyclist', _count(rng, 2, 6, extent), anywhere, speed=rng.uniform(3, 6))
    if rng.random() < 0.5:  # a parking lot: rows of cars side by side
        x0, y0, yaw = anywhere(8.0)
        for row in range(int(rng.integers(1, 3))):
            for k in range(int(rng.integers(3, 10))):
                if rng.random() < 0.2:
                    continue
                u, v = k * rng.uniform(2.4, 2.8), row * 6.0
                kind = 'truck' if rng.random() < 0.05 else 'car'
                placer.add(kind, x0 + u * math.cos(yaw) - v * math.sin(yaw),
                           y0 + u * math.sin(yaw) + v * math.cos(yaw),
                           yaw + math.pi / 2 + rng.normal(0, 0.05) + math.pi * (row % 2),
                           margin=0.05)
    placer.scatter('car', _count(rng, 0, 4, extent), anywhere, margin=0.3)
    placer.scatter('truck', _count(rng, 0, 2, extent), anywhere, margin=0.3)


#: Kinds drawn for each class in open scenes (background: any clutter).
_OPEN_KINDS = (('car',), ('truck',), ('pedestrian',), ('cyclist',), ('pole',), ('tree',),
               ('bush', 'hedge', 'wall', 'fence', 'furniture', 'furniture', 'bicycle',
                'shrubbery', 'billboard'))


def _open(placer: _Placer, rng: np.random.Generator, extent: float,
          num_objects: Optional[int], class_weights: Optional[np.ndarray]) -> None:
    """Single objects at random positions and headings."""
    count = int(rng.integers(15, 34)) if num_objects is None else num_objects
    weights = np.ones(len(_OPEN_KINDS)) if class_weights is None else np.asarray(
        class_weights, float)
    weights = weights / weights.sum()
    attempts = 0
    while len(placer.scene.objects) < count and attempts < count * 30:
        attempts += 1
        class_id = int(rng.choice(len(_OPEN_KINDS), p=weights))
        kind = str(rng.choice(_OPEN_KINDS[class_id]))
        dist, bearing = rng.uniform(3.0, extent), rng.uniform(-math.pi, math.pi)
        moving = class_id in (obj.CAR, obj.TRUCK, obj.PEDESTRIAN, obj.CYCLIST)
        speed = {obj.CAR: 6.0, obj.TRUCK: 5.0, obj.PEDESTRIAN: 1.2, obj.CYCLIST: 4.0}.get(
            class_id, 0.0) * rng.uniform(0.5, 1.2) if moving else 0.0
        placer.add(kind, dist * math.cos(bearing), dist * math.sin(bearing),
                   rng.uniform(-math.pi, math.pi), speed=speed, margin=0.8)


def scene_kind_for_seed(seed: int) -> str:
    """Scene kind a data set uses for ``seed`` (deterministic, mix :data:`SCENE_MIX`)."""
    rng = np.random.default_rng([seed, 7])
    return SCENE_KINDS[int(rng.choice(len(SCENE_KINDS), p=SCENE_MIX))]


def random_scene(seed: int, kind: str = 'open', num_objects: Optional[int] = None,
                 extent: float = BASE_EXTENT, class_weights: Optional[np.ndarray] = None) -> Scene:
    """
    Generate a scene of ``kind`` ('street', 'campus' or 'open'), deterministic for ``seed``.

    The sensor stands at the origin, on the road in a street. Nothing is
    placed within 2.5 m of it. ``num_objects`` and ``class_weights`` (7,)
    (how often each class is drawn; default uniform) apply to open scenes.
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f'scene kind must be one of {SCENE_KINDS}, got {kind!r}')
    rng = np.random.default_rng(seed)
    if kind == 'street':
        road, walk = rng.uniform(3.5, 7.5), rng.uniform(2.0, 5.0)
        center = rng.uniform(-(road - 1.5), road - 1.5)
        curb = rng.uniform(0.08, 0.13)
        bands = ((center + road, center + road + walk, curb),
                 (center - road - walk, center - road, curb))
        terrain = _Terrain(rng, 0.01, bands)
    else:
        terrain = _Terrain(rng, 0.02 if kind == 'open' else 0.03)
    scene = Scene(ground=terrain.mesh(rng, extent + 10), kind=kind,
                  road=(center, road, walk, curb) if kind == 'street' else None)
    placer = _Placer(scene, terrain, rng, extent)
    if kind == 'street':
        _street(placer, rng, extent, road, center, walk)
    elif kind == 'campus':
        _campus(placer, rng, extent)
    else:
        _open(placer, rng, extent, num_objects, class_weights)
    return scene


def move_objects(scene: Scene, dt: float, seed: int) -> None:
    """Advance moving objects by ``dt`` s along their heading (speed jitters +-10 %)."""
    rng = np.random.default_rng(seed)
    for item in scene.objects:
        if item.speed > 0:
            step = item.speed * rng.uniform(0.9, 1.1) * dt * np.array(
                [math.cos(item.yaw), math.sin(item.yaw), 0.0])
            item.surface = Surface(item.surface.vertices + step, item.surface.triangles,
                                   item.surface.reflectivity, item.surface.material)
            item.center = item.center + step
