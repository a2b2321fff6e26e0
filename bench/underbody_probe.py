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
What a row of returns from under a car does to a model's answer.

Real cars return beams from their underside (floor pan, tank, exhaust),
0.1-0.35 m above the road and 0.5-1.5 m inside their outline, where a car
drawn as one box returns nothing. Two measurements:

* ``--real DIR`` (the real-data folder): every labelled car of the
  development scans classified on its own points (``bench/real_crops.py``),
  then without its points
  less than ``--low`` m above the ground. A car that the model names only
  once its lowest returns are gone is one that those returns mislead.
* ``--data SET.npz`` (a range-cut simulated set, ``pointcam_dataset sim``):
  its cars of at least 60 points classified as they are, then with
  ``--rows`` returns added 0.16-0.25 m above the ground, 0.4-1.5 m behind
  the face the sensor sees, as real cars show them.

Prints, per measurement and model, how many cars the model names "car"
with at least ``min_confidence``, and how many it calls background.

    .venv/bin/python bench/underbody_probe.py --real ../shared/realdata --data test.npz
    .venv/bin/python bench/underbody_probe.py --real ../shared/realdata --model '' M.pt
"""

import argparse
from pathlib import Path
import sys
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.learn.dataset import load_dataset
from pointcam_ros.perception.pipeline import ScenePipeline

sys.path.insert(0, str(Path(__file__).parent))
from real_crops import classify, labelled_road_users  # noqa: E402  (bench/real_crops.py)

#: Points (x, y, z) and their heights above the ground: one labelled car.
Car = tuple[np.ndarray, np.ndarray]


def real_cars(root: Path, config: PipelineConfig) -> list[Car]:
    """Return the labelled cars of ≥ 30 visible points of the real-data folder ``root``."""
    return [(crop.xyz, crop.height) for crop in labelled_road_users(root, config)
            if crop.name == 'car']


def with_underbody(cars: list[Car], rows: int, seed: int = 0) -> list[Car]:
    """Return ``cars`` with ``rows`` returns each from under the body (see the module)."""
    rng = np.random.default_rng(seed)
    out = []
    for xyz, height in cars:
        center = xyz.mean(axis=0)
        azimuth = np.arctan2(center[1], center[0])
        ahead = np.array([np.cos(azimuth), np.sin(azimuth)])
        across = np.array([-ahead[1], ahead[0]])
        depth, side = xyz[:, :2] @ ahead, xyz[:, :2] @ across
        ground = float(np.median(xyz[:, 2] - height))
        lift = rng.uniform(0.16, 0.25, rows)
        spot = ((depth.min() + rng.uniform(0.4, 1.5, rows))[:, None] * ahead
                + (np.median(side) + rng.uniform(-0.6, 0.6, rows))[:, None] * across)
        added = np.c_[spot, ground + lift].astype(np.float32)
        out.append((np.r_[xyz, added], np.r_[height, lift.astype(np.float32)]))
    return out


def named_car(pipeline: ScenePipeline, cars: list[Car]) -> tuple[int, int]:
    """Return how many ``cars`` the pipeline's model names car (≥ min_confidence), background."""
    names, confidence = classify(pipeline, cars)
    names = np.asarray(names)
    car = (names == 'car') & (confidence >= pipeline.config.min_confidence)
    return int(car.sum()), int((names == 'background').sum())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the two measurements for each model."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--real', type=Path, help='the real-data folder (../shared/realdata)')
    parser.add_argument('--data', type=Path, help='a range-cut simulated data set (.npz)')
    parser.add_argument('--model', nargs='+', default=[''],
                        help="checkpoints ('' = the shipped model)")
    parser.add_argument('--low', type=float, default=0.3)
    parser.add_argument('--rows', type=int, default=12)
    parser.add_argument('--max-cars', type=int, default=400)
    args = parser.parse_args(argv)
    if args.real is None and args.data is None:
        parser.error('give --real, --data or both')
    base = PipelineConfig(device='cpu')
    real = real_cars(args.real, base) if args.real else []
    sim: list[Car] = []
    if args.data:
        data = load_dataset(args.data)
        car = data.class_names.index('car')
        for k in np.flatnonzero((data.labels == car) & (data.point_counts() >= 60)):
            points = data.points[k]
            sim.append((points[:, :3], points[:, 3]))
            if len(sim) == args.max_cars:
                break
    for model in args.model:
        pipeline = ScenePipeline(PipelineConfig(device='cpu', model_path=model))
        tag = model or 'shipped model'
        if real:
            cut = [(x[h >= args.low], h[h >= args.low]) for x, h in real]
            for what, cars in (('as labelled', real), (f'below {args.low} m removed', cut)):
                right, background = named_car(pipeline, cars)
                print(f'{tag}: real cars {what}: car {right}/{len(cars)}, '
                      f'background {background}')
        if sim:
            for what, cars in (('as simulated', sim),
                               (f'+ {args.rows} returns under the body',
                                with_underbody(sim, args.rows))):
                right, background = named_car(pipeline, cars)
                print(f'{tag}: simulated cars {what}: car {right}/{len(cars)}, '
                      f'background {background}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
