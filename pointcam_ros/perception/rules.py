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
physical sizes only (no data set was used to set them), except ``few``,
which rests on how often small labels were right on real scans:

- ``sliver`` (not classified: shown as unknown, with the model's guess):
  less than ``SLIVER_HEIGHT`` tall, whatever class of interest the model
  names. Every class of interest stands at least ~1 m tall (a pedestrian
  >= 1 m, a car >= 1.3 m, poles and trees more); a cluster this flat is one
  or two rings of a spinning LiDAR (rings are 0.2 m apart at 35 m on an
  HDL-64E, 1.2 m on a VLP-16), a wall top or a kerb, and carries no shape
  to classify. A sliver the model calls ``background`` agrees with the rule
  and is shown as background (at ``min_confidence``, as any label).
- ``oversize`` (shown as ``background``): a road-user class
  (``ROAD_USERS``) for a cluster larger than the largest road user: longer
  than ``ROAD_USER_MAX_LENGTH`` (an articulated bus, 18.75 m), wider than
  ``ROAD_USER_MAX_WIDTH`` (2.6 m for trucks and buses, plus 1.4 m for
  mirrors, mixed pixels and a person or a pole merged at its side: a
  simulated truck's cluster measured 3.8 m) or taller than
  ``ROAD_USER_MAX_HEIGHT`` (a double-decker bus is 4.4 m). Merged vegetation
  (7 x 5 x 4 m) and facades (tall and long) fail it; poles and trees may be
  tall and wide and are left to the model.
- ``plane`` (shown as ``background``): a large-vehicle class
  (``PLANE_CLASSES``: truck, bus, tram) for a cluster whose points lie
  within ``PLANE_THICKNESS`` of one vertical plane (normal within ~6
  degrees of horizontal, ``PLANE_NORMAL_Z``) narrower than any side or rear
  of a truck (``TRUCK_FACE``). A truck or a bus seen from any side shows its
  cab (curved, glazed, wheels set in: not one plane) or a flat box side or
  rear at least 2.3 m wide; a narrower flat piece is a wall or fence
  segment, a facade fragment between windows or above an occluder, a sign
  or a hoarding, built plumb and flat: its returns lie within the range
  noise (about 2 cm for an HDL-64E, 3 cm for a VLP-16, up to 5 cm for an
  OS1) of a vertical plane. Its height is not used: at range a flat face
  spans only two or three rings (1.3 degrees apart on an HDL-32E: 1 m at
  42 m), and traffic in front hides the lower part of a truck's box.
  Real scans show such pieces as confident "trucks" (docs/real_scans.md);
  the limits come from sensor noise and vehicle sizes, not from those
  scans. Cars are left out on purpose: a real car's body is never flat
  (curved panels, set-back windows, glass that lets beams into the cabin),
  but the simulator's data sets build cars as flat-sided boxes, so the
  shipped model (trained on them) calls a car's flat side "car" and the
  rule would cost simulated cars. The simulator can build curved cars
  (``sim.objects.car(..., body='curved')``); add ``car`` once the data sets
  and a model use them.
- ``low`` (not classified: shown as unknown, with the model's guess): a
  class whose top is never low (``LOWEST_TOP``: a truck, bus or tram, at
  least 2 m) for a cluster whose top cannot reach it. The true top lies
  between the highest return and the next beam up, which passed over the
  object (:func:`cluster_top`): where that beam crosses the object is
  below 2 m, no truck is there. Occlusion hides the lower part of an
  object, never its top, so this means the wrong class, not a partial
  view: a 1 m hedge is not a truck (nor, for all the rule knows, anything
  else the model could name). Not judged where nothing bounds the top: a
  cluster reaching the scan's top beam (:func:`view_limits`; an HDL-64E's is
  +2 degrees, 2.1 m high at 10 m) or the ``max_z`` cut, or on one beam;
  on a sparse sensor at range the bound rises (a VLP-16's beams are 2
  degrees apart: 2 m at 57 m), so a far truck is left to the model. Cars
  are not checked: a car's windows return little (real glass and the
  simulator's), so its top is often its waistline, 0.7-0.9 m; nor are
  people: a person's legs, cut off as a piece of their own, are rightly
  called pedestrian.
- ``raised`` (not classified: shown as unknown, with the model's guess): a
  class whose lowest parts are always near the ground (``HIGHEST_BOTTOM``:
  a truck, bus or tram) for a cluster with nothing below 0.8 m above the
  ground (its lowest return once strays are set aside,
  :func:`cluster_bottom`), where a beam crossed below it between 0.3 and
  0.8 m (:func:`judged_bottom`: on a sparse sensor at range the next beam
  down may meet the ground first, and then nothing is known below the
  lowest return). Seen whole, such a vehicle returns from its wheels, its bumpers and its side
  and rear guards (in the EU the guards are at most 0.55 m up), all below
  0.6 m. With none of them seen, the cluster either floats (a tree crown,
  a sign) or something nearer hides its lower part. What the sensor still
  sees is then a flat band 1-3 m tall, and facades over parked cars,
  hedges, hoardings and crowns look the same. On real streets nearly
  every such band is one of those (docs/real_scans.md): too little to name
  a truck. Cars and people are not checked. A car's roof and windows over
  a car in front are a car's, and so is a person's upper body over a
  parked car.
- ``fragment`` (not classified: shown as unknown, with the model's guess):
  a vehicle class (``FRAGMENT_LENGTH``) for a cluster whose box is shorter
  than that vehicle's narrowest face seen whole: 1.0 m for a car (rears
  and fronts are 1.6-1.9 m wide; 60 % of that, for edge returns lost on
  dark or curved paint and a partial view), ``TRUCK_FACE`` for a truck,
  bus or tram. Such a piece is part of a vehicle at best (seen through a
  gap, above another car) and as often a bush, a sign or a trunk: too
  little to name.

- ``long`` (not classified: shown as unknown, with the model's guess): a
  car or van (``CLASS_MAX_LENGTH``) whose core is longer than 7 m, the
  longest car-class vehicles (long-wheelbase vans, pickups with long beds)
  are 6-7 m. Such a cluster is two parked cars run together, a car and
  what touches it, or a fence: not one car. (People touching a car are
  split off first: :mod:`pointcam_ros.perception.split`.)
- ``tall`` (not classified: shown as unknown, with the model's guess): a
  person class (``CLASS_MAX_HEIGHT``) whose core is taller than 2.3 m. The
  tallest people are about 2.1 m, and a rider on a bicycle is shorter than
  that; a taller "person" is a person and what stands above them (a sign, a
  branch, an awning), or a pole or a trunk.
- ``few`` (not classified: shown as unknown, with the model's guess;
  :func:`points_rule`, in scene mode): a road-user class for a cluster of
  fewer than ``min_label_points`` points, when no shape rule fired. Not a
  shape: how often a label this small is right. A real street returns many
  small clusters for each far or hidden road user (pieces of vegetation,
  posts, sign backs, facade edges, mixed pixels), and with a few returns
  the model cannot tell them apart: on the real development scans about
  one road-user label in nine on a cluster under 30 points named a road
  user (docs/real_scans.md). The simulator's streets hold far more small
  road users for their clutter, and there such labels are mostly right,
  so the rule costs simulated far road users (a person beyond about 11 m
  on a VLP-16); set ``min_label_points`` to 1 to name every cluster.
- ``novel`` (not classified: shown as unknown, with the model's guess;
  :func:`novelty_rule`, in scene mode, ``novelty_check: enabled``): a road-user
  class for a cluster whose features the model finds unlike those of its
  training data: its novelty score (:mod:`pointcam_ros.model.novelty`) is
  above the threshold stored with the model, when no other rule fired. Not
  a shape either: a softmax is confident far from its training data, and
  real clutter that the simulator never built (facade details, street
  furniture, vegetation of other kinds) is where it goes wrong
  (docs/real_scans.md). At the shipped model's threshold, 1 in 100 of
  the simulated road users that the pipeline shows right turn unknown.

The ``oversize``, ``long`` and ``tall`` limits read a cluster's core extents, :func:`core_size`
(its torch twin :func:`core_sizes_torch` measures all objects of a scan at
once on the device and imports torch when it is called: this module loads
without torch).
"""

from dataclasses import asdict, dataclass
import math
from typing import Optional, Sequence, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the torch twin's annotations; torch loads only when it is called
    from torch import Tensor

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
#: The class shown for an ``oversize`` or ``plane`` cluster.
BACKGROUND = 'background'
#: Rule kinds: those of ``UNKNOWN_RULES`` leave a cluster unclassified (unknown), those of
#: ``BACKGROUND_RULES`` make it background.
SLIVER, OVERSIZE, PLANE, LOW, RAISED, FRAGMENT, LONG, TALL, FEW, NOVEL = (
    'sliver', 'oversize', 'plane', 'low', 'raised', 'fragment', 'long', 'tall', 'few', 'novel')
#: Rule kinds whose cluster is shown as ``background`` (as unknown if the model has none).
BACKGROUND_RULES = frozenset({OVERSIZE, PLANE})
#: Rule kinds whose cluster is shown as unknown, with the model's guess.
UNKNOWN_RULES = frozenset({SLIVER, LOW, RAISED, FRAGMENT, LONG, TALL, FEW, NOVEL})
#: Large-vehicle classes: the ``plane``, ``low`` and ``raised`` rules check them.
LARGE_VEHICLES = ('truck', 'bus', 'tram')
#: Classes the ``plane`` rule checks (see the module docstring for cars).
PLANE_CLASSES = frozenset(LARGE_VEHICLES)
#: m; RMS distance of the points from their best plane below which a cluster is one flat
#: surface: 2-3 times a spinning LiDAR's range noise (1 sigma: HDL-64E ~2 cm, VLP-16 ~3 cm,
#: OS1 1-5 cm), well under the depth a vehicle's cab shows (set-back glass, curved panels).
PLANE_THICKNESS = 0.06
#: Largest |z| of the unit normal of a vertical plane (sin 6 degrees: walls are plumb).
PLANE_NORMAL_Z = 0.1
#: m; a flat plane at least this wide may be a box truck's or a bus's side or rear (bodies
#: 2.3-2.6 m wide; 0.3 m margin for edge returns lost on dark paint): left to the model.
TRUCK_FACE = 2.0
#: m; the lowest top (above the ground) of each class whose top is checked (the ``low`` rule):
#: box trucks, buses and trams are 2.5 m tall or more; 0.5 m margin for the ground estimate
#: and the beam spacing at range. People are not checked: a person's legs cut off as a piece
#: of their own are rightly "pedestrian".
LOWEST_TOP = dict.fromkeys(LARGE_VEHICLES, 2.0)
#: m; the highest the lowest returns (:func:`cluster_bottom`) of each class whose bottom is
#: checked may be above the ground (the ``raised`` rule): wheels, bumpers and underrun guards
#: of trucks, buses and trams come down to 0.6 m or lower; 0.2 m margin for the ground
#: estimate.
HIGHEST_BOTTOM = dict.fromkeys(LARGE_VEHICLES, 0.8)
#: Share of a cluster's lowest returns set aside as strays before its bottom is read
#: (:func:`cluster_bottom`).
BOTTOM_QUANTILE = 0.02
#: m; a beam crossing a cluster's range this high above the ground or higher would return from
#: a vehicle's wheels, bumpers or guards there; lower, such a return is cut as ground
#: (``ground_threshold``, 0.15 m by default, with margin for the ground estimate).
BEAM_BELOW_SEEN = 0.3
#: m; shortest box a vehicle class may have (the ``fragment`` rule): a car's rear or front is
#: 1.6-1.9 m wide, a truck's, a bus's or a tram's 2.3-2.6 m (see the module docstring).
FRAGMENT_LENGTH = {'car': 1.0, 'van': 1.0, 'truck': TRUCK_FACE, 'bus': TRUCK_FACE,
                   'tram': TRUCK_FACE}
#: m; longest core a class may have (the ``long`` rule): long vans and pickups are 6-7 m.
CLASS_MAX_LENGTH = {'car': 7.0, 'van': 7.0}
#: m; tallest core a class may have (the ``tall`` rule): people are at most ~2.1 m tall.
CLASS_MAX_HEIGHT = {'pedestrian': 2.3, 'person': 2.3, 'cyclist': 2.3}
#: rad; a cluster whose highest return is within this of the scan's top beam may be cut by
#: the field of view (about two beam spacings of an HDL-64E's upper block).
VIEW_TOP_MARGIN = math.radians(0.5)
#: m; a cluster whose highest return is this close to ``max_z`` may be cut by it.
TOP_CUT_MARGIN = 0.05
#: rad; returns closer in elevation are on one beam (the presets' beams are >= 0.33 deg
#: apart; one beam's returns scatter by range noise only).
SAME_BEAM = math.radians(0.1)


def shape_rule(size: np.ndarray, class_name: str, core: Optional[np.ndarray] = None,
               plane: Optional[Sequence[float]] = None, top: Optional[float] = None,
               bottom: Optional[float] = None) -> tuple[str, str]:
    """
    Check a cluster's box ``size`` (3,) against the model's ``class_name`` for it.

    ``size``: length and width in either order, then height, in metres.
    ``core`` (3,), same order: the extents of the middle of the points (see
    :func:`core_size`); the ``oversize`` limits are checked on it, so
    a few stray points (mixed pixels at a car's edge, a person brushing its
    side) do not turn a car into background. Default: ``size``. The
    ``sliver`` check uses ``size``: stray points only make a cluster taller.
    ``plane``: ``(thickness, normal_z)`` of the cluster's best plane
    (:func:`plane_fits`); without it the ``plane`` rule is not checked.
    ``top``: the highest the cluster's top can be above the ground (m,
    :func:`cluster_top`), None when nothing bounds it; without it the
    ``low`` rule is not checked. ``bottom``: the height of the cluster's
    lowest returns above the ground (m, :func:`judged_bottom`), None where
    no beam could see below it; without it the ``raised`` rule is not
    checked. Order: ``sliver``, then the
    background rules (``plane``, ``oversize``), then ``low``, ``raised``,
    ``fragment``, ``long`` and ``tall``.

    Returns ``(kind, reason)``: kind ``''`` when no rule fires, ``sliver``,
    ``low``, ``raised``, ``fragment``, ``long`` or ``tall`` (the cluster is
    not classified: shown as unknown), ``oversize`` or ``plane`` (the
    cluster is shown as ``background``); reason says which size broke which
    limit.
    """
    length, width = float(max(size[0], size[1])), float(min(size[0], size[1]))
    height = float(size[2])
    dims = f'{length:.1f} x {width:.1f} x {height:.2f} m'
    if height < SLIVER_HEIGHT and class_name != BACKGROUND:
        return SLIVER, f'{dims}, under {SLIVER_HEIGHT} m tall (one or two rings)'
    if plane is not None and class_name in PLANE_CLASSES:
        thickness, normal_z = float(plane[0]), abs(float(plane[1]))
        if (thickness < PLANE_THICKNESS and normal_z <= PLANE_NORMAL_Z
                and length < TRUCK_FACE):
            return PLANE, (f'{dims}, points within {100 * thickness:.1f} cm (RMS) of a '
                           f'vertical plane under {TRUCK_FACE} m wide (no truck face is so '
                           'narrow): a wall, fence or sign')
    box_dims, box_length = dims, length
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
    if top is not None and top < LOWEST_TOP.get(class_name, -math.inf):
        return LOW, (f'{box_dims}, nothing above {top:.2f} m over the ground (the beam above '
                     f'passed over it): no {class_name} is under {LOWEST_TOP[class_name]} m '
                     'tall')
    if bottom is not None and bottom > HIGHEST_BOTTOM.get(class_name, math.inf):
        return RAISED, (f'{box_dims}, nothing below {bottom:.2f} m over the ground: no '
                        f'wheels or bumpers of a {class_name} seen (hidden, or it floats)')
    if box_length < FRAGMENT_LENGTH.get(class_name, -math.inf):
        return FRAGMENT, (f'{box_dims}, shorter than any side of a {class_name} '
                          f'({FRAGMENT_LENGTH[class_name]} m): a piece too small to name')
    if length > CLASS_MAX_LENGTH.get(class_name, math.inf):
        return LONG, (f'{dims}, longer than any {class_name} ({CLASS_MAX_LENGTH[class_name]} m): '
                      'two run together, or one and what touches it')
    if height > CLASS_MAX_HEIGHT.get(class_name, math.inf):
        return TALL, (f'{dims}, taller than any {class_name} ({CLASS_MAX_HEIGHT[class_name]} m): '
                      'a person and what stands above them, or a pole')
    return '', ''


def points_rule(points: int, class_name: str, min_points: int) -> tuple[str, str]:
    """
    Check the ``few`` rule: ``(FEW, reason)`` for a road user named on under ``min_points``.

    ``points``: the cluster's points; ``class_name``: the model's class for
    it; ``min_points``: ``min_label_points``. ``('', '')`` when the rule
    does not fire (enough points, or a class that is not a road user).
    """
    if class_name in ROAD_USERS and points < min_points:
        return FEW, (f'{points} points, fewer than min_label_points ({min_points}): too few '
                     f'to name a {class_name} (on real streets most clusters this small are '
                     'not road users)')
    return '', ''


def novelty_rule(score: float, threshold: float, class_name: str) -> tuple[str, str]:
    """
    Check the ``novel`` rule: ``(NOVEL, reason)`` for a road user scoring above ``threshold``.

    ``score``: the cluster's novelty score (NaN when not scored: never
    fires); ``threshold``: the model's (``NoveltyStats.threshold``);
    ``class_name``: the model's class for it. ``('', '')`` when the rule does
    not fire.
    """
    if class_name in ROAD_USERS and score > threshold:
        return NOVEL, (f'novelty {score:.1f} above {threshold:.1f}: the model finds this '
                       f'cluster unlike the {class_name}s it was trained on (its confidence '
                       'means little here)')
    return '', ''


def view_limits(xyz: np.ndarray) -> tuple[float, float]:
    """
    Elevations (rad) of the scan's lowest and top beams: the 0.1st and 99.9th percentiles.

    Over ``(F, 3)`` points in the sensor frame; an empty scan gives (-inf,
    +inf): nothing is cut. Percentiles, not the extremes, so a few stray
    returns beyond the outer beams (a mounting tilt, multipath) do not move
    them.
    """
    if len(xyz) == 0:
        return -math.inf, math.inf
    elevation = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
    lowest, top = np.quantile(elevation, [0.001, 0.999])
    return float(lowest), float(top)


def _beams(points: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """
    Sensor-frame ``points`` (n, 3) as float64 xyz, horizontal distance and elevation (rad).

    Also the step (rad) between the cluster's beams: the median gap between
    its sorted elevations that is wider than :data:`SAME_BEAM`. None when the
    returns lie on one beam (no step to read).
    """
    xyz = points.astype(np.float64)
    distance = np.hypot(xyz[:, 0], xyz[:, 1])
    elevation = np.arctan2(xyz[:, 2], distance)
    steps = np.diff(np.sort(elevation))
    steps = steps[steps > SAME_BEAM]
    if len(steps) == 0:
        return None
    return xyz, distance, elevation, float(np.median(steps))


def cluster_top(points: np.ndarray, height: np.ndarray, top_beam: float,
                max_z: float = math.inf) -> Optional[float]:
    """
    Highest the top of one cluster can be above the ground (m), or None where it is unbounded.

    ``points`` (n, 3) float32 in the sensor frame, ``height`` (n,) their
    heights above the local ground, ``top_beam`` the scan's top beam (:func:`view_limits`),
    ``max_z`` the height cut of the region of interest (sensor frame). The
    true top lies between the cluster's highest return and the next beam up,
    which passed over it: the bound is where that beam crosses the highest
    return's range (its elevation plus the beam spacing of the cluster's own
    returns, the median step between its beams), above the cluster's ground.
    None when nothing bounds it: the highest return is within
    :data:`VIEW_TOP_MARGIN` of the scan's top beam (no beam above) or at the
    ``max_z`` cut, or the returns lie on one beam (no spacing to read).
    """
    if len(points) == 0:
        return None
    beams = _beams(points)
    if beams is None:
        return None
    xyz, distance, elevation, step = beams
    highest = int(np.argmax(xyz[:, 2]))
    if (float(elevation.max()) >= top_beam - VIEW_TOP_MARGIN
            or float(xyz[highest, 2]) >= max_z - TOP_CUT_MARGIN):
        return None
    above = float(elevation[highest]) + step
    ground = float(np.median(xyz[:, 2] - height))
    return float(distance[highest]) * math.tan(above) - ground


def judged_bottom(points: np.ndarray, height: np.ndarray, limit: float,
                  bottom_beam: float = -math.inf) -> Optional[float]:
    """
    Return one cluster's bottom (m) where the sensor could have seen below it, else None.

    The bottom is :func:`cluster_bottom` of ``height`` (n,), the heights
    above the local ground of ``points`` (n, 3) float32 in the sensor
    frame; ``limit`` is the class's highest bottom (``HIGHEST_BOTTOM``);
    ``bottom_beam`` the scan's lowest beam (rad, :func:`view_limits`).

    A lowest return says nothing about what is below it unless a beam
    crossed there. On a sparse sensor at range the next beam down may meet
    the ground first (a VLP-16's beams are 2 degrees apart: 1.2 m at 33 m);
    close by, the sensor's lowest beam may already be the one that hit (a
    VLP-16's -15 degree beam meets a truck's rear 3 m ahead 1 m up). The
    reference is the lowest return at or above the bottom; the beams below
    it are taken as spaced like the cluster's own (the median step between
    its beams, as in :func:`cluster_top`) down to ``bottom_beam``. The
    bottom is returned when one of them crosses the reference return's
    distance between :data:`BEAM_BELOW_SEEN` and ``limit`` above the ground
    under it (the reference's height subtracted from its z), where a
    vehicle's wheels, bumpers and guards would have returned it. None when
    none does, when the bottom is at most ``limit`` (nothing to judge), or
    when the returns lie on one beam.
    """
    if len(points) == 0:
        return None
    bottom = cluster_bottom(height)
    if not bottom > limit:
        return None
    beams = _beams(points)
    if beams is None:
        return None
    xyz, distance, elevation, step = beams
    reference = int(np.nanargmin(np.where(height >= bottom, height, np.inf)))  # the bottom's
    e0 = float(elevation[reference])
    ground = float(xyz[reference, 2]) - float(height[reference])
    reach = float(distance[reference])
    # Beam k below the reference (elevation e0 - k * step) crosses the band [BEAM_BELOW_SEEN,
    # limit] above the ground at the reference's distance for k in
    # [(e0 - band_top) / step, (e0 - band_low) / step], and exists while e0 - k * step is not
    # below the scan's lowest beam.
    band_low = math.atan2(BEAM_BELOW_SEEN + ground, reach)
    band_top = math.atan2(limit + ground, reach)
    first = max(1, math.ceil((e0 - band_top) / step))
    last = math.floor((e0 - band_low) / step)
    if math.isfinite(bottom_beam):
        last = min(last, math.floor((e0 - bottom_beam + SAME_BEAM) / step))
    return bottom if first <= last else None


def cluster_bottom(height: np.ndarray) -> float:
    """
    Height (m) of one cluster's lowest return above the ground once its strays are set aside.

    ``height`` (n,) float32, the cluster's points' heights above the local
    ground (NaN, outside the region of interest, is ignored). The strays are
    the lowest ``BOTTOM_QUANTILE`` of the returns, rounded down, and at least
    the lowest one (a single return of something else merged in); the bottom
    is the next return, a measured height. One return is its own bottom;
    none gives NaN, which no rule's limit exceeds.
    """
    valid = np.sort(height[np.isfinite(height)])
    if len(valid) == 0:
        return math.nan
    rank = max(1, int(BOTTOM_QUANTILE * (len(valid) - 1)))
    return float(valid[min(rank, len(valid) - 1)])


def plane_fits(xyz: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """
    Best plane of every cluster: ``(count, 2)`` float64, its thickness (m) and normal's z.

    ``xyz`` (M, 3) float32 or float64 points, ``labels`` (M,) int cluster
    ``0..count-1`` or -1 (not in a cluster). Thickness: the square root of
    the smallest eigenvalue of the cluster's 3D covariance (the RMS distance
    of its points from their best plane); normal_z: |z| of that
    eigenvector (0 for a vertical plane). O(M) sums and one batched 3 x 3
    eigen-decomposition; a cluster of fewer than 3 points gets (0, 0).
    """
    out = np.zeros((count, 2))
    inside = labels >= 0
    if count == 0 or not inside.any():
        return out
    ids = labels[inside]
    pts = np.take(xyz, np.flatnonzero(inside), axis=0).astype(np.float64)  # take: fast rows
    n = np.bincount(ids, minlength=count).astype(np.float64)
    safe = np.maximum(n, 1.0)
    mean = np.stack([np.bincount(ids, pts[:, i], count) for i in range(3)], 1) / safe[:, None]
    d = pts - np.take(mean, ids, axis=0)  # centred per cluster: no cancellation far away
    cov = np.empty((count, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov[:, i, j] = cov[:, j, i] = np.bincount(ids, d[:, i] * d[:, j], count) / safe
    values, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
    out[:, 0] = np.sqrt(np.maximum(values[:, 0], 0.0))
    out[:, 1] = np.abs(vectors[:, 2, 0])
    out[n < 3] = 0.0
    return out


def background_index(class_names: Sequence[str]) -> int:
    """Index of ``background`` in ``class_names``, or -1 if the model has no such class."""
    return list(class_names).index(BACKGROUND) if BACKGROUND in class_names else -1


@dataclass(frozen=True)
class ShapeFeatures:
    """
    Shape of one cluster as a single LiDAR sees it (all floats; metres unless said).

    ``length`` >= ``width``: extents (2nd to 98th percentile) along and across
    the main horizontal axis; ``height``: the same, up. ``bottom``, ``top``:
    the 2nd and 98th percentile heights above the local ground. ``range``:
    horizontal distance of the centroid. From the eigenvalues l1 >= l2 >= l3
    of the 3D covariance: ``linearity`` (l1 - l2) / l1, ``planarity``
    (l2 - l3) / l1, ``scattering`` l3 / l1, ``thickness`` sqrt(l3) (the spread
    off the best plane) and ``verticality`` 1 - |n_z| of that plane's
    normal (1: a vertical plane). ``hull_share``: share of the points within
    0.15 m of the convex outline seen from above. ``top_depth``: extent across
    the main axis of the points within 0.3 m of the top. ``upper_share``:
    share of the points above half the top height.
    """

    points: int
    range: float  # noqa: A003 (the field's name in the dumps)
    length: float
    width: float
    height: float
    bottom: float
    top: float
    thickness: float
    linearity: float
    planarity: float
    scattering: float
    verticality: float
    hull_share: float
    top_depth: float
    upper_share: float

    def as_dict(self) -> dict:
        """Plain mapping, floats rounded to 3 decimals."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def shape_features(points: np.ndarray, height: Optional[np.ndarray] = None) -> ShapeFeatures:
    """
    :class:`ShapeFeatures` of one cluster's ``points`` (n, 3), n >= 1, float32 or float64.

    ``height`` (n,) float: each point's height above the local ground
    (``Segmentation.height``); default: above the cluster's lowest point.
    """
    xyz = np.asarray(points, np.float64)
    z = xyz[:, 2] - xyz[:, 2].min() if height is None else np.asarray(height, np.float64)
    n = len(xyz)
    centered = xyz - xyz.mean(axis=0)
    values, vectors = np.linalg.eigh(centered.T @ centered / max(n, 1))  # ascending
    l3, l2, l1 = np.maximum(values, 0.0)
    l1 = max(l1, 1e-12)
    normal = vectors[:, 0]
    xy = centered[:, :2]
    v2, e2 = np.linalg.eigh(xy.T @ xy / max(n, 1))
    major, minor = xy @ e2[:, 1], xy @ e2[:, 0]
    lo, hi = np.percentile(np.stack([major, minor, z], 1), [2, 98], axis=0)
    top_rows = z >= hi[2] - 0.3
    top_depth = float(np.ptp(minor[top_rows])) if top_rows.any() else 0.0
    return ShapeFeatures(
        points=n, range=float(np.hypot(*xyz[:, :2].mean(axis=0))),
        length=float(hi[0] - lo[0]), width=float(hi[1] - lo[1]), height=float(hi[2] - lo[2]),
        bottom=float(lo[2]), top=float(hi[2]), thickness=float(np.sqrt(l3)),
        linearity=float((l1 - l2) / l1), planarity=float((l2 - l3) / l1),
        scattering=float(l3 / l1), verticality=float(1.0 - abs(normal[2])),
        hull_share=_hull_share(xyz[:, :2], 0.15), top_depth=top_depth,
        upper_share=float(np.mean(z > 0.5 * hi[2])))


def _hull_share(xy: np.ndarray, margin: float) -> float:
    """Share of ``(n, 2)`` points within ``margin`` of their convex outline (1.0 if degenerate)."""
    from scipy.spatial import ConvexHull, QhullError
    if len(xy) < 4:
        return 1.0
    try:
        hull = ConvexHull(xy)
    except (QhullError, ValueError):
        return 1.0
    # distance inside each facet: -(a x + b y + c) for the outward unit normals of Qhull
    depth = -(xy @ hull.equations[:, :2].T + hull.equations[:, 2])
    return float(np.mean(depth.min(axis=1) <= margin))


def core_size(points: np.ndarray, yaw: float, share: float = CORE_SHARE) -> np.ndarray:
    """
    Extents ``(3,)`` float64 of the middle ``share`` of one object's ``(n, 3)`` points.

    Along, across and up the box at ``yaw`` (n >= 1): per axis, the spread
    between the ``(1 - share) / 2`` and ``(1 + share) / 2`` quantiles, so a
    few mixed pixels or a stray branch do not make a car 4 m wide.
    """
    xyz = points.astype(np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.stack([xyz[:, 0] * c + xyz[:, 1] * s, xyz[:, 1] * c - xyz[:, 0] * s,
                      xyz[:, 2]], axis=1)
    lo, hi = np.quantile(local, [(1.0 - share) / 2, (1.0 + share) / 2], axis=0)
    return hi - lo


def core_sizes(points: np.ndarray, counts: np.ndarray, yaw: np.ndarray,
               share: float = CORE_SHARE) -> np.ndarray:
    """
    :func:`core_size` of K objects at once, bit for bit: ``(K, 3)`` float64.

    ``points`` (P, 3) float32 grouped by object (object k holds ``counts[k]``
    rows, each > 0, after those of objects 0..k-1), ``counts`` (K,) int64,
    ``yaw`` (K,) float64 box yaws. The box frame of all points in one go
    (the same element-wise products), one ``np.partition`` per object for
    its four order statistics, and ``np.quantile``'s linear interpolation
    (index ``(n - 1) q``, its lerp) for all objects at once.
    """
    xyz = points.astype(np.float64)
    labels = np.repeat(np.arange(len(counts)), counts)
    c, s = np.cos(yaw)[labels], np.sin(yaw)[labels]
    local = np.stack([xyz[:, 0] * c + xyz[:, 1] * s, xyz[:, 1] * c - xyz[:, 0] * s,
                      xyz[:, 2]], axis=1)
    starts = np.cumsum(counts) - counts
    rank, gamma = [], []
    for q in ((1.0 - share) / 2, (1.0 + share) / 2):
        position = (counts - 1) * np.float64(q)
        below = np.floor(position)
        top = position >= counts - 1  # np.quantile takes the largest value twice
        gamma.append(np.where(top, position + 1, position - below)[:, None])
        below = np.where(top, counts - 1, below).astype(np.int64)
        rank += [below, np.minimum(below + 1, counts - 1)]
    ranks = np.stack(rank, 1)  # (K, 4): below and above the low, then the high quantile
    picked = np.stack([np.partition(local[lo:lo + n], kth, axis=0)[kth]
                       for lo, n, kth in zip(starts, counts, ranks)])  # (K, 4, 3)
    extents = []
    for j, t in enumerate(gamma):
        a, b = picked[:, 2 * j], picked[:, 2 * j + 1]
        diff = b - a
        extents.append(np.where(t >= 0.5, b - diff * (1 - t), a + diff * t))
    return extents[1] - extents[0]


def _quantile_sorted(ordered: 'Tensor', starts: 'Tensor', counts: 'Tensor', q: float
                     ) -> 'Tensor':
    """
    Return each object's linear ``q`` quantile (numpy's), ``(K, D)`` float64.

    ``ordered`` (P, D) float64: each column sorted within each object; object
    k holds rows ``starts[k]`` to ``starts[k] + counts[k]``. Same lerp as
    ``np.quantile`` (method 'linear').
    """
    import torch
    position = q * (counts - 1).to(torch.float64)
    below = torch.floor(position)
    t = (position - below)[:, None]
    lo_row = starts + below.to(torch.int64)
    hi_row = starts + torch.minimum(below.to(torch.int64) + 1, counts - 1)
    a, b = ordered[lo_row], ordered[hi_row]
    return torch.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)


def core_sizes_torch(points: 'Tensor', labels: 'Tensor', counts: 'Tensor', yaw: 'Tensor',
                     share: float = CORE_SHARE) -> 'Tensor':
    """
    Torch twin of :func:`core_size` for all objects at once, on the device: ``(K, 3)`` float64.

    ``points`` (P, 3) float32 object points in any order, ``labels`` (P,)
    int64 their objects ``0..K-1``, ``counts`` (K,) int64 the points per
    object (each > 0), ``yaw`` (K,) float64 box yaws. Two stable sorts of
    the P points per axis instead of a loop over the objects; equal to numpy
    up to the last bits of cos and sin.
    """
    import torch
    xyz = points.to(torch.float64)
    c, s = torch.cos(yaw)[labels], torch.sin(yaw)[labels]
    local = torch.stack([xyz[:, 0] * c + xyz[:, 1] * s, xyz[:, 1] * c - xyz[:, 0] * s,
                         xyz[:, 2]], dim=1)
    by_value = torch.argsort(local, dim=0, stable=True)
    by_object = torch.argsort(labels[by_value], dim=0, stable=True)
    ordered = local.gather(0, by_value.gather(0, by_object))
    starts = torch.cumsum(counts, 0) - counts
    low = _quantile_sorted(ordered, starts, counts, (1.0 - share) / 2)
    high = _quantile_sorted(ordered, starts, counts, (1.0 + share) / 2)
    return high - low
