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
Ray casting: one revolution of a sensor preset over a scene, with the sensor's flaws.

Besides the geometry (open3d ``RaycastingScene``) a scan has what real
returns have: Gaussian range noise (the preset's sigma), random dropped
returns, dark surfaces that fade out with range, glass that returns nothing
or what is behind it, fences that rays pass through, and mixed pixels at
depth edges (a point between the edge and what is behind it).
"""

from dataclasses import dataclass
import math
from typing import Optional

import numpy as np
import open3d as o3d
from pointcam_ros.sim.scenes import GROUND_ID, Scene
from pointcam_ros.sim.sensors import SensorPreset
from pointcam_ros.sim.surfaces import DROP_PROBABILITY, PASS_PROBABILITY

#: Largest range (m) of a return from a surface of reflectivity r is
#: max_range * sqrt(r / WHITE): the 1/R^2 falloff of the returned power.
WHITE = 0.8
#: Share of depth-edge pixels that come back as mixed pixels, per mrad of divergence.
MIXED_PER_MRAD = 0.12
#: How often a ray may pass through glass or a fence before it gives up.
MAX_PASSES = 3


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


def beam_directions(sensor: SensorPreset) -> np.ndarray:
    """Return the unit direction of every beam ``(beams, columns, 3)`` float32, sensor frame."""
    elevation = np.radians(np.asarray(sensor.vertical_deg, np.float64))[:, None]
    azimuth = -np.linspace(0, 2 * math.pi, sensor.columns, endpoint=False)[None, :] + math.pi
    return np.stack(np.broadcast_arrays(
        np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
        np.sin(elevation)), axis=-1).astype(np.float32)


class _Caster:
    """The scene in a RaycastingScene plus per-triangle tables, indexed by geometry id."""

    def __init__(self, scene: Scene):
        self.raycaster = o3d.t.geometry.RaycastingScene()
        surfaces = [(GROUND_ID, -1, scene.ground)] + [
            (o.object_id, o.class_id, o.surface) for o in scene.objects]
        self.object_id, self.class_id, self.base = [], [], []
        reflectivity, material = [], []
        offset = 0
        for object_id, class_id, surface in surfaces:
            gid = self.raycaster.add_triangles(
                o3d.core.Tensor(surface.vertices.astype(np.float32)),
                o3d.core.Tensor(surface.triangles.astype(np.uint32)))
            if gid != len(self.base):
                raise RuntimeError('open3d numbered geometries out of order')
            self.object_id.append(object_id)
            self.class_id.append(class_id)
            self.base.append(offset)
            offset += len(surface.triangles)
            reflectivity.append(surface.reflectivity)
            material.append(surface.material)
        self.object_id = np.asarray(self.object_id + [-1], np.int32)
        self.class_id = np.asarray(self.class_id + [-1], np.int32)
        self.base = np.asarray(self.base + [offset], np.int64)
        self.reflectivity = np.concatenate(reflectivity + [np.zeros(1, np.float32)])
        self.material = np.concatenate(material + [np.zeros(1, np.uint8)])

    def cast(self, origins: np.ndarray, directions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return distance (inf: no hit), geometry index and triangle index of each ray."""
        rays = np.concatenate([origins, directions], axis=1).astype(np.float32)
        hits = self.raycaster.cast_rays(o3d.core.Tensor(rays))
        t_hit = hits['t_hit'].numpy().astype(np.float64)
        ids = hits['geometry_ids'].numpy().astype(np.int64)
        missed = ~np.isfinite(t_hit) | (ids == o3d.t.geometry.RaycastingScene.INVALID_ID)
        ids[missed] = len(self.base) - 1
        triangle = np.where(missed, len(self.reflectivity) - 1,
                            self.base[ids] + hits['primitive_ids'].numpy().astype(np.int64)
                            * ~missed)
        t_hit[missed] = np.inf
        return t_hit, ids, triangle


def scan(scene: Scene, sensor: SensorPreset, seed: int, mount_height: float = 1.8,
         range_noise: Optional[float] = None, dropout: float = 0.03,
         effects: bool = True) -> Scan:
    """
    Cast one revolution of ``sensor`` mounted ``mount_height`` m above the origin.

    Range noise is Gaussian with sigma ``range_noise`` m (default: the
    preset's); ``dropout`` is the share of returns lost at random. With
    ``effects`` (default) glass, fences, dark surfaces and mixed pixels act
    as described in the module; without, every ray returns its first hit
    (ideal geometry). NaN where there is no return.
    """
    rng = np.random.default_rng(seed)
    sigma = sensor.range_noise if range_noise is None else range_noise
    caster = _Caster(scene)
    directions = beam_directions(sensor)
    shape = directions.shape[:2]
    flat_dir = directions.reshape(-1, 3).astype(np.float64)
    origin = np.array([0.0, 0.0, mount_height])
    count = len(flat_dir)

    distance = np.full(count, np.inf)
    geometry = np.full(count, len(caster.base) - 1, np.int64)
    triangle = np.full(count, len(caster.reflectivity) - 1, np.int64)
    lost = np.zeros(count, bool)
    todo = np.arange(count)
    start = np.zeros(count)
    for attempt in range(MAX_PASSES if effects else 1):
        t_hit, ids, tri = caster.cast(origin + flat_dir[todo] * start[todo, None],
                                      flat_dir[todo])
        t_total = start[todo] + t_hit
        distance[todo], geometry[todo], triangle[todo] = t_total, ids, tri
        if not effects:
            break
        material = caster.material[tri]
        draw = rng.random(len(todo))
        hit = np.isfinite(t_hit)
        passes = hit & (draw < PASS_PROBABILITY[material])
        drops = hit & ~passes & (draw < PASS_PROBABILITY[material] + DROP_PROBABILITY[material])
        lost[todo[drops]] = True
        if attempt == MAX_PASSES - 1:
            lost[todo[passes]] = True
        start[todo[passes]] = t_total[passes] + 0.02
        todo = todo[passes]
        if not len(todo):
            break

    distance = distance.reshape(shape)
    geometry = geometry.reshape(shape)
    lost = lost.reshape(shape)
    reflect = caster.reflectivity[triangle].reshape(shape).astype(np.float64)
    valid = np.isfinite(distance) & (distance > 0.5) & ~lost
    if effects:  # weak returns fade out with range: dark paint drops first
        reach = sensor.max_range * np.sqrt(np.clip(reflect, 1e-3, None) / WHITE)
        with np.errstate(invalid='ignore'):
            fade = 1.0 / (1.0 + np.exp((distance - reach) / (0.08 * reach)))
        valid &= rng.random(shape) < fade
        distance, geometry = _mixed_pixels(distance, geometry, valid, sensor, rng)
    valid &= distance <= sensor.max_range
    valid &= rng.random(shape) >= dropout
    noisy = distance + rng.normal(0, sigma, shape) if sigma > 0 else distance
    with np.errstate(invalid='ignore'):  # inf * 0 for rays that hit nothing
        xyz = (directions * noisy[..., None]).astype(np.float32)
    xyz[~valid] = np.nan
    object_id = np.where(valid, caster.object_id[geometry], -1).astype(np.int32)
    class_id = np.where(valid, caster.class_id[geometry], -1).astype(np.int32)
    with np.errstate(divide='ignore', invalid='ignore'):
        power = 255 * reflect * np.sqrt(np.clip(8.0 / distance, 0, 1))
    intensity = np.where(valid, np.clip(power + rng.normal(0, 2, shape), 0, 255),
                         np.nan).astype(np.float32)
    ring = np.broadcast_to(np.arange(sensor.beams, dtype=np.uint16)[::-1, None], shape).copy()
    time = np.broadcast_to((np.arange(sensor.columns) / sensor.columns / sensor.rate_hz)
                           [None, :], shape).astype(np.float32)
    return Scan(xyz=xyz, object_id=object_id, class_id=class_id, intensity=intensity,
                ring=ring, time=time, sensor=sensor)


def _mixed_pixels(distance: np.ndarray, geometry: np.ndarray, valid: np.ndarray,
                  sensor: SensorPreset, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """
    Blend some foreground edge pixels with the return of their neighbour behind.

    A pixel whose left or right neighbour (same beam) is more than 0.5 m
    farther becomes, with probability ``MIXED_PER_MRAD * divergence_mrad``, a
    point a uniform fraction of the way to that neighbour; it keeps the label
    of whichever surface it lies closer to.
    """
    share = MIXED_PER_MRAD * sensor.divergence * 1000
    distance, geometry = distance.copy(), geometry.copy()
    for shift in (1, -1):
        behind = np.roll(distance, shift, axis=1)
        other = np.roll(geometry, shift, axis=1)
        with np.errstate(invalid='ignore'):  # inf - inf where neither ray hit anything
            gap = behind - distance
        edge = valid & np.roll(valid, shift, axis=1) & (np.nan_to_num(gap) > 0.5)
        edge &= rng.random(distance.shape) < share
        fraction = rng.random(distance.shape)
        blended = np.where(edge, distance + fraction * np.nan_to_num(gap), distance)
        distance = np.where(edge, blended, distance)
        geometry = np.where(edge & (fraction > 0.5), other, geometry)
        valid = valid & ~edge  # a pixel is blended once
    return distance, geometry
