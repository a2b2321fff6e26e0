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

"""Per-object preprocessing shared by training, evaluation and the pipeline."""

import numpy as np


#: How objects are normalised before the model (recorded in checkpoints).
NORMALIZATIONS = ('unit_sphere', 'center', 'center_ground')


def normalize_object(points: np.ndarray, mode: str) -> np.ndarray:
    """
    Normalise one object's ``(N, 3)`` float32 points; returns a new array.

    ``unit_sphere``: centroid at the origin, scaled into the unit sphere (the
    ModelNet convention; loses absolute size). ``center``: centroid at the
    origin, metres kept. ``center_ground``: x, y centred on the centroid and
    z measured from the object's lowest point, metres kept (height above the
    ground is a strong cue for LiDAR objects).
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {mode!r}')
    out = np.asarray(points, dtype=np.float32).copy()
    if out.shape[0] == 0:
        return out
    if mode == 'center_ground':
        out[:, :2] -= out[:, :2].mean(axis=0)
        out[:, 2] -= out[:, 2].min()
        return out
    out -= out.mean(axis=0)
    if mode == 'unit_sphere':
        radius = float(np.sqrt((out ** 2).sum(axis=1).max()))
        if radius > 0:
            out /= radius
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
