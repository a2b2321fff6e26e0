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
The torch backend of the segmentation: the array namespace ``xp`` for tensors, on any device.

The same names as :mod:`~pointcam_ros.perception.segmentation_numpy` (see
there), so that :mod:`~pointcam_ros.perception.segmentation`, written once
over ``xp``, runs on tensors: ``segment_scene(points, config, tables=...)``
with ``points`` a CUDA tensor (``tables``: ``segmentation_tables(seed,
segmentation_torch, device)``, made once) keeps the points on the GPU and
gives the numpy path's clusters exactly (tested on the CPU on simulated
scans of every sensor). The primitives that truly differ from numpy:

- :func:`connected_components`: label propagation with pointer jumping
  (every component ends labelled with its smallest node), instead of
  scipy's csgraph on the host;
- :func:`scatter_min`, :func:`scatter_max`: ``scatter_reduce`` instead of
  ``ufunc.at``;
- :func:`order_statistics`: one sort instead of ``np.partition``;
- :func:`unique_inverse`: ``torch.unique`` instead of a stable argsort and
  a scatter.

Bound: as the numpy path, O(M) memory; time O(M log M) per propagation
round, and the rounds needed grow with the logarithm of a component's voxel
count in practice (pointer jumping), never beyond its voxel count. The
transfers are a few scalars that steer the control flow (the object count,
the occupied range bins, the extent of the voxel keys, one "changed?" flag
per two pointer jumps) and the ground-level table (``GROUND_SECTORS`` x
range bins float32, about 60 KB), which goes to the host and back once: the
outward walk over the range bins runs there, in numpy (``follow_ground``).
The ``range`` designs' angle criterion and merging run on the host in
numpy too (:mod:`~pointcam_ros.perception.range_image`): one copy of the
non-ground points each way.
"""

from types import ModuleType
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import (  # noqa: F401 (re-exported: the shared code calls them as xp.NAME)
    argmax, bincount, broadcast_to, clip, diff, float32, float64, floor, int32, int64, linalg,
    maximum, mean, minimum, searchsorted, sqrt, stack, Tensor, where)

#: The library behind this namespace.
LIBRARY: ModuleType = torch
Device = Union[torch.device, str, None]


def astype(x: Tensor, dtype: torch.dtype, copy: bool = True) -> Tensor:
    """``x`` as ``dtype`` (a copy unless ``copy`` is False and it already is)."""
    return x.to(dtype, copy=copy)


def asarray(values: object, dtype: Optional[torch.dtype] = None,
            device: Device = None) -> Tensor:
    """``torch.asarray`` on ``device`` (a numpy array is copied there)."""
    return torch.asarray(values, dtype=dtype, device=device)


def full(shape: tuple[int, ...], fill: float, dtype: torch.dtype, device: Device = None) -> Tensor:
    """``torch.full`` on ``device``."""
    return torch.full(shape, fill, dtype=dtype, device=device)


def zeros(shape: tuple[int, ...], dtype: torch.dtype, device: Device = None) -> Tensor:
    """``torch.zeros`` on ``device``."""
    return torch.zeros(shape, dtype=dtype, device=device)


def ones(shape: tuple[int, ...], dtype: torch.dtype, device: Device = None) -> Tensor:
    """``torch.ones`` on ``device``."""
    return torch.ones(shape, dtype=dtype, device=device)


def arange(stop: int, dtype: torch.dtype, device: Device = None) -> Tensor:
    """Return ``torch.arange`` up to ``stop`` as ``dtype`` on ``device``."""
    return torch.arange(stop, dtype=dtype, device=device)


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """``torch.cat``."""
    return torch.cat(list(tensors), dim=axis)


def argsort(x: Tensor, stable: bool = True) -> Tensor:
    """Return the indices ``(n,)`` int64 that sort ``(n,)`` ``x``."""
    return torch.argsort(x, stable=stable)


def cumulative_sum(x: Tensor) -> Tensor:
    """Return the running sum ``(n,)`` of ``(n,)`` ``x`` (bool counts as int64)."""
    return torch.cumsum(x, dim=0)


def take(x: Tensor, indices: Tensor, axis: int = 0) -> Tensor:
    """Return the slices of ``x`` at ``indices`` (int64) along ``axis`` (``index_select``)."""
    return torch.index_select(x, axis, indices)


def flatnonzero(x: Tensor) -> Tensor:
    """Return the indices ``(k,)`` int64 of the true (non-zero) elements of ``x``, flattened."""
    return torch.nonzero(x.reshape(-1)).reshape(-1)


def device(x: Tensor) -> torch.device:
    """Return the device of ``x``."""
    return x.device


def to_numpy(x: Tensor) -> np.ndarray:
    """Copy ``x`` to the host as a numpy array (no copy for a CPU tensor)."""
    return x.cpu().numpy()


def scatter_min(target: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """
    Return a new ``target`` with ``min(target[index[i]], values[i])`` at each ``index[i]``.

    ``target`` (K,), ``index`` (n,) int64 in ``[0, K)``, ``values`` (n,) of
    ``target``'s dtype. ``target`` itself is not changed.
    """
    return target.scatter_reduce(0, index, values, reduce='amin')


def scatter_max(target: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """:func:`scatter_min` with the maximum."""
    return target.scatter_reduce(0, index, values, reduce='amax')


def order_statistics(values: Tensor, fractions: tuple[float, ...]) -> list[float]:
    """
    Linear-interpolated quantiles of ``(n,)`` float32 ``values`` at ``fractions``, in float64.

    One sort, one copy of the two neighbours of each quantile to the host;
    the same float64 arithmetic as the numpy backend, so the same values.
    """
    positions = [fraction * (len(values) - 1) for fraction in fractions]
    below = [int(position // 1) for position in positions]
    above = [min(b + 1, len(values) - 1) for b in below]
    ordered = torch.sort(values).values
    picked = ordered[torch.tensor(below + above, device=values.device)].tolist()
    out = []
    for k, position in enumerate(positions):
        lo, hi = picked[k], picked[len(positions) + k]
        out.append(lo + (position - below[k]) * (hi - lo))
    return out


def unique_inverse(keys: Tensor) -> tuple[Tensor, Tensor]:
    """Return the sorted distinct ``(V,)`` of ``(M,)`` ``keys`` and the ``(M,)`` int64 inverse."""
    return torch.unique(keys, sorted=True, return_inverse=True)


def connected_components(num: int, source: Tensor, target: Tensor) -> tuple[Tensor, int]:
    """
    Label the connected components of ``num`` nodes joined by the pairs ``source[i] - target[i]``.

    ``source``, ``target`` (E,) int64 on one device. Returns ``(num,)``
    int64 component ids, numbered in the order of each component's smallest
    node (as the numpy backend), and their count. Hooking: every root takes
    the smallest root it has an edge to; then pointer jumping until every
    node points at its root; repeated until no edge joins two roots.
    """
    parent = torch.arange(num, dtype=torch.int64, device=source.device)
    while True:
        a, b = parent[source], parent[target]
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        hooked = parent.scatter_reduce(0, hi, lo, reduce='amin', include_self=True)
        while True:  # two jumps per check: one host sync less per pair
            jumped = hooked[hooked]
            jumped = jumped[jumped]
            if torch.equal(jumped, hooked):
                break
            hooked = jumped
        if torch.equal(hooked, parent):
            break
        parent = hooked
    # Every node points at its component's smallest node: rank those.
    roots, component = torch.unique(parent, sorted=True, return_inverse=True)
    return component, len(roots)


# Array-API names that shadow builtins: defined last, so that the annotations above see the
# builtins (no function here calls bool, abs, sum or any).
bool = torch.bool  # noqa: A001 (the array API's name)
abs = torch.abs  # noqa: A001
sum = torch.sum  # noqa: A001
any = torch.any  # noqa: A001
