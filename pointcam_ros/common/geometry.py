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

"""Box geometry shared by the pipeline and the simulator (the one home of the box math)."""

from typing import Optional

import numpy as np


def box_at_yaw(points: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Tightest box of ``(n, 3)`` points whose length axis is at ``yaw`` (rad) about z.

    Returns center (3,) and size (3,) (length, width, height) float64.
    """
    xy = points[:, :2].astype(np.float64)
    mean = xy.mean(axis=0)
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[c, -s], [s, c]])
    local = (xy - mean) @ rotation
    lo, hi = local.min(axis=0), local.max(axis=0)
    center_xy = mean + rotation @ ((lo + hi) / 2)
    z_lo, z_hi = float(points[:, 2].min()), float(points[:, 2].max())
    return (np.array([center_xy[0], center_xy[1], (z_lo + z_hi) / 2]),
            np.array([hi[0] - lo[0], hi[1] - lo[1], z_hi - z_lo]))


#: Candidate box yaws besides the principal axis: 1 degree steps over a quarter turn
#: (a rectangle repeats every 90 degrees). Both backends read this one table.
BOX_YAWS = np.deg2rad(np.arange(90, dtype=np.float64))
BOX_COS, BOX_SIN = np.cos(BOX_YAWS), np.sin(BOX_YAWS)
#: Candidate yaws evaluated per chunk (bounds the temporary to n x 32 x 2 float64).
_YAW_CHUNK = 32


def principal_yaw(xy: np.ndarray) -> float:
    """Yaw (rad) of the principal axis of ``(n, 2)`` float64 points (closed form, 2x2 PCA)."""
    d = xy - xy.mean(axis=0)
    sxx, sxy, syy = (d[:, 0] * d[:, 0]).sum(), (d[:, 0] * d[:, 1]).sum(), (d[:, 1] * d[:, 1]).sum()
    return float(0.5 * np.arctan2(2.0 * sxy, sxx - syy))


def box_yaw(xy: np.ndarray, outline: Optional[np.ndarray] = None) -> float:
    """
    Yaw (rad) of the smallest-area box around ``(n, 2)`` float64 points, along its long side.

    Candidates: the principal axis (exact for a full rectangle) and every
    :data:`BOX_YAWS` step. A LiDAR sees a car as an L (two sides) or an I
    (one side); the principal axis of an L runs diagonally and makes a
    5 x 4.4 m box of a 4.5 x 1.8 m car, while the smallest-area box follows
    its sides. Work: ``n x 91`` projections, in chunks. ``outline`` (h, 2)
    float64, when given, holds the points projected instead: any subset of
    ``xy`` that contains its convex hull's vertices gives the same box (an
    extent is reached at a hull vertex), at ``h x 91`` (a facade of 7,000
    points has a few dozen vertices). The principal axis uses all of ``xy``.
    """
    principal = principal_yaw(xy)
    if outline is not None:
        xy = outline
    yaws = np.concatenate([[principal], BOX_YAWS])
    cos = np.concatenate([[np.cos(principal)], BOX_COS])
    sin = np.concatenate([[np.sin(principal)], BOX_SIN])
    length = np.empty(len(yaws))
    width = np.empty(len(yaws))
    for lo in range(0, len(yaws), _YAW_CHUNK):
        c, s = cos[lo:lo + _YAW_CHUNK], sin[lo:lo + _YAW_CHUNK]
        along = xy[:, :1] * c + xy[:, 1:] * s  # (n, chunk); the torch twin's formula
        across = xy[:, 1:] * c - xy[:, :1] * s
        length[lo:lo + _YAW_CHUNK] = along.max(axis=0) - along.min(axis=0)
        width[lo:lo + _YAW_CHUNK] = across.max(axis=0) - across.min(axis=0)
    best = int(np.argmin(length * width))
    yaw = float(yaws[best])
    return yaw + np.pi / 2 if width[best] > length[best] else yaw


def oriented_box(points: np.ndarray, outline: Optional[np.ndarray] = None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """
    Box of ``(n, 3)`` points: center (3,), size (3,) (length >= width, height), yaw.

    The yaw is :func:`box_yaw`'s (0 for fewer than 3 points), ``outline``
    passed on.
    """
    yaw = 0.0
    if len(points) >= 3:
        yaw = box_yaw(points[:, :2].astype(np.float64), outline)
    center, size = box_at_yaw(points, yaw)
    return center, size, yaw
