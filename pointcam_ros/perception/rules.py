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
Shape rules: clusters that cannot be what the model says are not shown as road users.

A classifier answers with one of its classes for any cluster. On real scans
the clusters that are not objects (a piece of wall seen as one ring, a
facade, tree crowns merged with the bushes below them) come out as confident
road users. The rules below veto that, from the cluster's oriented box and
physical sizes only (no data set was used to set them):

- ``sliver`` (not classified: shown as unknown, with the model's guess):
  less than ``SLIVER_HEIGHT`` tall, whatever the class. Every class of
  interest stands at least ~1 m tall (a pedestrian >= 1 m, a car >= 1.3 m,
  poles and trees more); a cluster this flat is one or two rings of a
  spinning LiDAR (rings are 0.2 m apart at 35 m on an HDL-64E, 1.2 m on a
  VLP-16), a wall top or a kerb, and carries no shape to classify.
- ``oversize`` (shown as ``background``): a road-user class
  (``ROAD_USERS``) for a cluster larger than the largest road user: longer
  than ``ROAD_USER_MAX_LENGTH`` (an articulated bus, 18.75 m), wider than
  ``ROAD_USER_MAX_WIDTH`` (2.6 m for trucks and buses, plus 1.4 m for
  mirrors, mixed pixels and a person or a pole merged at its side: a
  simulated truck's cluster measured 3.8 m) or taller than
  ``ROAD_USER_MAX_HEIGHT`` (a double-decker bus is 4.4 m). Merged vegetation
  (7 x 5 x 4 m) and facades (tall and long) fail it; poles and trees may be
  tall and wide and are left to the model.
"""

from typing import Optional, Sequence

import numpy as np

#: Classes that move on the road; other classes (pole, tree, background) are not checked
#: against road-user sizes.
ROAD_USERS = frozenset({'car', 'van', 'truck', 'bus', 'tram', 'pedestrian', 'person',
                        'cyclist', 'bicycle', 'motorcycle', 'motorcyclist'})
#: m; flatter clusters are slivers (no class of interest is under ~1 m tall).
SLIVER_HEIGHT = 0.3
#: m; the largest road user (articulated bus 18.75 m long, 2.55 m wide; double-decker 4.4 m
#: tall), with the margins explained in the module docstring.
ROAD_USER_MAX_LENGTH = 19.0
ROAD_USER_MAX_WIDTH = 4.0
ROAD_USER_MAX_HEIGHT = 4.5
#: Share of a cluster's points (the middle of each box axis) the ``oversize`` limits measure:
#: a few mixed pixels or a stray branch do not make a car 4 m wide.
CORE_SHARE = 0.96
#: The class shown for an ``oversize`` cluster.
BACKGROUND = 'background'
#: Rule kinds: a sliver is not classified (unknown); an oversize one is background.
SLIVER, OVERSIZE = 'sliver', 'oversize'


def shape_rule(size: np.ndarray, class_name: str,
               core: Optional[np.ndarray] = None) -> tuple[str, str]:
    """
    Check a cluster's box ``size`` (3,) against the model's ``class_name`` for it.

    ``size``: length and width in either order, then height, in metres.
    ``core`` (3,), same order: the extents of the middle of the points (see
    ``pipeline.core_size``); the ``oversize`` limits are checked on it, so
    a few stray points (mixed pixels at a car's edge, a person brushing its
    side) do not turn a car into background. Default: ``size``. The
    ``sliver`` check uses ``size``: stray points only make a cluster taller.

    Returns ``(kind, reason)``: kind ``''`` when no rule fires, ``sliver``
    (the cluster is not classified: shown as unknown) or ``oversize`` (the
    cluster is shown as ``background``); reason says which size broke which limit.
    """
    length, width = float(max(size[0], size[1])), float(min(size[0], size[1]))
    height = float(size[2])
    dims = f'{length:.1f} x {width:.1f} x {height:.2f} m'
    if height < SLIVER_HEIGHT:
        return SLIVER, f'{dims}, under {SLIVER_HEIGHT} m tall (one or two rings)'
    if core is not None:
        length, width = float(max(core[0], core[1])), float(min(core[0], core[1]))
        height = float(core[2])
        dims = (f'{length:.1f} x {width:.1f} x {height:.2f} m (middle {100 * CORE_SHARE:.0f} % '
                'of the points)')
    if class_name in ROAD_USERS:
        if length > ROAD_USER_MAX_LENGTH:
            return OVERSIZE, f'{dims}, longer than any road user ({ROAD_USER_MAX_LENGTH} m)'
        if width > ROAD_USER_MAX_WIDTH:
            return OVERSIZE, f'{dims}, wider than any road user ({ROAD_USER_MAX_WIDTH} m)'
        if height > ROAD_USER_MAX_HEIGHT:
            return OVERSIZE, f'{dims}, taller than any road user ({ROAD_USER_MAX_HEIGHT} m)'
    return '', ''


def background_index(class_names: Sequence[str]) -> int:
    """Index of ``background`` in ``class_names``, or -1 if the model has no such class."""
    return list(class_names).index(BACKGROUND) if BACKGROUND in class_names else -1
