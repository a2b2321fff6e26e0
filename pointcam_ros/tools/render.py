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
from typing import Any, Mapping, Optional, Sequence

import numpy as np

#: Colour map of saliency in every picture (0 dark, 1 bright), fixed range [0, 1].
SALIENCY_CMAP = 'inferno'


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


#: What the marks of a snapshot mean (its legend and key).
LEGEND_NOTES = (
    'car 0.93: class and calibrated confidence',
    'unknown (car 0.41): confidence below min_confidence',
    '[sliver] [low] [raised] [fragment] [long] [tall]: a shape rule overrode it',
    '  (too thin / top too low / no wheels seen / too short / too long / too tall)',
    '[oversize] [plane]: background by a shape rule (too big / one flat face)',
    '[few]: a road user on fewer than min_label_points points, not named',
    '[novel]: a road user unlike what the model was trained on, not named',
)


def _overview(ax: Any, xyz: np.ndarray, saliency: np.ndarray, object_id: np.ndarray,
              labels: Sequence[tuple[np.ndarray, str]], extent: float, title: str,
              numbers_only: bool = False) -> Any:
    """
    Draw the top view into ``ax``; return the scatter that carries the colour scale.

    ``labels``: (centre (3,), text) per object; with ``numbers_only`` the text
    is a short number drawn on the object (the full text goes into a key
    beside the view, so labels never pile up).
    """
    near = (np.abs(xyz[:, 0]) <= extent) & (np.abs(xyz[:, 1]) <= extent)
    rest = near & (object_id < 0)
    ax.scatter(xyz[rest, 0], xyz[rest, 1], s=0.3, c='0.75', linewidths=0,
               label='ground and points of no object')
    obj = near & (object_id >= 0)
    order = np.argsort(saliency[obj])
    points = ax.scatter(xyz[obj, 0][order], xyz[obj, 1][order], s=3,
                        c=saliency[obj][order], cmap=SALIENCY_CMAP, vmin=0, vmax=1,
                        linewidths=0, label='object points, by saliency')
    for center, text in labels:
        if abs(center[0]) <= extent and abs(center[1]) <= extent:
            if numbers_only:
                ax.annotate(text, (center[0], center[1]), xytext=(0, 5),
                            textcoords='offset points', fontsize=7, color='navy',
                            ha='center', fontweight='bold' if text.startswith('#') else None)
                continue
            right = center[0] > 0.4 * extent  # keep text inside the axes
            ax.annotate(text, (center[0], center[1]), xytext=(-4 if right else 4, 6),
                        textcoords='offset points', fontsize=7, color='navy',
                        ha='right' if right else 'left')
    ax.plot([0], [0], marker='^', color='green', ms=8, linestyle='none',
            label='the sensor (x forward)')
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect('equal')
    ax.set_xlabel('x (m)')
    ax.set_ylabel('y (m)')
    ax.set_title(title or 'Grad-CAM saliency (top view)')
    return points


def _side_view(ax: Any, points: np.ndarray, saliency: np.ndarray, title: str,
               size: float = 6) -> None:
    """Draw ``points`` (n, 3) seen along their shortest horizontal axis, by saliency."""
    centered = points - points.mean(axis=0)
    if len(points) >= 2:
        _, _, vt = np.linalg.svd(centered[:, :2], full_matrices=False)
        horizontal = centered[:, :2] @ vt[0]
    else:
        horizontal = centered[:, 0]
    order = np.argsort(saliency)
    ax.scatter(horizontal[order], points[order, 2], c=saliency[order], cmap=SALIENCY_CMAP,
               vmin=0, vmax=1, s=size, linewidths=0)
    ax.set_aspect('equal', adjustable='datalim')
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def _closeup_3d(ax: Any, points: np.ndarray, saliency: np.ndarray, title: str) -> None:
    """
    Draw one object's ``points`` (n, 3) in 3D, coloured by saliency, seen from the sensor side.

    The view looks from the sensor (the origin) towards the object, raised 25
    degrees, so the faces the LiDAR saw are the ones shown; axes keep metres
    equal in x, y and z.
    """
    center = points.mean(axis=0)
    order = np.argsort(saliency)
    ax.scatter(points[order, 0], points[order, 1], points[order, 2], c=saliency[order],
               cmap=SALIENCY_CMAP, vmin=0, vmax=1, s=10, linewidths=0, depthshade=False)
    half = max(float(np.ptp(points, axis=0).max()) / 2, 0.5) * 1.1
    for axis, c in zip('xyz', center):
        getattr(ax, f'set_{axis}lim')(c - half, c + half)
    ax.set_box_aspect((1, 1, 1))
    azimuth = float(np.degrees(np.arctan2(center[1], center[0]))) + 180.0
    ax.view_init(elev=25, azim=azimuth)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=6, pad=0)
    from matplotlib.ticker import MaxNLocator
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(3))


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
    points = _overview(ax, xyz, saliency, object_id, labels, extent, title)
    fig.colorbar(points, ax=ax, fraction=0.035, label='saliency')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def largest_objects(object_id: np.ndarray, count: int,
                    demoted: Sequence[int] = ()) -> list[int]:
    """
    Ids of the ``count`` objects with the most points in ``object_id`` (M,), largest first.

    Objects in ``demoted`` (e.g. those labelled background) come after all others.
    """
    ids, sizes = np.unique(object_id[object_id >= 0], return_counts=True)
    late = np.isin(ids, np.asarray(demoted, dtype=ids.dtype))
    order = np.lexsort((ids, -sizes, late))  # not demoted first, then most points, then id
    return [int(i) for i in ids[order][:count]]


def render_snapshot(xyz: np.ndarray, saliency: np.ndarray, object_id: np.ndarray,
                    labels: Mapping[int, tuple[np.ndarray, str]], path: Path,
                    title: str = '', closeups: int = 6, extent: Optional[float] = None,
                    demote: Sequence[str] = ('background', 'unknown (background')
                    ) -> list[int]:
    """
    Overview of a scan plus close-ups of its largest objects, side by side.

    ``xyz`` (M, 3) float32, ``saliency`` (M,) in [0, 1], ``object_id`` (M,)
    int (-1 outside objects); ``labels`` maps an object id to its box centre
    (3,) and label text ("car 0.93", "unknown (car 0.41)"). Left: the top
    view, each object labelled, the close-up objects numbered. Right: the
    ``closeups`` objects with the most points (objects whose label starts
    with a ``demote`` prefix last), in 3D seen from the sensor's side, every
    point coloured by its saliency, titled "#k <label text>, n pts".
    ``extent`` (half-width of the top view, m) defaults to the labelled
    objects' extent: the 90th percentile of their distance along x or y plus
    a margin, within [10, 60]. On the top view each object carries a number
    only (close-up objects ``#k``); the key beside it lists every number with
    its label, nearest first, and a legend explains every mark. Returns the
    close-up ids.
    """
    plt = _pyplot()
    demoted = [i for i, (_, text) in labels.items() if text.startswith(tuple(demote))]
    chosen = largest_objects(object_id, closeups, demoted)
    if extent is None:
        far = [max(abs(c[0]), abs(c[1])) for c, _ in labels.values()]
        extent = float(np.clip(np.percentile(far, 90) + 4.0 if far else 15.0, 10.0, 60.0))
    names = snapshot_numbers(labels, chosen)
    marks = [(center, names[i]) for i, (center, _) in labels.items()]
    rows, columns = 3, 2
    fig = plt.figure(figsize=(19, 9))
    grid = fig.add_gridspec(rows, 3 + columns, width_ratios=[1.5, 1.5, 1.0, 1, 1])
    overview = fig.add_subplot(grid[:, :2])
    points = _overview(overview, xyz, saliency, object_id, marks, extent, title,
                       numbers_only=True)
    legend = overview.legend(loc='lower left', fontsize=7, framealpha=0.8)
    for handle in getattr(legend, 'legend_handles', None) or legend.legendHandles:
        if hasattr(handle, 'set_sizes'):  # the scatters' tiny dots, made visible
            handle.set_sizes([16])
    fig.colorbar(points, ax=overview, fraction=0.035, label='saliency (Grad-CAM)')
    _key(fig.add_subplot(grid[:, 2]), labels, names)
    for k in range(rows * columns):
        if k >= len(chosen):
            fig.add_subplot(grid[k // columns, 3 + k % columns]).axis('off')
            continue
        ax = fig.add_subplot(grid[k // columns, 3 + k % columns], projection='3d')
        oid = chosen[k]
        mask = object_id == oid
        text = labels.get(oid, (None, f'object {oid}'))[1]
        _closeup_3d(ax, xyz[mask], saliency[mask], f'#{k + 1} {text}, {int(mask.sum())} pts')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return chosen


def snapshot_numbers(labels: Mapping[int, tuple[np.ndarray, str]],
                     chosen: Sequence[int]) -> dict[int, str]:
    """
    Return the mark of every labelled object on the top view: ``#k`` for close-up k.

    The others are numbered on from ``len(chosen) + 1``, nearest to the sensor first.
    """
    names = {oid: f'#{k + 1}' for k, oid in enumerate(chosen) if oid in labels}
    rest = sorted((i for i in labels if i not in names),
                  key=lambda i: (float(np.hypot(*labels[i][0][:2])), i))
    names.update({oid: str(len(chosen) + 1 + k) for k, oid in enumerate(rest)})
    return names


def _key(ax: Any, labels: Mapping[int, tuple[np.ndarray, str]], names: Mapping[int, str],
         rows: int = 44) -> None:
    """List each object's mark and label text (close-ups first, then by distance)."""
    ax.axis('off')
    order = sorted(labels, key=lambda i: (not names[i].startswith('#'),
                                          int(names[i].lstrip('#'))))
    lines = [f'{names[i]:>4}  {labels[i][1]}' for i in order]
    if len(lines) > rows:
        lines = lines[:rows - 1] + [f'  ... and {len(lines) - rows + 1} more']
    ax.text(0.0, 1.0, '\n'.join(['objects (#k: close-up)'] + lines), va='top',
            family='monospace', fontsize=7, transform=ax.transAxes)
    ax.text(0.0, 0.0, '\n'.join(LEGEND_NOTES), va='bottom', fontsize=7,
            transform=ax.transAxes, color='0.25')


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
        _side_view(ax, points, saliency, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
