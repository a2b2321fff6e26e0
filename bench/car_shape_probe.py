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
Does the model care how a car's body is shaped? The same cars, box and curved.

The simulator's cars are boxes; real cars are rounded, their windscreens
lean back and their side windows lean in. If the model had learned the
boxes' flat faces and sharp edges, it would name curved cars worse, and a
simulator with curved cars (``sim.objects.car(..., body='curved')``) would
be a way to a model that names real cars better. Each of ``--cars`` cars is
built twice from one seed (same kind, size, paint, wheels; only the body
and cabin differ), put alone on flat ground at the same range, bearing and
heading (drawn from a stream of their own, so that neither depends on the
kind or the paint), scanned by one sensor preset (in turn), and run through
the scene pipeline. A car counts as found when one cluster holds at least
half of its returns; one not found is not named car. Prints, per body and
range band, how many are named car (at least ``min_confidence``, no rule)
of those found, and the median confidence of the ones the model calls car;
then, over all cars, how many are named car with both bodies, and with only
one of them.

    .venv/bin/python bench/car_shape_probe.py [--cars 400] [--model M.pt]
"""

import argparse
import math
import sys
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.sim import objects, surfaces
from pointcam_ros.sim.scenes import Scene, SceneObject
from pointcam_ros.sim.simulator import scan, SENSORS

#: m; range bands of the report.
BANDS = (5.0, 20.0, 40.0, 60.0)


def shown_as(pipeline: ScenePipeline, surface: surfaces.Surface,
             pose: tuple[float, float, float], sensor: str, mount: float,
             seed: int) -> Optional[tuple[bool, float]]:
    """
    Scan one car alone; return (named car, the confidence of "car") for its main cluster.

    ``pose`` (x, y, yaw) in the sensor's frame (m, m, rad), ``mount`` the
    sensor's height above the ground (m); None when no cluster holds
    half of the car's returns (too far or too few). The confidence is NaN
    when the model names another class.
    """
    x, y, yaw = pose
    scene = Scene(ground=surfaces.box((240, 240, 0.1), (0, 0, -0.05)), kind='open', objects=[
        SceneObject(0, objects.CAR, surface.moved(yaw, (x, y, 0.0)), np.array([x, y, 0.0]), yaw,
                    'car')])
    xyz, object_id, _ = scan(scene, SENSORS[sensor], seed, mount_height=mount).flat()
    out = pipeline.process(xyz)
    ids = out.object_id[object_id == 0]
    ids = ids[ids >= 0]
    if len(ids) == 0:
        return None
    values, counts = np.unique(ids, return_counts=True)
    if counts.max() * 2 < (object_id == 0).sum():
        return None
    found = out.objects[int(values[np.argmax(counts)])]
    is_car = found.class_name == 'car'
    return is_car and not found.unknown, found.confidence if is_car else math.nan


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print how the model names the same cars with either body."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--cars', type=int, default=400)
    parser.add_argument('--seed', type=int, default=9_000_000, help='seed of the first car')
    parser.add_argument('--model', default='', help="checkpoint ('' = the shipped model)")
    args = parser.parse_args(argv)
    pipeline = ScenePipeline(PipelineConfig(device='cpu', model_path=args.model))
    sensors = sorted(SENSORS)
    results: dict = {body: [] for body in objects.CAR_BODIES}  # (range, named car, confidence)
    pairs = []  # named car (found and named), per body, for every car
    for k in range(args.cars):
        seed = args.seed + k
        rng = np.random.default_rng([seed, 1])  # the pose: not the car's own draws
        distance = float(rng.uniform(BANDS[0], BANDS[-1]))
        bearing, heading = rng.uniform(-math.pi, math.pi, 2)
        pose = (distance * math.cos(bearing), distance * math.sin(bearing), float(heading))
        mount = float(rng.uniform(1.6, 2.0))
        named = []
        for body in objects.CAR_BODIES:
            surface = objects.car(np.random.default_rng(seed), body=body)
            seen = shown_as(pipeline, surface, pose, sensors[k % len(sensors)], mount, seed)
            if seen is not None:
                results[body].append((distance, *seen))
            named.append(seen is not None and seen[0])
        pairs.append(tuple(named))
    for body, rows in results.items():
        table = np.array(rows, float).reshape(-1, 3)
        parts = []
        for low, high in zip(BANDS[:-1], BANDS[1:]):
            band = table[(table[:, 0] >= low) & (table[:, 0] < high)]
            confidences = band[np.isfinite(band[:, 2]), 2]  # of the ones called car
            median = float(np.median(confidences)) if len(confidences) else math.nan
            parts.append(f'{low:g}-{high:g} m {int(band[:, 1].sum())}/{len(band)} '
                         f'(median {median:.3f})')
        print(f'{body:7s} named car {int(table[:, 1].sum())}/{len(table)}: ' + ', '.join(parts))
    print(f'of {len(pairs)} cars: named car with both bodies {sum(a and b for a, b in pairs)}, '
          f'only as a box {sum(a and not b for a, b in pairs)}, '
          f'only curved {sum(b and not a for a, b in pairs)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
