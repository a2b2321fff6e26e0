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

"""PNG pictures of explained scans and objects (matplotlib, no display needed)."""

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def render_scan(xyz: np.ndarray, saliency: np.ndarray, object_id: np.ndarray,
                labels: Sequence[tuple[np.ndarray, str]], path: Path, title: str = '',
                extent: float = 40.0) -> None:
    """
    Top-down view of a scan: ground/background grey, object points coloured by saliency.

    ``xyz`` (M, 3) float32, ``saliency`` (M,) in [0, 1], ``object_id`` (M,)
    (-1 outside objects); ``labels`` (center (3,), text) drawn at each object.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 9))
    near = (np.abs(xyz[:, 0]) <= extent) & (np.abs(xyz[:, 1]) <= extent)
    rest = near & (object_id < 0)
    ax.scatter(xyz[rest, 0], xyz[rest, 1], s=0.3, c='0.75', linewidths=0)
    obj = near & (object_id >= 0)
    order = np.argsort(saliency[obj])
    points = ax.scatter(xyz[obj, 0][order], xyz[obj, 1][order], s=3,
                        c=saliency[obj][order], cmap='inferno', vmin=0, vmax=1, linewidths=0)
    for center, text in labels:
        if abs(center[0]) <= extent and abs(center[1]) <= extent:
            ax.annotate(text, (center[0], center[1]), xytext=(4, 6), textcoords='offset points',
                        fontsize=7, color='navy')
    ax.plot([0], [0], marker='^', color='green', ms=8)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect('equal')
    ax.set_xlabel('x (m)')
    ax.set_ylabel('y (m)')
    ax.set_title(title or 'Grad-CAM saliency (top view)')
    fig.colorbar(points, ax=ax, fraction=0.035, label='saliency')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render_objects(objects: Sequence[tuple[np.ndarray, np.ndarray, str]], path: Path,
                   columns: int = 4) -> None:
    """
    Side views (x-z) of objects coloured by saliency, one panel each.

    ``objects``: ``(points (n, 3), saliency (n,), title)``.
    """
    plt = _pyplot()
    rows = max(1, int(np.ceil(len(objects) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, (points, saliency, title) in zip(axes.flat, objects):
        ax.axis('on')
        centered = points - points.mean(axis=0)
        # Look along the object's shortest horizontal axis.
        _, _, vt = np.linalg.svd(centered[:, :2], full_matrices=False)
        horizontal = centered[:, :2] @ vt[0]
        order = np.argsort(saliency)
        ax.scatter(horizontal[order], points[order, 2], c=saliency[order], cmap='inferno',
                   vmin=0, vmax=1, s=6, linewidths=0)
        ax.set_aspect('equal')
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
