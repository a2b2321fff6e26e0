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
A LiDAR simulator: procedurally generated street scenes scanned with real beam patterns.

Scenes are built from open3d primitives (boxes, cylinders, spheres) and cast
with ``open3d.t.geometry.RaycastingScene``. A scan is organized like the
drivers publish it: ``(beams, columns)`` with NaN where a beam returned
nothing (sky, beyond range, dropout). Every point carries its ground-truth
object id and class. Everything is deterministic for a seed.
"""

from dataclasses import dataclass, field
import math
from typing import Optional

import numpy as np
import open3d as o3d

#: Object classes the simulator labels; ``background`` is clutter (walls,
#: bushes, boxes) that is not an object class of interest.
CLASS_NAMES = ('car', 'truck', 'pedestrian', 'cyclist', 'pole', 'tree', 'background')
GROUND_ID = -1  # object id of ground points (class id -1 too)


@dataclass(frozen=True)
class SensorPreset:
    """
    Beam geometry of a spinning LiDAR.

    ``vertical_deg`` (beams,) elevation of each beam, top to bottom as the
    organized cloud's rows; ``columns`` azimuth steps per revolution at
    ``rate_hz``; ``max_range`` in metres.
    """

    name: str
    vertical_deg: tuple[float, ...]
    columns: int
    rate_hz: float
    max_range: float
    layout: str  # 'velodyne' or 'ouster' (see sensor_layouts)

    @property
    def beams(self) -> int:
        """Return the number of lasers (rows of the organized cloud)."""
        return len(self.vertical_deg)


def _linspace(top: float, bottom: float, num: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(top, bottom, num))


# HDL-64E S2: upper block +2.0..-8.33 deg (1/3 deg), lower block -8.83..-24.33 (1/2 deg).
_HDL64 = _linspace(2.0, -8.33, 32) + _linspace(-8.83, -24.33, 32)

SENSORS: dict[str, SensorPreset] = {p.name: p for p in (
    SensorPreset('vlp16', _linspace(15.0, -15.0, 16), 1800, 10.0, 100.0, 'velodyne'),
    SensorPreset('hdl32', _linspace(10.67, -30.67, 32), 2170, 10.0, 100.0, 'velodyne'),
    SensorPreset('hdl64', _HDL64, 2083, 10.0, 120.0, 'velodyne'),
    SensorPreset('os1_64', _linspace(22.5, -22.5, 64), 1024, 10.0, 120.0, 'ouster'),
    SensorPreset('os1_128', _linspace(22.5, -22.5, 128), 2048, 10.0, 120.0, 'ouster'),
)}


@dataclass
class SceneObject:
    """One placed object: its triangle mesh (world frame), class and pose."""

    object_id: int
    class_id: int
    mesh: o3d.geometry.TriangleMesh
    center: np.ndarray  # (3,) float64, world frame, base at ground height
    yaw: float

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the mesh's oriented box: center (3,), size (3,), world frame, yaw ``yaw``."""
        vertices = np.asarray(self.mesh.vertices)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = (vertices[:, :2] - self.center[:2]) @ np.array([[c, -s], [s, c]])
        lo = np.r_[local.min(axis=0), vertices[:, 2].min()]
        hi = np.r_[local.max(axis=0), vertices[:, 2].max()]
        mid = (lo + hi) / 2
        center = np.r_[self.center[:2] + np.array([[c, -s], [s, c]]) @ mid[:2], mid[2]]
        return center, hi - lo


@dataclass
class Scene:
    """Ground plus objects, in the world frame (z up, ground near z = 0)."""

    ground: o3d.geometry.TriangleMesh
    objects: list[SceneObject] = field(default_factory=list)


@dataclass
class Scan:
    """
    One simulated revolution, organized ``(beams, columns)``, sensor frame.

    ``xyz`` (beams, columns, 3) float32 with NaN for no return; ``object_id``
    and ``class_id`` (beams, columns) int32 (-1: ground or no return);
    ``intensity`` (beams, columns) float32; ``ring`` (beams, columns) uint16;
    ``time`` (beams, columns) float32 seconds since the scan start.
    """

    xyz: np.ndarray
    object_id: np.ndarray
    class_id: np.ndarray
    intensity: np.ndarray
    ring: np.ndarray
    time: np.ndarray
    sensor: SensorPreset

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return valid points ``(M, 3)`` float32, their object ids and class ids ``(M,)``."""
        xyz = self.xyz.reshape(-1, 3)
        valid = np.isfinite(xyz).all(axis=1)
        return (xyz[valid], self.object_id.reshape(-1)[valid],
                self.class_id.reshape(-1)[valid])


# --- object builders ---------------------------------------------------------------------

def _box(size, center) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_box(*size)
    mesh.translate(np.asarray(center, float) - np.asarray(size, float) / 2)
    return mesh


def _cylinder(radius, height, center, axis='z') -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_cylinder(radius, height, resolution=12, split=1)
    if axis == 'y':
        mesh.rotate(o3d.geometry.get_rotation_matrix_from_xyz((math.pi / 2, 0, 0)), (0, 0, 0))
    mesh.translate(center)
    return mesh


def _sphere(radius, center, scale=(1.0, 1.0, 1.0)) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution=8)
    vertices = np.asarray(mesh.vertices) * np.asarray(scale)
    mesh.vertices = o3d.utility.Vector3dVector(vertices)
    mesh.translate(center)
    return mesh


def _merge(parts) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh()
    for part in parts:
        mesh += part
    return mesh


def _car(rng):
    length, width = rng.uniform(3.6, 4.9), rng.uniform(1.6, 1.9)
    body_h, cabin_h = rng.uniform(0.55, 0.8), rng.uniform(0.45, 0.65)
    clearance = rng.uniform(0.15, 0.3)
    cabin_len = length * rng.uniform(0.45, 0.65)
    cabin_off = rng.uniform(-0.25, 0.1) * length
    parts = [_box((length, width, body_h), (0, 0, clearance + body_h / 2)),
             _box((cabin_len, width * 0.9, cabin_h),
                  (cabin_off, 0, clearance + body_h + cabin_h / 2))]
    wheel_r = rng.uniform(0.28, 0.36)
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_cylinder(wheel_r, 0.2, (sx * length * 0.32, sy * width / 2, wheel_r),
                                   axis='y'))
    return parts


def _truck(rng):
    length, width = rng.uniform(5.5, 10.0), rng.uniform(2.1, 2.6)
    height = rng.uniform(2.4, 3.6)
    cab_len = rng.uniform(1.6, 2.4)
    clearance = rng.uniform(0.4, 0.7)
    cargo_len = length - cab_len
    parts = [_box((cargo_len, width, height - clearance),
                  (-cab_len / 2, 0, clearance + (height - clearance) / 2)),
             _box((cab_len, width * 0.95, height * rng.uniform(0.7, 0.95) - clearance),
                  (cargo_len / 2, 0, clearance + (height * 0.8 - clearance) / 2))]
    for x in np.linspace(-length / 2 + 0.8, length / 2 - 0.8, int(rng.integers(2, 4))):
        for sy in (-1, 1):
            parts.append(_cylinder(0.5, 0.3, (x, sy * width / 2, 0.5), axis='y'))
    return parts


def _person(rng, base=0.0, height=None):
    height = rng.uniform(1.5, 1.95) if height is None else height
    leg = 0.47 * height
    torso = 0.32 * height
    head = 0.12 * height
    width = rng.uniform(0.32, 0.45)
    parts = [_box((0.22, width, torso), (0, 0, base + leg + torso / 2)),
             _sphere(head / 2, (0, 0, base + leg + torso + head / 2 + 0.03))]
    stride = rng.uniform(-0.25, 0.25)
    for sy, sx in ((-1, stride), (1, -stride)):
        parts.append(_cylinder(0.07, leg, (sx / 2, sy * width / 4, base + leg / 2)))
    for sy in (-1, 1):
        parts.append(_cylinder(0.05, torso * 0.9,
                               (rng.uniform(-0.1, 0.1), sy * (width / 2 + 0.06),
                                base + leg + torso / 2)))
    return parts


def _cyclist(rng):
    wheel_r = rng.uniform(0.3, 0.36)
    base = rng.uniform(1.0, 1.2)
    parts = []
    for x in (-0.55, 0.55):
        parts.append(_cylinder(wheel_r, 0.05, (x, 0, wheel_r), axis='y'))
    parts.append(_box((1.1, 0.06, 0.08), (0, 0, wheel_r + 0.25)))
    parts.append(_box((0.06, 0.06, 0.5), (0.1, 0, wheel_r + 0.2)))
    rider = _person(rng, base=base - 0.85, height=rng.uniform(1.55, 1.9))
    for part in rider:
        part.rotate(o3d.geometry.get_rotation_matrix_from_xyz((0, rng.uniform(0.2, 0.45), 0)),
                    (0, 0, base))
    return parts + rider


def _pole(rng):
    height = rng.uniform(2.5, 7.0)
    radius = rng.uniform(0.05, 0.15)
    parts = [_cylinder(radius, height, (0, 0, height / 2))]
    if rng.random() < 0.5:
        size = rng.uniform(0.4, 0.9)
        parts.append(_box((0.05, size, size * rng.uniform(0.6, 1.2)),
                          (radius + 0.03, 0, height - size / 2)))
    return parts


def _tree(rng):
    trunk_h = rng.uniform(1.5, 3.5)
    radius = rng.uniform(0.1, 0.25)
    crown = rng.uniform(1.2, 2.8)
    parts = [_cylinder(radius, trunk_h, (0, 0, trunk_h / 2))]
    for _ in range(int(rng.integers(1, 4))):
        offset = rng.normal(0, crown * 0.25, 3)
        parts.append(_sphere(crown * rng.uniform(0.6, 1.0),
                             (offset[0], offset[1], trunk_h + crown * 0.8 + offset[2] * 0.3),
                             scale=(1.0, rng.uniform(0.8, 1.2), rng.uniform(0.7, 1.2))))
    return parts


def _clutter(rng):
    kind = rng.integers(0, 3)
    if kind == 0:  # wall / fence segment
        length, height = rng.uniform(3, 12), rng.uniform(0.8, 3.0)
        return [_box((length, rng.uniform(0.1, 0.4), height), (0, 0, height / 2))]
    if kind == 1:  # bush
        size = rng.uniform(0.5, 1.4)
        return [_sphere(size, (0, 0, size * 0.5),
                        scale=(rng.uniform(1, 2), rng.uniform(0.8, 1.5), rng.uniform(0.5, 0.9)))]
    size = rng.uniform(0.3, 1.6, 3)  # crate / box / cabinet
    return [_box(size, (0, 0, size[2] / 2))]


_BUILDERS = (_car, _truck, _person, _cyclist, _pole, _tree, _clutter)
# Footprint radius used to keep objects apart.
_RADIUS = (2.6, 5.0, 0.5, 1.0, 0.4, 2.0, 3.0)


# --- scenes ------------------------------------------------------------------------------

def _ground(rng, extent: float):
    """Gentle slope plus roughness, as a grid mesh over [-extent, extent]^2."""
    num = 81
    axis = np.linspace(-extent, extent, num)
    gx, gy = np.meshgrid(axis, axis, indexing='ij')
    slope = rng.normal(0, 0.015, 2)
    gz = slope[0] * gx + slope[1] * gy + rng.normal(0, 0.02, gx.shape)
    vertices = np.stack([gx, gy, gz], axis=-1).reshape(-1, 3)
    idx = np.arange(num * num).reshape(num, num)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    triangles = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                                np.stack([a, c, d], -1).reshape(-1, 3)])
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                     o3d.utility.Vector3iVector(triangles))
    return mesh, slope


def random_scene(seed: int, num_objects: Optional[int] = None, extent: float = 45.0,
                 class_weights: Optional[np.ndarray] = None) -> Scene:
    """
    Generate a street scene, deterministic for ``seed``.

    Objects are placed at random positions and headings (not overlapping,
    none within 2.5 m of the sensor at the origin), standing on the sloped
    ground. ``class_weights`` (7,) sets how often each class (including
    clutter) is drawn; default uniform.
    """
    rng = np.random.default_rng(seed)
    ground, slope = _ground(rng, extent + 10)
    scene = Scene(ground=ground)
    count = int(rng.integers(12, 30)) if num_objects is None else num_objects
    weights = np.ones(len(_BUILDERS)) if class_weights is None else np.asarray(class_weights)
    weights = weights / weights.sum()
    placed: list[tuple[float, float, float]] = []
    attempts = 0
    while len(scene.objects) < count and attempts < count * 30:
        attempts += 1
        class_id = int(rng.choice(len(_BUILDERS), p=weights))
        radius = _RADIUS[class_id]
        dist = rng.uniform(3.0, extent) ** 1.0
        bearing = rng.uniform(-math.pi, math.pi)
        x, y = dist * math.cos(bearing), dist * math.sin(bearing)
        if math.hypot(x, y) < 2.5 + radius or any(
                math.hypot(x - px, y - py) < radius + pr + 0.3 for px, py, pr in placed):
            continue
        yaw = float(rng.uniform(-math.pi, math.pi))
        mesh = _merge(_BUILDERS[class_id](rng))
        z = slope[0] * x + slope[1] * y - 0.02
        mesh.rotate(o3d.geometry.get_rotation_matrix_from_xyz((0, 0, yaw)), (0, 0, 0))
        mesh.translate((x, y, z))
        placed.append((x, y, radius))
        scene.objects.append(SceneObject(object_id=len(scene.objects), class_id=class_id,
                                         mesh=mesh, center=np.array([x, y, z]), yaw=yaw))
    return scene


def move_objects(scene: Scene, dt: float, seed: int) -> None:
    """Advance movable objects (cars, trucks, people, cyclists) along their heading."""
    rng = np.random.default_rng(seed)
    speeds = {0: 8.0, 1: 6.0, 2: 1.3, 3: 4.0}
    for obj in scene.objects:
        if obj.class_id in speeds:
            speed = speeds[obj.class_id] * rng.uniform(0.5, 1.0)
            step = speed * dt * np.array([math.cos(obj.yaw), math.sin(obj.yaw), 0.0])
            obj.mesh.translate(step)
            obj.center = obj.center + step


# --- scanning ----------------------------------------------------------------------------

def scan(scene: Scene, sensor: SensorPreset, seed: int, mount_height: float = 1.8,
         range_noise: float = 0.02, dropout: float = 0.03) -> Scan:
    """
    Cast one revolution of ``sensor`` mounted ``mount_height`` m above the origin.

    Returns points in the sensor frame with Gaussian range noise
    (``range_noise`` m sigma) and random dropout (``dropout`` fraction of
    returns lost), NaN where there is no return.
    """
    rng = np.random.default_rng(seed)
    raycaster = o3d.t.geometry.RaycastingScene()
    geometry_to_object = {}
    gid = raycaster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(scene.ground))
    geometry_to_object[gid] = (GROUND_ID, -1)
    for obj in scene.objects:
        gid = raycaster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(obj.mesh))
        geometry_to_object[gid] = (obj.object_id, obj.class_id)

    elevation = np.radians(np.asarray(sensor.vertical_deg, np.float64))[:, None]
    azimuth = -np.linspace(0, 2 * math.pi, sensor.columns, endpoint=False)[None, :] + math.pi
    directions = np.stack(np.broadcast_arrays(
        np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
        np.sin(elevation)), axis=-1).astype(np.float32)
    rays = np.empty(directions.shape[:2] + (6,), np.float32)
    rays[..., :3] = (0.0, 0.0, mount_height)
    rays[..., 3:] = directions
    hits = raycaster.cast_rays(o3d.core.Tensor(rays.reshape(-1, 6)))
    t_hit = hits['t_hit'].numpy().reshape(directions.shape[:2]).astype(np.float64)
    ids = hits['geometry_ids'].numpy().reshape(directions.shape[:2])

    t_noisy = t_hit + rng.normal(0, range_noise, t_hit.shape)
    valid = np.isfinite(t_hit) & (t_hit <= sensor.max_range) & (t_hit > 0.5)
    valid &= rng.random(t_hit.shape) >= dropout
    with np.errstate(invalid='ignore'):  # inf * 0 for rays that hit nothing
        xyz = (directions * t_noisy[..., None]).astype(np.float32)
    xyz[~valid] = np.nan

    lookup_obj = np.full(max(geometry_to_object) + 2, -1, np.int32)
    lookup_cls = np.full(max(geometry_to_object) + 2, -1, np.int32)
    for gid, (oid, cid) in geometry_to_object.items():
        lookup_obj[gid], lookup_cls[gid] = oid, cid
    safe_ids = np.where(ids == o3d.t.geometry.RaycastingScene.INVALID_ID,
                        len(lookup_obj) - 1, ids).astype(np.int64)
    object_id = np.where(valid, lookup_obj[safe_ids], -1).astype(np.int32)
    class_id = np.where(valid, lookup_cls[safe_ids], -1).astype(np.int32)
    intensity = np.where(valid, np.clip(60.0 / np.maximum(t_hit, 1.0) + rng.normal(
        0, 2, t_hit.shape), 0, 255), np.nan).astype(np.float32)
    ring = np.broadcast_to(np.arange(sensor.beams, dtype=np.uint16)[::-1, None],
                           t_hit.shape).copy()
    time = np.broadcast_to((np.arange(sensor.columns) / sensor.columns / sensor.rate_hz)
                           [None, :], t_hit.shape).astype(np.float32)
    return Scan(xyz=xyz, object_id=object_id, class_id=class_id, intensity=intensity,
                ring=ring, time=time, sensor=sensor)
