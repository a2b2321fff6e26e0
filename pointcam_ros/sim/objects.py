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
Object builders: one function per kind of thing found in a street or a park.

Every builder takes a ``numpy.random.Generator`` and returns a
:class:`~pointcam_ros.sim.surfaces.Surface` in the object's own frame: x
forward (along its length), y left, z up, standing on z = 0. Shapes, sizes,
poses and paint vary with the generator. :data:`KINDS` maps each kind to the
class it is labelled with (:data:`CLASS_NAMES`).
"""

import math
from typing import Callable, Optional

import numpy as np
from pointcam_ros.sim.surfaces import (
    box, ellipsoid, foliage, GLASS, limb, loft, merge, MESH, rounded_outline, SOLID, Surface,
    WINDOW)

#: Object classes the simulator labels; ``background`` is everything else that
#: sticks out of the ground (walls, fences, hedges, shrubs, bushes, furniture, signs and
#: billboards, bus shelters, parked bicycles).
CLASS_NAMES = ('car', 'truck', 'pedestrian', 'cyclist', 'pole', 'tree', 'background')
CAR, TRUCK, PEDESTRIAN, CYCLIST, POLE, TREE, BACKGROUND = range(7)


def _paint(rng: np.random.Generator) -> float:
    """Vehicle paint reflectivity: a quarter are dark (black, dark blue), which drop out."""
    return float(rng.uniform(0.03, 0.08) if rng.random() < 0.25 else rng.uniform(0.2, 0.8))


def _rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _wheel(center, radius: float, width: float) -> Surface:
    return limb((center[0], center[1] - width / 2, center[2]),
                (center[0], center[1] + width / 2, center[2]), radius, reflectivity=0.05,
                resolution=12)


# --- vehicles ----------------------------------------------------------------------------

#: Car bodies :func:`car` builds: ``box`` (the data sets' and the shipped model's) or
#: ``curved`` (rounded plan view, sloped windscreen and rear window, tumblehome, a
#: bonnet that drops to the nose).
CAR_BODIES = ('box', 'curved')


def car(rng: np.random.Generator, kind: Optional[str] = None, body: str = 'box') -> Surface:
    """
    Sedan, hatchback, SUV or van (vans are labelled car): body, glass cabin, roof, wheels.

    ``body`` (:data:`CAR_BODIES`) changes only the shape of the body and the
    cabin: both draw the same numbers from ``rng``, so one seed gives the same
    car (kind, size, paint, wheels, mirrors) either way.
    """
    if body not in CAR_BODIES:
        raise ValueError(f'unknown car body {body!r}: use one of {CAR_BODIES}')
    kind = kind or str(rng.choice(['sedan', 'hatch', 'suv', 'van'], p=[0.4, 0.25, 0.2, 0.15]))
    paint = _paint(rng)
    length, width, body_h, cabin_h, cabin_frac = {
        'sedan': (rng.uniform(4.2, 4.9), rng.uniform(1.7, 1.85), rng.uniform(0.55, 0.7),
                  rng.uniform(0.4, 0.5), rng.uniform(0.45, 0.55)),
        'hatch': (rng.uniform(3.6, 4.2), rng.uniform(1.6, 1.78), rng.uniform(0.55, 0.7),
                  rng.uniform(0.45, 0.55), rng.uniform(0.55, 0.65)),
        'suv': (rng.uniform(4.3, 4.9), rng.uniform(1.8, 1.95), rng.uniform(0.75, 0.9),
                rng.uniform(0.5, 0.6), rng.uniform(0.6, 0.7)),
        'van': (rng.uniform(4.8, 5.6), rng.uniform(1.9, 2.05), rng.uniform(0.9, 1.1),
                rng.uniform(0.8, 1.1), rng.uniform(0.8, 0.9)),
    }[kind]
    clearance = rng.uniform(0.15, 0.22) if kind in ('sedan', 'hatch') else rng.uniform(0.2, 0.3)
    cabin_len = length * cabin_frac
    cabin_x = {'sedan': -0.05, 'hatch': -0.12, 'suv': -0.12, 'van': -0.05}[kind] * length
    roof_z = clearance + body_h + cabin_h
    if body == 'curved':
        parts = _curved_body(kind, length, width, clearance, body_h, cabin_len, cabin_x,
                             roof_z, paint)
    else:
        parts = [box((length, width, body_h), (0, 0, clearance + body_h / 2), paint),
                 box((cabin_len, width * 0.9, cabin_h),
                     (cabin_x, 0, clearance + body_h + cabin_h / 2), 0.1, GLASS),
                 box((cabin_len * 0.95, width * 0.88, 0.05), (cabin_x, 0, roof_z), paint)]
        if kind == 'van':  # a van's cargo walls are solid: only the front of the cabin is glass
            parts.append(box((cabin_len * 0.6, width * 0.92, cabin_h),
                             (cabin_x - cabin_len * 0.2, 0, clearance + body_h + cabin_h / 2),
                             paint))
    wheel_r = rng.uniform(0.3, 0.37)
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_wheel((sx * length * 0.33, sy * (width / 2 - 0.1), wheel_r),
                                wheel_r, 0.2))
    if rng.random() < 0.7:  # mirrors stick out of the outline
        for sy in (-1, 1):
            parts.append(box((0.1, 0.2, 0.12), (cabin_x + cabin_len / 2, sy * (width / 2 + 0.08),
                                                clearance + body_h + 0.1), paint))
    return merge(parts)


def _curved_body(kind: str, length: float, width: float, clearance: float, body_h: float,
                 cabin_len: float, cabin_x: float, roof_z: float, paint: float
                 ) -> list[Surface]:
    """
    Build a car's body and cabin as skins through rounded outlines (``curved`` cars).

    Sizes in metres, in the car's frame (x forward, the nose at +x, z up
    from the ground); ``paint`` the body's reflectivity. The body is tucked
    in under the bumpers and sills, full at the bumper line, rounded over
    the shoulder, and its bonnet drops towards the nose (a van's least). The
    glass cabin narrows and shortens to the painted roof: the windscreen
    leans back over 70 % of the difference in length (a van's 80 %), the
    rear window over the rest, and the side windows lean in (tumblehome). A
    van's cabin is painted behind the front doors, as the box van's is.
    Returns the body and the cabin.
    """
    exponent = 6.0 if kind == 'van' else 4.0
    belt = clearance + body_h
    shoulder = rounded_outline(length * 0.96, width * 0.93, belt, exponent=exponent)
    nose = cabin_x + cabin_len / 2  # where the bonnet starts
    ahead = shoulder[:, 0] > nose
    # At most a fifth of the body's height: the shoulder stays above the ring below it.
    drop = min({'van': 0.05, 'suv': 0.12}.get(kind, 0.15), 0.2 * body_h)
    shoulder[ahead, 2] -= drop * np.clip((shoulder[ahead, 0] - nose) / (length / 2 - nose), 0, 1)
    hull = loft([rounded_outline(length * 0.95, width * 0.92, clearance, exponent=exponent),
                 rounded_outline(length, width, clearance + 0.12, exponent=exponent),
                 rounded_outline(length, width, clearance + body_h * 0.75, exponent=exponent),
                 shoulder], paint)
    top_len = cabin_len * (0.85 if kind == 'van' else 0.6)
    # The roof sits back: the front lean is (0.5 + rake) of the difference, the rear's the rest.
    rake = 0.3 if kind == 'van' else 0.2
    top_x = cabin_x - rake * (cabin_len - top_len)
    top = rounded_outline(top_len, width * 0.78, roof_z, top_x, exponent)
    # The cabin starts inside the body, below the dip of the body's top cap (its fan's centre
    # is the mean of the shoulder ring, which the bonnet lowers).
    cabin = loft([rounded_outline(cabin_len, width * 0.9, belt - 0.08, cabin_x, exponent), top],
                 0.1, GLASS, cap_bottom=False)
    roof = np.zeros(len(cabin.triangles), bool)
    roof[-len(top):] = True  # the top cap's fan: loft puts it last
    if kind == 'van':  # the box van's cargo walls reach 0.1 cabin lengths ahead of its centre
        roof |= cabin.vertices[cabin.triangles].mean(axis=1)[:, 0] < cabin_x + 0.1 * cabin_len
    cabin.material[roof] = SOLID
    cabin.reflectivity[roof] = paint
    return [hull, cabin]


def truck(rng: np.random.Generator, kind: Optional[str] = None) -> Surface:
    """Box truck, semi-trailer or bus (buses are labelled truck)."""
    kind = kind or str(rng.choice(['box', 'semi', 'bus'], p=[0.45, 0.2, 0.35]))
    paint = _paint(rng)
    width = rng.uniform(2.3, 2.55)
    parts = []
    if kind == 'bus':
        length, height = rng.uniform(9.5, 12.5), rng.uniform(2.9, 3.3)
        parts += [box((length, width, 0.75), (0, 0, 0.3 + 0.375), paint),
                  box((length * 0.97, width - 0.02, 1.25), (0, 0, 1.05 + 0.625), 0.1, GLASS),
                  box((length, width, height - 2.3), (0, 0, 2.3 + (height - 2.3) / 2), paint)]
        axles = (-length * 0.3, length * 0.3)
    else:
        cab_len = rng.uniform(1.6, 2.3)
        length = rng.uniform(6.0, 8.5) if kind == 'box' else rng.uniform(10.0, 13.0)
        height = rng.uniform(2.8, 3.6) if kind == 'box' else rng.uniform(3.6, 4.0)
        clearance = rng.uniform(0.9, 1.2)
        cargo_len = length - cab_len - 0.15
        cab_h = rng.uniform(2.4, 2.9)
        parts += [box((cargo_len, width, height - clearance),
                      (-length / 2 + cargo_len / 2, 0, clearance + (height - clearance) / 2),
                      float(rng.uniform(0.3, 0.8))),
                  box((cab_len, width * 0.95, cab_h - 1.6),
                      (length / 2 - cab_len / 2, 0, 0.5 + (cab_h - 1.6) / 2), paint),
                  box((cab_len * 0.5, width * 0.93, 1.0),
                      (length / 2 - cab_len * 0.25, 0, cab_h - 1.1 + 0.5), 0.1, GLASS),
                  box((cab_len * 0.5, width * 0.95, 1.0),
                      (length / 2 - cab_len * 0.75, 0, cab_h - 1.1 + 0.5), paint),
                  box((cab_len, width * 0.95, 0.1), (length / 2 - cab_len / 2, 0, cab_h), paint),
                  box((cargo_len, width * 0.6, 0.3), (-length / 2 + cargo_len / 2, 0, 0.75),
                      0.05)]
        axles = (length / 2 - cab_len * 0.6, -length / 2 + 1.2, -length / 2 + 2.5)
    for x in axles:
        for sy in (-1, 1):
            parts.append(_wheel((x, sy * (width / 2 - 0.2), 0.5), 0.5, 0.35))
    return merge(parts)


# --- people ------------------------------------------------------------------------------

def _leg(hip, angle: float, bend: float, length: float, radius: float, shade: float):
    knee = hip + length * np.array([math.sin(angle), 0.0, -math.cos(angle)])
    ankle = knee + length * np.array([math.sin(angle - bend), 0.0, -math.cos(angle - bend)])
    return [limb(hip, knee, radius, shade), limb(knee, ankle, radius * 0.8, shade),
            box((0.24, 0.1, 0.08), ankle + (0.06, 0, -0.02), 0.1)]


def _arm(shoulder, angle: float, bend: float, length: float, radius: float, shade: float,
         out: float):
    elbow = shoulder + length * np.array([math.sin(angle), out, -math.cos(angle)])
    wrist = elbow + length * np.array([math.sin(angle + bend), 0.0, -math.cos(angle + bend)])
    return [limb(shoulder, elbow, radius, shade), limb(elbow, wrist, radius * 0.85, shade)], wrist


def person(rng: np.random.Generator, pose: Optional[str] = None,
           height: Optional[float] = None, carry: Optional[str] = None) -> Surface:
    """
    Build a pedestrian of random build: 'walk', 'stand' or 'phone' pose, maybe carrying.

    ``carry``: 'none', 'backpack', 'bag' (in hand), 'shoulder' (shoulder bag),
    'suitcase' (pulled behind) or 'stroller' (pushed in front).
    """
    pose = pose or str(rng.choice(['walk', 'stand', 'phone'], p=[0.55, 0.3, 0.15]))
    if height is None:
        height = rng.uniform(1.1, 1.45) if rng.random() < 0.1 else rng.uniform(1.5, 1.95)
    carry = carry or str(rng.choice(['none', 'backpack', 'bag', 'shoulder', 'suitcase',
                                     'stroller'], p=[0.45, 0.2, 0.14, 0.1, 0.06, 0.05]))
    build = rng.uniform(0.85, 1.3)
    shade = float(rng.uniform(0.08, 0.6))
    hip_z, shoulder_z = 0.52 * height, 0.81 * height
    stride = rng.uniform(0.25, 0.45) if pose == 'walk' else rng.uniform(0.0, 0.08)
    lean = rng.uniform(0.0, 0.12) if pose == 'walk' else rng.uniform(-0.03, 0.06)
    torso_h = shoulder_z - hip_z + 0.06
    torso = box((0.2 * build, 0.34 * build, torso_h), (0, 0, hip_z + torso_h / 2 - 0.03), shade)
    head_r = 0.065 * height
    parts = [torso, ellipsoid((head_r * 0.9, head_r * 0.8, head_r), (0.02, 0, shoulder_z + 0.03 +
                                                                     head_r * 1.1), 0.2)]
    thigh = (hip_z - 0.06) / 2
    for side in (-1, 1):
        hip = np.array([0.0, side * 0.09 * build, hip_z])
        angle = side * stride
        parts += _leg(hip, angle, 0.35 if angle < 0 else 0.05, thigh, 0.07 * build, shade)
    wrists = {}
    for side in (-1, 1):
        shoulder = np.array([0.0, side * 0.19 * build, shoulder_z - 0.04])
        if pose == 'phone' and side == 1:
            arm, wrist = _arm(shoulder, 0.2, 1.6, 0.16 * height, 0.045 * build, shade, 0.05)
        else:
            arm, wrist = _arm(shoulder, -side * stride * 0.8, 0.2, 0.16 * height,
                              0.045 * build, shade, side * 0.06)
        parts += arm
        wrists[side] = wrist
    hand = wrists[-1]
    if carry == 'backpack':
        parts.append(box((0.18, 0.3, 0.42), (-0.1 * build - 0.1, 0, shoulder_z - 0.25), 0.3))
    elif carry == 'bag':
        parts.append(box((0.14, 0.35, 0.3), hand + (0, 0, -0.15), float(rng.uniform(0.1, 0.6))))
    elif carry == 'shoulder':
        parts.append(box((0.25, 0.1, 0.25), (0, -0.22 * build, hip_z + 0.05), 0.3))
    elif carry == 'suitcase':
        parts += [box((0.25, 0.4, 0.6), (-0.55, hand[1], 0.32), 0.2),
                  limb(hand, (-0.55, hand[1], 0.62), 0.015)]
    elif carry == 'stroller':
        parts += [box((0.8, 0.55, 0.5), (0.75, 0, 0.55), 0.15),
                  limb((0.35, 0, 0.95), (0.45, 0, 0.6), 0.02)]
        for x in (0.45, 1.05):
            parts.append(_wheel((x, 0, 0.12), 0.12, 0.5))
    body = merge(parts)
    return body.rotated(_rot_y(lean), (0, 0, 0))


def bicycle(rng: np.random.Generator) -> Surface:
    """Build a bicycle without rider: rims, frame tubes, saddle, handlebar."""
    radius = rng.uniform(0.31, 0.36)
    wheelbase = rng.uniform(1.0, 1.12)
    shade = float(rng.uniform(0.1, 0.7))
    rear, front = np.array([-wheelbase / 2, 0, radius]), np.array([wheelbase / 2, 0, radius])
    crank = np.array([-0.05, 0, 0.3])
    seat = np.array([-0.22, 0, radius + 0.5])
    head = np.array([wheelbase / 2 - 0.12, 0, radius + 0.55])
    parts = []
    for hub in (rear, front):
        angles = np.linspace(0, 2 * math.pi, 13)
        rim = hub + radius * np.stack([np.cos(angles), np.zeros(13), np.sin(angles)], axis=1)
        parts += [limb(a, b, 0.025, 0.1, resolution=6) for a, b in zip(rim[:-1], rim[1:])]
    for a, b in ((rear, crank), (rear, seat), (crank, seat), (seat, head), (crank, head),
                 (head, front), (seat, seat + (0, 0, 0.12)), (head, head + (-0.05, 0, 0.2))):
        parts.append(limb(a, b, 0.02, shade, resolution=6))
    parts.append(box((0.25, 0.12, 0.06), seat + (0, 0, 0.15), 0.1))
    parts.append(limb(head + (-0.05, -0.28, 0.2), head + (-0.05, 0.28, 0.2), 0.015, shade))
    return merge(parts)


def cyclist(rng: np.random.Generator) -> Surface:
    """Build a rider on a bicycle: seated, leaning forward, hands on the bar, feet on pedals."""
    bike = bicycle(rng)
    height = rng.uniform(1.55, 1.95)
    build = rng.uniform(0.85, 1.25)
    shade = float(rng.uniform(0.08, 0.6))
    hip = np.array([-0.22, 0.0, 0.35 + 0.5 + 0.2])
    lean = rng.uniform(0.35, 0.9)  # torso angle from vertical (rad)
    torso_len = 0.3 * height
    shoulder = hip + torso_len * np.array([math.sin(lean), 0, math.cos(lean)])
    parts = [bike, limb(hip, shoulder, 0.15 * build, shade),
             ellipsoid((0.13, 0.1, 0.13), shoulder + 0.16 * np.array([math.sin(lean * 0.7), 0,
                                                                      math.cos(lean * 0.7)]),
                       0.2)]
    phase = rng.uniform(0, 2 * math.pi)
    for side in (-1, 1):
        pedal = np.array([-0.05 + 0.17 * math.cos(phase + (side > 0) * math.pi), side * 0.12,
                          0.3 + 0.17 * math.sin(phase + (side > 0) * math.pi)])
        h = hip + (0, side * 0.1, 0)
        mid = (h + pedal) / 2 + np.array([0.18, 0, 0.05])
        parts += [limb(h, mid, 0.07 * build, shade), limb(mid, pedal, 0.055 * build, shade)]
        bar = np.array([0.33, side * 0.24, 0.35 + 0.55 + 0.2])
        s = shoulder + (0, side * 0.18 * build, 0)
        elbow = (s + bar) / 2 + np.array([0, side * 0.05, -0.08])
        parts += [limb(s, elbow, 0.045 * build, shade), limb(elbow, bar, 0.04 * build, shade)]
    if rng.random() < 0.3:
        parts.append(box((0.16, 0.3, 0.4), shoulder - (0.15, 0, 0.2), 0.3))
    return merge(parts)


# --- street furniture, poles, vegetation ------------------------------------------------

def pole(rng: np.random.Generator, kind: Optional[str] = None) -> Surface:
    """Build a street lamp, sign post, traffic light or utility pole, labelled pole."""
    kind = kind or str(rng.choice(['lamp', 'sign', 'traffic', 'utility'],
                                  p=[0.35, 0.35, 0.15, 0.15]))
    shade = float(rng.uniform(0.2, 0.6))
    if kind == 'lamp':
        height, radius = rng.uniform(4.5, 8.0), rng.uniform(0.06, 0.12)
        reach = rng.uniform(0.3, 1.8)
        return merge([limb((0, 0, 0), (0, 0, height), radius, shade),
                      limb((0, 0, height - 0.2), (reach, 0, height + 0.1), 0.04, shade),
                      box((0.5, 0.25, 0.15), (reach, 0, height + 0.05), 0.5)])
    if kind == 'sign':
        height, radius = rng.uniform(2.4, 3.6), rng.uniform(0.03, 0.06)
        parts = [limb((0, 0, 0), (0, 0, height), radius, shade)]
        top = height
        for _ in range(int(rng.integers(1, 3))):
            size = rng.uniform(0.5, 0.9)
            parts.append(box((0.04, size, size * rng.uniform(0.6, 1.1)),
                             (radius + 0.03, 0, top - size / 2), 0.8))
            top -= size
        return merge(parts)
    if kind == 'traffic':
        height = rng.uniform(3.0, 5.0)
        return merge([limb((0, 0, 0), (0, 0, height), rng.uniform(0.08, 0.12), shade),
                      box((0.3, 0.35, 0.95), (0.25, 0, height - 0.6), 0.1)])
    height = rng.uniform(6.0, 9.0)
    return merge([limb((0, 0, 0), (0, 0, height), rng.uniform(0.11, 0.17), 0.3),
                  limb((0, -0.8, height - 0.4), (0, 0.8, height - 0.4), 0.05, 0.3)])


def tree(rng: np.random.Generator, kind: Optional[str] = None) -> Surface:
    """Broadleaf, young or conifer tree: trunk, a few branches and porous crown(s)."""
    kind = kind or str(rng.choice(['broadleaf', 'young', 'conifer'], p=[0.6, 0.2, 0.2]))
    density = rng.uniform(25, 110)
    if kind == 'conifer':
        height = rng.uniform(4.0, 9.0)
        radius = rng.uniform(1.0, 2.2)
        base = rng.uniform(0.3, 1.5)
        crown_h = height - base
        return merge([limb((0, 0, 0), (0, 0, height * 0.9), rng.uniform(0.1, 0.25), 0.3),
                      foliage(rng, (radius, radius, crown_h / 2), (0, 0, base + crown_h / 2),
                              density * 1.3, shape='cone')])
    young = kind == 'young'
    trunk_h = rng.uniform(1.6, 2.4) if young else rng.uniform(1.8, 3.5)
    trunk_r = rng.uniform(0.04, 0.08) if young else rng.uniform(0.1, 0.3)
    crown = rng.uniform(0.5, 1.1) if young else rng.uniform(1.3, 3.0)
    lean = rng.normal(0, 0.15, 2)
    top = np.array([lean[0], lean[1], trunk_h])
    parts = [limb((0, 0, 0), top, trunk_r, 0.3)]
    for _ in range(int(rng.integers(2, 5)) if not young else 0):
        bearing = rng.uniform(0, 2 * math.pi)
        reach = crown * rng.uniform(0.4, 0.8)
        parts.append(limb(top, top + (reach * math.cos(bearing), reach * math.sin(bearing),
                                      crown * rng.uniform(0.3, 0.8)), trunk_r * 0.4, 0.3))
    for _ in range(1 if young else int(rng.integers(1, 4))):
        offset = rng.normal(0, crown * 0.25, 3)
        radii = crown * rng.uniform(0.65, 1.0) * np.array(
            [1.0, rng.uniform(0.8, 1.2), rng.uniform(0.65, 1.1)])
        parts.append(foliage(rng, radii, top + (offset[0], offset[1],
                                                radii[2] * 0.85 + abs(offset[2]) * 0.3),
                             density))
    return merge(parts)


def bush(rng: np.random.Generator) -> Surface:
    """Build a porous bush, labelled background."""
    radii = (rng.uniform(0.4, 1.5), rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.9))
    return foliage(rng, radii, (0, 0, radii[2] * 0.9), rng.uniform(50, 200))


def hedge(rng: np.random.Generator, length: Optional[float] = None) -> Surface:
    """Build a trimmed hedge along x, 0.6-3 m tall, porous to dense (background)."""
    length = length or rng.uniform(2.0, 10.0)
    width, height = rng.uniform(0.5, 1.2), rng.uniform(0.6, 3.0)
    return foliage(rng, (length / 2, width / 2, height / 2), (0, 0, height / 2),
                   rng.uniform(80, 400), shape='box')


def shrubbery(rng: np.random.Generator, length: Optional[float] = None) -> Surface:
    """
    Build a row of shrubs grown together along x, 1.2-3.5 m tall (background).

    Untrimmed roadside vegetation: overlapping dense crowns with an uneven
    top and front, from the ground up. At range its dense face returns like
    a 2-3 m tall box a few metres long, the size of a van or a truck's side,
    so the classifier must learn it from this, not from trimmed hedges alone.
    """
    length = length or rng.uniform(2.5, 12.0)
    parts = []
    x = -length / 2
    while x < length / 2:
        reach = rng.uniform(0.6, 1.6)
        height, depth = rng.uniform(1.2, 3.5), rng.uniform(0.5, 1.5)
        parts.append(foliage(rng, (reach, depth, height / 2),
                             (x + reach, rng.normal(0, 0.2), height / 2 + rng.uniform(-0.1, 0.2)),
                             rng.uniform(120, 400)))
        x += reach * rng.uniform(1.0, 1.6)
    return merge(parts)


def billboard(rng: np.random.Generator, kind: Optional[str] = None) -> Surface:
    """
    Build a raised flat panel on posts along x: a billboard, a large road sign or a bus shelter.

    Labelled background. The panel (1-4.5 m wide, 0.6-2.5 m tall) hangs
    0.8-3 m above the ground on one or two thin posts, which a sensor often
    misses, so it shows as a floating plane; a shelter adds glass walls and a
    roof slab 2.3-2.6 m up.
    """
    kind = kind or str(rng.choice(['billboard', 'sign', 'shelter'], p=[0.4, 0.35, 0.25]))
    shade = float(rng.uniform(0.2, 0.8))
    if kind == 'shelter':
        length, depth, roof = rng.uniform(3.0, 6.0), rng.uniform(1.2, 1.8), rng.uniform(2.3, 2.6)
        parts = [box((length + 0.2, depth + 0.3, 0.12), (0, 0, roof), shade),
                 box((length, 0.03, roof - 0.2), (0, depth / 2, roof / 2), 0.1, GLASS),
                 box((0.03, depth, roof - 0.2), (-length / 2, 0, roof / 2), 0.1, GLASS),
                 box((1.3, 0.08, 1.9), (length / 2 - 0.8, depth / 2 + 0.05, 1.3), 0.7)]
        parts += [limb((x, y, 0), (x, y, roof), 0.04, 0.3)
                  for x in (-length / 2, length / 2) for y in (-depth / 2, depth / 2)]
        return merge(parts)
    width = rng.uniform(1.0, 2.2) if kind == 'sign' else rng.uniform(2.0, 4.5)
    height = rng.uniform(0.6, 1.5) if kind == 'sign' else rng.uniform(1.2, 2.5)
    bottom = rng.uniform(1.8, 3.0) if kind == 'sign' else rng.uniform(0.8, 2.5)
    thickness = rng.uniform(0.04, 0.1) if kind == 'sign' else rng.uniform(0.1, 0.4)
    parts = [box((width, thickness, height), (0, 0, bottom + height / 2), shade)]
    posts = (0.0,) if width < 1.6 else (-width / 3, width / 3)
    radius = rng.uniform(0.04, 0.12)
    parts += [limb((x, 0, 0), (x, 0, bottom), radius, 0.3) for x in posts]
    return merge(parts)


def wall(rng: np.random.Generator, length: Optional[float] = None) -> Surface:
    """Garden or boundary wall along x, sometimes with pillars (background)."""
    length = length or rng.uniform(3.0, 14.0)
    height, thickness = rng.uniform(0.5, 2.8), rng.uniform(0.15, 0.4)
    shade = float(rng.uniform(0.1, 0.6))
    parts = [box((length, thickness, height), (0, 0, height / 2), shade)]
    if rng.random() < 0.4:
        for x in np.arange(-length / 2, length / 2 + 0.01, rng.uniform(2.0, 4.0)):
            parts.append(box((0.4, thickness + 0.1, height + 0.2), (x, 0, (height + 0.2) / 2),
                             shade))
    return merge(parts)


def fence(rng: np.random.Generator, length: Optional[float] = None,
          kind: Optional[str] = None) -> Surface:
    """Picket fence, railing, chain-link or construction fence along x: rays partly pass."""
    length = length or rng.uniform(3.0, 14.0)
    kind = kind or str(rng.choice(['picket', 'railing', 'chain', 'construction']))
    shade = float(rng.uniform(0.1, 0.7))
    height = rng.uniform(0.9, 1.3) if kind in ('picket', 'railing') else rng.uniform(1.6, 2.2)
    parts = [limb((x, 0, 0), (x, 0, height), 0.04, shade)
             for x in np.linspace(-length / 2, length / 2, max(2, int(length / 2.5) + 1))]
    if kind == 'picket':
        step = rng.uniform(0.12, 0.2)
        for x in np.arange(-length / 2, length / 2, step):
            parts.append(box((step * 0.55, 0.025, height), (x, 0, height / 2), shade))
    elif kind == 'railing':
        for z in (height, height * rng.uniform(0.3, 0.6)):
            parts.append(limb((-length / 2, 0, z), (length / 2, 0, z), 0.03, shade))
        for x in np.arange(-length / 2, length / 2, rng.uniform(0.12, 1.2)):
            parts.append(limb((x, 0, 0.05), (x, 0, height), 0.012, shade, resolution=4))
    else:
        parts.append(box((length, 0.01, height - 0.1), (0, 0, height / 2 + 0.05), shade, MESH))
        if kind == 'construction':
            for x in np.linspace(-length / 2, length / 2, max(2, int(length / 3.5) + 1)):
                parts.append(box((0.6, 0.25, 0.15), (x, 0, 0.075), 0.4))
    return merge(parts)


def furniture(rng: np.random.Generator, kind: Optional[str] = None) -> Surface:
    """Bin, bollard, barrier, bench, utility cabinet or crate (background)."""
    kind = kind or str(rng.choice(['bin', 'bollard', 'barrier', 'jersey', 'bench', 'cabinet',
                                   'crate']))
    shade = float(rng.uniform(0.05, 0.7))
    if kind == 'bin':
        height = rng.uniform(0.8, 1.3)
        if rng.random() < 0.5:
            return limb((0, 0, 0), (0, 0, height), rng.uniform(0.2, 0.35), shade, resolution=12)
        size = rng.uniform(0.5, 1.2)
        return box((size, rng.uniform(0.5, 0.8), height), (0, 0, height / 2), shade)
    if kind == 'bollard':
        height = rng.uniform(0.6, 1.1)
        return limb((0, 0, 0), (0, 0, height), rng.uniform(0.06, 0.13), shade)
    if kind == 'barrier':
        length = rng.uniform(1.2, 3.0)
        return merge([box((0.06, 0.5, 0.9), (x, 0, 0.45), shade) for x in
                      (-length / 2, length / 2)] +
                     [box((length, 0.04, 0.25), (0, 0, 0.85), 0.8),
                      box((length, 0.04, 0.2), (0, 0, 0.4), 0.8)])
    if kind == 'jersey':
        length = rng.uniform(2.0, 4.0)
        return merge([box((length, 0.6, 0.3), (0, 0, 0.15), 0.5),
                      box((length, 0.25, 0.55), (0, 0, 0.3 + 0.275), 0.5)])
    if kind == 'bench':
        length = rng.uniform(1.5, 2.2)
        parts = [box((length, 0.45, 0.06), (0, 0, 0.45), shade),
                 box((length, 0.05, 0.4), (0, -0.22, 0.7), shade)]
        parts += [box((0.06, 0.45, 0.45), (x, 0, 0.225), 0.2) for x in
                  (-length / 2 + 0.1, length / 2 - 0.1)]
        return merge(parts)
    if kind == 'cabinet':
        size = (rng.uniform(0.4, 1.2), rng.uniform(0.25, 0.5), rng.uniform(0.9, 1.6))
        return box(size, (0, 0, size[2] / 2), shade)
    size = rng.uniform(0.3, 1.6, 3)
    return box(size, (0, 0, size[2] / 2), shade)


def building(rng: np.random.Generator, length: float, depth: float,
             height: Optional[float] = None) -> Surface:
    """
    Build a block along x; its facade faces -y at y = 0, the block extends to +y.

    The facade is cut into bays set back 0-0.8 m (recesses, entrances),
    with windows (mostly no return) on every floor and shop windows on some
    ground floors; some shops have an awning 2.4-3.2 m up and some upper
    floors balconies (a slab with a parapet 0.8-1.6 m out), the floating
    pieces a facade shows beside its glass.
    """
    height = height or rng.uniform(3.5, 16.0)
    shade = float(rng.uniform(0.15, 0.6))
    parts = []
    x = -length / 2
    while x < length / 2 - 0.5:
        bay = min(rng.uniform(2.5, 7.0), length / 2 - x)
        setback = rng.uniform(0.2, 0.8) if rng.random() < 0.3 else 0.0
        parts.append(box((bay, depth - setback, height), (x + bay / 2, (depth + setback) / 2,
                                                          height / 2), shade))
        floor_h = rng.uniform(2.8, 3.4)
        shop = rng.random() < 0.4
        for floor in range(int(height / floor_h)):
            z0 = floor * floor_h
            if floor == 0 and shop:
                parts.append(box((bay * 0.8, 0.04, 2.0), (x + bay / 2, setback - 0.03, 1.3), 0.1,
                                 WINDOW))
                if rng.random() < 0.4:  # awning
                    out = rng.uniform(0.8, 2.0)
                    parts.append(box((bay * 0.85, out, 0.1), (x + bay / 2, setback - out / 2,
                                                              rng.uniform(2.4, 3.2)),
                                     float(rng.uniform(0.2, 0.7))))
                continue
            if floor > 0 and rng.random() < 0.2:  # balcony: slab and parapet
                out, wide = rng.uniform(0.8, 1.6), min(bay * 0.8, rng.uniform(1.5, 4.0))
                parts += [box((wide, out, 0.15), (x + bay / 2, setback - out / 2, z0), shade),
                          box((wide, 0.06, 1.0), (x + bay / 2, setback - out, z0 + 0.5),
                              shade)]
            count = max(1, int(bay / rng.uniform(2.0, 3.0)))
            for k in range(count):
                cx = x + (k + 0.5) * bay / count
                parts.append(box((min(1.4, bay / count * 0.6), 0.04, 1.4),
                                 (cx, setback - 0.03, z0 + 1.6), 0.1, WINDOW))
        x += bay
    return merge(parts)


#: kind -> (builder, class id); each builder is called with ``rng`` only.
KINDS: dict[str, tuple[Callable[[np.random.Generator], Surface], int]] = {
    'car': (car, CAR), 'truck': (truck, TRUCK), 'pedestrian': (person, PEDESTRIAN),
    'cyclist': (cyclist, CYCLIST), 'pole': (pole, POLE), 'tree': (tree, TREE),
    'bicycle': (bicycle, BACKGROUND), 'bush': (bush, BACKGROUND),
    'hedge': (hedge, BACKGROUND), 'wall': (wall, BACKGROUND), 'fence': (fence, BACKGROUND),
    'furniture': (furniture, BACKGROUND), 'shrubbery': (shrubbery, BACKGROUND),
    'billboard': (billboard, BACKGROUND),
}
