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
Per-object preprocessing shared by training, evaluation and the pipeline.

Numpy only at import time (the data set builders load it without torch):
:func:`normalize_batch`, the torch twin of :func:`normalize_object` for a
batch of objects on the device, imports torch when it is called;
:func:`normalize_objects` is the numpy batch, which the per-object one calls.
"""

from typing import Optional, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the torch twin's annotations; torch loads only when it is called
    from torch import Tensor


#: How objects are normalised before the model (recorded in checkpoints).
NORMALIZATIONS = ('unit_sphere', 'center', 'center_ground', 'view', 'view_range',
                  'view_ground')

#: Modes that keep the sensor's viewing direction (no random yaw in training).
VIEW_NORMALIZATIONS = ('view', 'view_range', 'view_ground')

#: Modes that read each point's height above the local ground: objects ``(n, 4)``.
GROUND_NORMALIZATIONS = ('view_ground',)

#: Range (m) that the ``view_range`` channel divides by.
RANGE_SCALE = 50.0

#: Height (m) that the ``view_ground`` height channel divides by.
HEIGHT_SCALE = 2.0

#: Input channels each mode makes.
_CHANNELS = {'view_range': 4, 'view_ground': 5}


def normalized_channels(mode: str) -> int:
    """Return the model input channels a normalisation makes: 3, 4 (``view_range``) or 5."""
    if mode not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {mode!r}')
    return _CHANNELS.get(mode, 3)


def object_columns(points: np.ndarray, mode: str) -> None:
    """
    Check that one object's ``(N, 3|4)`` points carry what ``mode`` reads; ValueError if not.

    :data:`GROUND_NORMALIZATIONS` read a fourth column, each point's height
    above the local ground (``Segmentation.height``); the others read x, y, z.
    """
    needed = 4 if mode in GROUND_NORMALIZATIONS else 3
    if points.ndim != 2 or points.shape[1] not in (3, 4) or points.shape[1] < needed:
        raise ValueError(
            f'normalization {mode!r} needs objects of shape (n, {needed}) (x, y, z'
            + (', height above the ground' if needed == 4 else '')
            + f'), got {points.shape}; data sets written before the height channel have '
            'x, y, z only: rebuild them with pointcam_dataset')
    if needed == 4 and np.isnan(points[:, 3]).any():
        raise ValueError('an object has points without a height above the ground (NaN: '
                         'outside the region of interest); objects are cut from the points '
                         'the segmentation keeps, which all have one')


def with_heights(xyz: np.ndarray, height: np.ndarray) -> np.ndarray:
    """
    Object points ``(..., n, 4)`` float32 from ``(..., n, 3)`` xyz and ``(..., n)`` heights.

    The heights are above the ground; one object ``(n, 3)`` or a batch ``(K, n, 3)``.
    """
    xyz = np.asarray(xyz, np.float32)
    height = np.asarray(height, np.float32).reshape(xyz.shape[:-1] + (1,))
    return np.concatenate([xyz, height], axis=-1)


def heights_above_lowest(xyz: np.ndarray) -> np.ndarray:
    """
    Heights ``(n,)`` float32 of one object's ``(n, 3)`` points above its lowest point.

    What ``object`` mode feeds a model of :data:`GROUND_NORMALIZATIONS`: a
    cloud that is one object has no ground around it.
    """
    return (xyz[:, 2] - xyz[:, 2].min()) if len(xyz) else np.zeros(0, np.float32)


def normalize_object(points: np.ndarray, mode: str) -> np.ndarray:
    """
    Normalise one object's ``(N, 3|4)`` float32 points, sensor frame; returns ``(N, C)`` float32.

    ``unit_sphere``: centroid at the origin, scaled into the unit sphere (the
    ModelNet convention; loses absolute size). ``center``: centroid at the
    origin, metres kept. ``center_ground``: x, y centred on the centroid and
    z measured from the object's lowest point, metres kept (height above the
    ground is a strong cue for LiDAR objects). ``view``: centroid at the
    origin, metres kept, turned about the up axis so that +x points from the
    sensor to the centroid: the model sees which side of the object faces the
    sensor, and the scan rings run along y. ``view_range``: ``view`` plus a
    fourth channel, the centroid's horizontal range / :data:`RANGE_SCALE`,
    the same for every point (how far apart the rings are). ``view_ground``:
    ``view_range`` plus a fifth channel, each point's height above the local
    ground (the fourth input column, never NaN) / :data:`HEIGHT_SCALE`:
    a facade piece seen as two rings and a truck's side can look alike, but
    not at the same height above the road. ``C`` is :func:`normalized_channels`.
    Computed as a batch of one (:func:`normalize_objects`), so training's
    objects and the pipeline's batched samples are normalised by one code.
    """
    normalized_channels(mode)  # an unknown mode is named first
    points = np.asarray(points, dtype=np.float32)
    object_columns(points, mode)
    return normalize_objects(points[None], mode)[0]


def normalize_objects(points: np.ndarray, mode: str) -> np.ndarray:
    """
    :func:`normalize_object` of K objects of n points each at once: ``(K, n, C)`` float32.

    ``points`` (K, n, 3|4) float32. Each object's mean, minimum and maximum
    reduce its own rows only, so an object comes out with the same bits in a
    batch of any size. ``C`` is :func:`normalized_channels`.
    """
    channels = normalized_channels(mode)
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3:
        raise ValueError(f'objects must be (K, n, 3|4), got {points.shape}')
    object_columns(points.reshape(-1, points.shape[2]), mode)
    count, num = points.shape[:2]
    if num == 0:
        return np.zeros((count, 0, channels), np.float32)
    out = points[..., :3].copy()
    if mode == 'center_ground':
        out[..., :2] -= out[..., :2].mean(axis=1, keepdims=True)
        out[..., 2] -= out[..., 2].min(axis=1, keepdims=True)
        return out
    centroid = out.mean(axis=1)  # (K, 3)
    out -= centroid[:, None, :]
    if mode in VIEW_NORMALIZATIONS:
        planar = np.hypot(centroid[:, 0], centroid[:, 1])  # (K,) float32
        ahead = planar > 0
        safe = np.where(ahead, planar, np.float32(1.0))
        cos = np.where(ahead, centroid[:, 0] / safe, np.float32(1.0))[:, None]
        sin = np.where(ahead, centroid[:, 1] / safe, np.float32(0.0))[:, None]
        x, y = out[..., 0].copy(), out[..., 1].copy()
        out[..., 0] = cos * x + sin * y
        out[..., 1] = cos * y - sin * x
        parts = [out]
        if mode in ('view_range', 'view_ground'):
            scaled = (planar.astype(np.float64) / RANGE_SCALE).astype(np.float32)
            parts.append(np.broadcast_to(scaled[:, None, None], (count, num, 1)))
        if mode == 'view_ground':
            parts.append(points[..., 3:4] / np.float32(HEIGHT_SCALE))
        return np.concatenate(parts, axis=2) if len(parts) > 1 else out
    if mode == 'unit_sphere':
        radius = np.sqrt((out ** 2).sum(axis=2).max(axis=1))  # (K,) float32
        scale = np.where(radius > 0, radius, np.float32(1.0))
        out /= scale[:, None, None]
    return out


def normalize_batch(samples: 'Tensor', mode: str, height: Optional['Tensor'] = None
                    ) -> 'Tensor':
    """
    Torch twin of :func:`normalize_object` for a batch ``(K, n, 3)`` float32.

    ``height`` (K, n) float32: each sample's height above the ground, which
    :data:`GROUND_NORMALIZATIONS` need (ValueError without it). Returns a
    new ``(K, n, C)`` float32 tensor on the samples' device, ``C`` =
    :func:`normalized_channels`.
    """
    import torch
    if mode not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {mode!r}')
    if mode in GROUND_NORMALIZATIONS and (height is None or bool(torch.isnan(height).any())):
        raise ValueError(f"normalization {mode!r} needs each point's height above the ground "
                         '(a tensor without NaN)')
    if mode == 'center_ground':
        xy = samples[..., :2] - samples[..., :2].mean(dim=1, keepdim=True)
        z = samples[..., 2:] - samples[..., 2:].amin(dim=1, keepdim=True)
        return torch.cat([xy, z], dim=2)
    centroid = samples.mean(dim=1, keepdim=True)  # (K, 1, 3)
    out = samples - centroid
    if mode in VIEW_NORMALIZATIONS:
        planar = torch.hypot(centroid[..., 0], centroid[..., 1])  # (K, 1)
        ahead = planar > 0
        safe = torch.where(ahead, planar, torch.ones_like(planar))
        cos = torch.where(ahead, centroid[..., 0] / safe, torch.ones_like(planar))
        sin = torch.where(ahead, centroid[..., 1] / safe, torch.zeros_like(planar))
        x, y = out[..., 0], out[..., 1]
        turned = [cos * x + sin * y, cos * y - sin * x, out[..., 2]]
        if mode in ('view_range', 'view_ground'):
            turned.append((planar / RANGE_SCALE).expand_as(x))
        if mode == 'view_ground':
            turned.append(height / HEIGHT_SCALE)
        return torch.stack(turned, dim=2)
    if mode == 'unit_sphere':
        radius = torch.sqrt((out * out).sum(dim=2).amax(dim=1))[:, None, None]
        out = torch.where(radius > 0, out / radius.clamp_min(torch.finfo(out.dtype).tiny), out)
    return out


def resample_indices(num_points: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """
    Pick ``target`` indices into ``num_points`` points: ``(target,)`` int64.

    Without replacement when there are enough points, otherwise every point
    once plus random repeats (duplicates do not change a max-pool).
    """
    if num_points <= 0:
        raise ValueError('cannot resample an object with no points')
    if num_points >= target:
        return rng.choice(num_points, size=target, replace=False)
    extra = rng.integers(0, num_points, size=target - num_points)
    return np.concatenate([rng.permutation(num_points), extra])
