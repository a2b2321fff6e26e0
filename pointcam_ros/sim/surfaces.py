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
Triangle surfaces with a material per triangle: the simulator's building blocks.

A :class:`Surface` is plain numpy (vertices, triangles, and per triangle a
reflectivity in [0, 1] and a :data:`MATERIALS` index), so objects are cheap
to build, move and merge; open3d only sees them when a scan is cast.
Vegetation is porous because it is built from many small "leaf" triangles
scattered through the crown's volume (:func:`foliage`): rays enter, hit
leaves at any depth, and some pass through.
"""

from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np
import open3d as o3d

#: Materials: (name, share of rays passing through to what is behind, share dropped).
#: ``glass``: car and bus windows (specular: mostly nothing or what is behind);
#: ``window``: facade glass in front of a dark room (mostly no return);
#: ``mesh``: chain-link fences and nets (most rays pass through the wires).
MATERIALS = (('solid', 0.0, 0.0), ('glass', 0.5, 0.35), ('window', 0.05, 0.85),
             ('mesh', 0.65, 0.05))
SOLID, GLASS, WINDOW, MESH = range(4)
PASS_PROBABILITY = np.array([m[1] for m in MATERIALS])
DROP_PROBABILITY = np.array([m[2] for m in MATERIALS])


@dataclass
class Surface:
    """
    Triangles with per-triangle material.

    ``vertices`` (V, 3) float64, ``triangles`` (T, 3) int32 indices into
    ``vertices``, ``reflectivity`` (T,) float32 in [0, 1] (white paint 0.8,
    black paint 0.05), ``material`` (T,) uint8 index into :data:`MATERIALS`.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    reflectivity: np.ndarray
    material: np.ndarray

    def moved(self, yaw: float, offset: Sequence[float]) -> 'Surface':
        """Return a copy rotated by ``yaw`` (rad) about z, then shifted by ``offset`` (3,)."""
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return Surface(self.vertices @ rot.T + np.asarray(offset, np.float64), self.triangles,
                       self.reflectivity, self.material)

    def rotated(self, rotation: np.ndarray, pivot: Sequence[float]) -> 'Surface':
        """Return a copy rotated by the (3, 3) matrix ``rotation`` about ``pivot`` (3,)."""
        pivot = np.asarray(pivot, np.float64)
        return Surface((self.vertices - pivot) @ np.asarray(rotation).T + pivot,
                       self.triangles, self.reflectivity, self.material)


def merge(parts: Sequence[Surface]) -> Surface:
    """Concatenate surfaces into one."""
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    return Surface(np.concatenate([p.vertices for p in parts]),
                   np.concatenate([p.triangles + o for p, o in zip(parts, offsets)]).astype(
                       np.int32),
                   np.concatenate([p.reflectivity for p in parts]).astype(np.float32),
                   np.concatenate([p.material for p in parts]).astype(np.uint8))


def _from_o3d(mesh: o3d.geometry.TriangleMesh, reflectivity: float,
              material: int) -> Surface:
    triangles = np.asarray(mesh.triangles, np.int32)
    return Surface(np.asarray(mesh.vertices, np.float64).copy(), triangles,
                   np.full(len(triangles), reflectivity, np.float32),
                   np.full(len(triangles), material, np.uint8))


def box(size: Sequence[float], center: Sequence[float], reflectivity: float = 0.4,
        material: int = SOLID) -> Surface:
    """Axis-aligned box of ``size`` (3,) m centred on ``center`` (3,)."""
    mesh = o3d.geometry.TriangleMesh.create_box(*[max(float(v), 1e-3) for v in size])
    surface = _from_o3d(mesh, reflectivity, material)
    surface.vertices += np.asarray(center, float) - np.asarray(size, float) / 2
    return surface


def limb(start: Sequence[float], end: Sequence[float], radius: float,
         reflectivity: float = 0.4, material: int = SOLID, resolution: int = 8) -> Surface:
    """Cylinder of ``radius`` from point ``start`` (3,) to point ``end`` (3,)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    axis = end - start
    length = float(np.linalg.norm(axis))
    mesh = o3d.geometry.TriangleMesh.create_cylinder(radius, max(length, 1e-3),
                                                     resolution=resolution, split=1)
    surface = _from_o3d(mesh, reflectivity, material)
    z = axis / max(length, 1e-9)
    helper = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    surface.vertices = surface.vertices @ np.stack([x, y, z]) + (start + end) / 2
    return surface


def rounded_outline(length: float, width: float, z: float, x: float = 0.0,
                    exponent: float = 4.0, count: int = 32) -> np.ndarray:
    """
    Return a closed horizontal outline ``(count, 3)`` float64: a superellipse at ``z``.

    ``length`` along x (centred on ``x``) and ``width`` along y (centred on
    0), m; ``exponent`` 2 gives an ellipse, larger values a rectangle with
    rounded corners (4: a car's plan view). Vertices run counter-clockwise
    seen from +z, from +x; the first one on the x axis.
    """
    t = np.linspace(0.0, 2.0 * math.pi, count, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    power = 2.0 / exponent
    return np.stack([x + length / 2 * np.sign(c) * np.abs(c) ** power,
                     width / 2 * np.sign(s) * np.abs(s) ** power,
                     np.full(count, float(z))], axis=1)


def loft(rings: Sequence[np.ndarray], reflectivity: float = 0.4, material: int = SOLID,
         cap_bottom: bool = True, cap_top: bool = True) -> Surface:
    """
    Build a skin through ``rings`` (each ``(K, 3)``, the same K, bottom to top).

    Rings run counter-clockwise seen from +z (as :func:`rounded_outline`
    gives them). Neighbouring rings are joined by quads (two triangles
    each); ``cap_bottom`` and ``cap_top`` close the first and last ring
    with a fan from the mean of its vertices (with both, the skin is
    closed). Every triangle faces outwards and has ``reflectivity`` and
    ``material``; triangles come ring by ring, then the bottom fan, then
    the top fan (K each). Callers change the arrays of the returned
    :class:`Surface` to paint parts.
    """
    if len(rings) < 2 or any(np.shape(r) != (len(rings[0]), 3) for r in rings):
        raise ValueError('loft needs two or more rings of the same (K, 3) shape')
    count = len(rings[0])
    around = np.arange(count)
    triangles = []
    for i in range(len(rings) - 1):
        a, b = i * count + around, i * count + (around + 1) % count
        triangles += [np.stack([a, b, b + count], axis=1), np.stack([a, b + count, a + count],
                                                                    axis=1)]
    vertices = [np.asarray(r, np.float64) for r in rings]
    for which, on, outward in ((0, cap_bottom, False), (len(rings) - 1, cap_top, True)):
        if on:  # a fan wound to face down (bottom) or up (top)
            centre = sum(len(v) for v in vertices)
            vertices.append(vertices[which].mean(axis=0, keepdims=True))
            a, b = which * count + around, which * count + (around + 1) % count
            triangles.append(np.stack([np.full(count, centre), *((a, b) if outward else (b, a))],
                                      axis=1))
    triangles = np.concatenate(triangles).astype(np.int32)
    return Surface(np.concatenate(vertices), triangles,
                   np.full(len(triangles), reflectivity, np.float32),
                   np.full(len(triangles), material, np.uint8))


def ellipsoid(radii: Sequence[float], center: Sequence[float], reflectivity: float = 0.4,
              material: int = SOLID, resolution: int = 8) -> Surface:
    """Build a closed ellipsoid with semi-axes ``radii`` (3,) m."""
    mesh = o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=resolution)
    surface = _from_o3d(mesh, reflectivity, material)
    surface.vertices = surface.vertices * np.asarray(radii, float) + np.asarray(center, float)
    return surface


def foliage(rng: np.random.Generator, radii: Sequence[float], center: Sequence[float],
            density: float, leaf_size: float = 0.22, shape: str = 'ellipsoid',
            reflectivity: tuple[float, float] = (0.15, 0.45)) -> Surface:
    """
    Build porous vegetation: ``density`` leaf triangles per m^3 scattered in a volume.

    ``shape`` 'ellipsoid' (crowns, bushes), 'box' (hedges; ``radii`` are half
    sizes) or 'cone' (conifers; apex at the top). Each leaf is a random
    triangle with edges about ``leaf_size`` m (a clump of real leaves); a
    denser volume stops rays sooner (test_simulator measures the depth).
    """
    radii = np.asarray(radii, float)
    volume = 8 * np.prod(radii) * {'ellipsoid': math.pi / 6, 'box': 1.0, 'cone': math.pi / 12}[
        shape]
    count = max(8, int(density * volume))
    if shape == 'box':
        unit = rng.uniform(-1, 1, (count, 3))
    else:
        direction = rng.normal(size=(count, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        unit = direction * rng.random((count, 1)) ** (1 / 3)
        if shape == 'cone':  # squeeze the horizontal extent linearly towards the apex
            unit[:, :2] *= (1 - unit[:, 2:]) / 2
    centres = unit * radii + np.asarray(center, float)
    corners = rng.normal(0, leaf_size / 2, (count, 3, 3))
    vertices = (centres[:, None, :] + corners).reshape(-1, 3)
    triangles = np.arange(3 * count, dtype=np.int32).reshape(-1, 3)
    return Surface(vertices, triangles, rng.uniform(*reflectivity, count).astype(np.float32),
                   np.zeros(count, np.uint8))
