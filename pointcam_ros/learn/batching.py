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

"""Training and evaluation batches: resampling, normalisation, augmentation."""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.model.preprocess import normalize_object, normalized_channels, resample_indices
import torch


@dataclass(frozen=True)
class Augmentation:
    """
    Training-time augmentation of one object (recorded in the checkpoint).

    Per object: drop a random share of its points drawn from
    ``[0, point_dropout]``, rotate about the up axis (``rotate``), scale by a
    factor from ``scale``, add Gaussian jitter of ``jitter`` metres (clipped
    at 5 jitter sigmas), and with ``mirror`` negate y for half of the objects
    (in the sensor-view frame: the mirror image about the line of sight, a
    scene as physical as the original).
    """

    point_dropout: float = 0.2
    rotate: bool = True
    scale: tuple[float, float] = (0.9, 1.1)
    jitter: float = 0.01
    mirror: bool = False

    def __post_init__(self):
        """Reject values that cannot be meant; raise ValueError naming the bad one."""
        if not 0.0 <= self.point_dropout < 1.0:
            raise ValueError(f'point_dropout must be in [0, 1), got {self.point_dropout}')
        low, high = self.scale
        if not 0.0 < low <= high:
            raise ValueError(f'scale must be 0 < low <= high, got {self.scale}')
        if self.jitter < 0.0:
            raise ValueError(f'jitter must be >= 0 m, got {self.jitter}')


def make_batch(objects: Sequence[np.ndarray], num_points: int, normalization: str,
               rng: np.random.Generator, augment: Optional[Augmentation] = None
               ) -> torch.Tensor:
    """
    Resample, (augment) and normalise objects into a ``(B, C, num_points)`` float32 batch.

    ``objects``: ``(n_i, 3)`` float32 each, ``(n_i, 4)`` with each point's
    height above the ground for ``view_ground``. ``C`` is
    :func:`~pointcam_ros.model.preprocess.normalized_channels`. ``augment``:
    applied per object to x, y, z (see :class:`Augmentation`), or None for
    evaluation.
    """
    batch = np.empty((len(objects), normalized_channels(normalization), num_points), np.float32)
    for i, points in enumerate(objects):
        if augment is not None and augment.point_dropout > 0 and len(points) > 8:
            keep = rng.random(len(points)) >= rng.uniform(0, augment.point_dropout)
            points = points[keep] if keep.sum() >= 4 else points
        chosen = points[resample_indices(len(points), num_points, rng)]
        obj = normalize_object(chosen, normalization)
        if augment is not None:
            xyz = obj[:, :3]
            if augment.rotate:
                angle = rng.uniform(-np.pi, np.pi)
                c, s = np.cos(angle), np.sin(angle)
                xyz = xyz @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32).T
            xyz = xyz * np.float32(rng.uniform(*augment.scale))
            if augment.mirror and rng.random() < 0.5:
                xyz = xyz * np.array([1, -1, 1], np.float32)
            if augment.jitter > 0:
                limit = 5 * augment.jitter
                xyz = xyz + np.clip(rng.normal(0, augment.jitter, xyz.shape), -limit, limit)
            obj = np.concatenate([xyz, obj[:, 3:]], axis=1) if obj.shape[1] > 3 else xyz
        batch[i] = obj.T
    return torch.from_numpy(batch)
