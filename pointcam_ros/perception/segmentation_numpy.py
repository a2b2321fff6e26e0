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
The numpy backend of the segmentation: the array namespace ``xp`` for numpy arrays.

:mod:`~pointcam_ros.perception.segmentation` is written once over ``xp``;
:func:`~pointcam_ros.perception.segmentation.array_namespace` hands it this
module for numpy arrays and :mod:`~pointcam_ros.perception.segmentation_torch`
for torch tensors. Both modules export the same names:

- array-API functions under their standard names, where numpy (1.24 and
  later) and torch spell them differently: :func:`astype`, :func:`asarray`,
  :func:`full`, :func:`zeros`, :func:`ones`, :func:`arange`, :func:`concat`,
  :func:`argsort` (``stable``), :func:`cumulative_sum`, :func:`device`,
  :func:`take` (rows by default); and
  those both spell alike (``abs``, ``where``, ``searchsorted``, ...),
  re-exported so that the shared code names one namespace only;
- the primitives that truly differ: :func:`connected_components` (scipy's
  csgraph here, label propagation in torch), :func:`scatter_min` and
  :func:`scatter_max` (``ufunc.at`` here, ``scatter_reduce`` in torch),
  :func:`order_statistics` (``np.partition`` here, a sort in torch),
  :func:`unique_inverse` (a stable argsort and a scatter here, faster than
  ``np.unique``; ``torch.unique`` in torch);
- a few helpers outside the array API standard: :func:`flatnonzero`,
  ``bincount`` (the same in both) and :func:`to_numpy` (the host copy that
  ``follow_ground`` and the ``range`` designs need).

numpy and scipy only: the lean runtime imports it without torch.
"""

from types import ModuleType
from typing import Optional, Sequence

import numpy as np
from numpy import (  # noqa: F401 (re-exported: the shared code calls them as xp.NAME)
    argmax, bincount, broadcast_to, clip, diff, float32, float64, floor, int32, int64, linalg,
    maximum, mean, minimum, searchsorted, sqrt, stack, where)
from pointcam_ros.perception.range_image import label_components
from pointcam_ros.perception.scatter import scatter_reduce

#: The library behind this namespace.
LIBRARY: ModuleType = np


def astype(x: np.ndarray, dtype: type, copy: bool = True) -> np.ndarray:
    """``x`` as ``dtype`` (a copy unless ``copy`` is False and it already is)."""
    return x.astype(dtype, copy=copy)


def asarray(values: object, dtype: Optional[type] = None,
            device: Optional[str] = None) -> np.ndarray:
    """``np.asarray``; ``device`` is ignored (always the host)."""
    return np.asarray(values, dtype)


def full(shape: tuple[int, ...], fill: float, dtype: type,
         device: Optional[str] = None) -> np.ndarray:
    """``np.full``; ``device`` is ignored."""
    return np.full(shape, fill, dtype)


def zeros(shape: tuple[int, ...], dtype: type, device: Optional[str] = None) -> np.ndarray:
    """``np.zeros``; ``device`` is ignored."""
    return np.zeros(shape, dtype)


def ones(shape: tuple[int, ...], dtype: type, device: Optional[str] = None) -> np.ndarray:
    """``np.ones``; ``device`` is ignored."""
    return np.ones(shape, dtype)


def arange(stop: int, dtype: type, device: Optional[str] = None) -> np.ndarray:
    """Return ``np.arange`` up to ``stop`` as ``dtype``; ``device`` is ignored."""
    return np.arange(stop, dtype=dtype)


def concat(arrays: Sequence[np.ndarray], axis: int = 0) -> np.ndarray:
    """``np.concatenate`` (the array API's ``concat``)."""
    return np.concatenate(arrays, axis=axis)


def argsort(x: np.ndarray, stable: bool = True) -> np.ndarray:
    """Return the indices ``(n,)`` int64 that sort ``(n,)`` ``x``; stable: timsort (runs)."""
    return np.argsort(x, kind='stable' if stable else None)


def cumulative_sum(x: np.ndarray) -> np.ndarray:
    """Return the running sum ``(n,)`` of ``(n,)`` ``x`` (bool counts as int64)."""
    return np.cumsum(x)


def take(x: np.ndarray, indices: np.ndarray, axis: int = 0) -> np.ndarray:
    """
    Return the slices of ``x`` at ``indices`` (int) along ``axis``: rows by default.

    ``np.take``: the same values as ``x[indices]``, several times faster for
    the rows of an ``(M, 3)`` array.
    """
    return np.take(x, indices, axis=axis)


def flatnonzero(x: np.ndarray) -> np.ndarray:
    """Return the indices ``(k,)`` int64 of the true (non-zero) elements of ``x``, flattened."""
    return np.flatnonzero(x)


def device(x: np.ndarray) -> str:
    """Where ``x`` lives: always ``'cpu'``."""
    return 'cpu'


def to_numpy(x: np.ndarray) -> np.ndarray:
    """``x`` itself (the torch backend copies to the host)."""
    return x


def scatter_min(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """
    ``target[index[i]] = min(target[index[i]], values[i])`` for every i; returns ``target``.

    ``target`` (K,), ``index`` (n,) int in ``[0, K)``, ``values`` (n,) of
    ``target``'s dtype. Updates ``target`` in place (``np.minimum.at``, or a
    sort on numpy before 1.25: :mod:`~pointcam_ros.perception.scatter`); the
    caller uses the returned array, as the torch backend returns a new one.
    """
    return scatter_reduce(np.minimum, target, index, values)


def scatter_max(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """:func:`scatter_min` with the maximum (``np.maximum.at``)."""
    return scatter_reduce(np.maximum, target, index, values)


def order_statistics(values: np.ndarray, fractions: tuple[float, ...]) -> list[float]:
    """
    Linear-interpolated quantiles of ``(n,)`` float32 ``values`` at ``fractions``, in float64.

    One partition for all of them (each order statistic is the same value as
    after a full sort, which the torch backend does).
    """
    positions = [fraction * (len(values) - 1) for fraction in fractions]
    below = [int(np.floor(position)) for position in positions]
    above = [min(b + 1, len(values) - 1) for b in below]
    part = np.partition(values, sorted(set(below + above)))
    out = []
    for position, b, a in zip(positions, below, above):
        lo, hi = float(part[b]), float(part[a])
        out.append(lo + (position - b) * (hi - lo))
    return out


def unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Return ``np.unique(keys, return_inverse=True)`` of ``(M,)`` keys: ``(V,)`` sorted, ``(M,)``.

    The inverse is int64. A stable argsort (timsort: fast on the runs of a
    scan's ring order) and a scatter instead of numpy's quicksort; the same
    arrays.
    """
    order = np.argsort(keys, kind='stable')
    ordered = keys[order]
    first = np.empty(len(keys), np.bool_)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(keys), np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def connected_components(num: int, source: np.ndarray,
                         target: np.ndarray) -> tuple[np.ndarray, int]:
    """
    Label the connected components of ``num`` nodes joined by the pairs ``source[i] - target[i]``.

    ``source``, ``target`` (E,) int64. Returns ``(num,)`` int64 component
    ids, numbered in the order of each component's smallest node, and their
    count. scipy's csgraph on a sparse graph.
    """
    component, count = label_components(num, source, target)
    # Canonical ids: components in the order of their smallest node (found in O(num)).
    first = np.full(count, num, np.int64)
    scatter_reduce(np.minimum, first, component, np.arange(num, dtype=np.int64))
    rank = np.empty(count, np.int64)
    rank[np.argsort(first, kind='stable')] = np.arange(count, dtype=np.int64)
    return rank[component], count


# Array-API names that shadow builtins: defined last, so that the annotations above see the
# builtins (no function here calls bool, abs, sum or any).
bool = np.bool_  # noqa: A001 (the array API's name)
abs = np.abs  # noqa: A001
sum = np.sum  # noqa: A001
any = np.any  # noqa: A001
