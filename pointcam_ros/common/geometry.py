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


def oriented_box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Box of ``(n, 3)`` points: center (3,), size (3,) and yaw from the xy principal axis."""
    yaw = 0.0
    if len(points) >= 3:
        xy = points[:, :2].astype(np.float64)
        eigval, eigvec = np.linalg.eigh(np.cov((xy - xy.mean(axis=0)).T))
        axis = eigvec[:, int(np.argmax(eigval))]
        yaw = float(np.arctan2(axis[1], axis[0]))
    center, size = box_at_yaw(points, yaw)
    return center, size, yaw
