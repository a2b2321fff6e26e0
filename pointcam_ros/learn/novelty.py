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
Fit a model's novelty statistics on simulated scenes and store them in its checkpoint.

``pointcam_novelty --model IN.pt --out OUT.pt`` runs the scene pipeline
(its defaults but ``novelty_check: disabled``, the model ``IN.pt``, on the CPU)
on ``--scenes`` simulated scenes from ``--first-seed`` (street and campus
by seed parity, the sensor presets in turn by seed), takes the penultimate
features of every cluster it reports (:func:`cluster_features`) with the
class of most of the cluster's points (background when no class holds half
of them), and fits
:class:`~pointcam_ros.model.novelty.NoveltyStats` on every second cluster.
On the others, the threshold is the ``--quantile`` percentile of the
scores of the road users the pipeline shows with their right class: at
most ``100 - quantile`` % of such road users turn unknown. ``OUT.pt`` is
``IN.pt`` with the statistics added (weights, calibration and metadata
unchanged; ``info.novelty`` records how they were fitted). The default
seeds (5,100,000-5,100,299) are used by no benchmark or data set of the
project.
"""

import argparse
import dataclasses
import math
from pathlib import Path
import sys
from typing import Any, Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.common.results import SceneResult
from pointcam_ros.learn.dataset_cli import check_outputs, Output
from pointcam_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pointcam_ros.model.novelty import (
    fit_stats, NoveltyStats, penultimate_features, penultimate_width, pooled_features,
    score_numpy)
from pointcam_ros.model.preprocess import GROUND_NORMALIZATIONS
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.rules import ROAD_USERS
from pointcam_ros.perception.segmentation import segment_scene
from pointcam_ros.perception.stages import NumpyStages, Segments
from pointcam_ros.sim.simulator import CLASS_NAMES, random_scene, scan, SENSORS
import torch

#: A cluster's class is that of most of its points if they are at least this share.
MAJORITY = 0.5
#: Default first seed of the fitting scenes (no benchmark or data set uses 5,100,000-5,100,299).
FIRST_SEED = 5_100_000
#: Objects per forward pass of :func:`cluster_features`.
CHUNK = 256
#: Fewest fitted clusters per feature (a covariance of D features needs many more than D).
MIN_CLUSTERS_PER_FEATURE = 5


def cluster_features(pipeline: ScenePipeline, xyz: np.ndarray, result: SceneResult
                     ) -> np.ndarray:
    """
    Penultimate features ``(K, D)`` float64 of the K clusters of one scan's ``result``.

    ``xyz`` (M, 3) float32 finite: the points ``result`` was computed on. The
    clusters are drawn and normalised by the numpy backend's own ``sample``
    stage (one generator seeded with the pipeline's seed, the clusters in
    order), and the features are the input of ``model.classifier`` (one
    plain forward pass). These are the pipeline's own draws where its first
    pass made the clusters; elsewhere (clusters that split and merge
    changed, the torch backend's generator) the draws differ, and so do the
    features, a little: the repeats that fill a small cluster to
    ``num_points`` move its centroid.
    """
    loaded, config = pipeline.loaded, pipeline.config
    width = penultimate_width(loaded.model)
    if width is None:
        raise ValueError(f'{type(loaded.model).__name__} has no Linear classifier: no '
                         'features to fit novelty statistics on')
    count = len(result.objects)
    if count == 0:
        return np.zeros((0, width))
    height = (segment_scene(xyz, config).height
              if loaded.normalization in GROUND_NORMALIZATIONS else np.zeros(len(xyz), np.float32))
    stages = NumpyStages(config, loaded, pipeline.explainer, pipeline.device, count)
    samples = stages.sample(Segments(xyz, result.object_id, count, height))
    features = np.empty((count, width))
    for size in np.unique(samples.sizes):  # one batch per sample count, as the pipeline
        group = np.flatnonzero(samples.sizes == size)
        for lo in range(0, len(group), CHUNK):
            part = group[lo:lo + CHUNK]
            batch = torch.from_numpy(np.stack([samples.inputs[k] for k in part]))
            pooled = pooled_features(loaded.model, batch.to(pipeline.device))
            features[part] = penultimate_features(loaded.model, pooled).cpu().double().numpy()
    return features


def sim_clusters(pipeline: ScenePipeline, seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """
    Run the pipeline on simulated scenes; the features and classes of every reported cluster.

    Street scenes for even seeds, campus for odd ones, the sensor presets in
    turn by seed. Keys: ``features`` (n, D) float64, ``truth`` (n,) the class
    of most of its points (background when none holds :data:`MAJORITY`),
    ``shown`` (n,) the class shown or ``unknown``.
    """
    sensors = list(SENSORS)
    features, truth, shown = [], [], []
    for seed in seeds:
        scene = random_scene(seed, 'campus' if seed % 2 else 'street')
        xyz, _, truth_class = scan(scene, SENSORS[sensors[seed % len(sensors)]], seed).flat()
        result = pipeline.process(xyz)
        features.append(cluster_features(pipeline, xyz, result))
        for detected in result.objects:
            classes = truth_class[result.object_id == detected.object_id]
            counts = np.bincount(classes[classes >= 0], minlength=len(CLASS_NAMES))
            best = int(counts.argmax())
            truth.append(CLASS_NAMES[best] if counts[best] >= MAJORITY * len(classes)
                         else 'background')
            shown.append('unknown' if detected.unknown else detected.class_name)
    width = penultimate_width(pipeline.loaded.model)
    return {'features': np.concatenate(features) if features else np.zeros((0, width)),
            'truth': np.array(truth, dtype=object), 'shown': np.array(shown, dtype=object)}


def fit_novelty_stats(pipeline: ScenePipeline, seeds: Sequence[int], quantile: float
                      ) -> tuple[NoveltyStats, dict[str, Any]]:
    """
    Fit the statistics of ``pipeline``'s model on the clusters of ``seeds``' scenes.

    Returns the statistics and a summary (``fitted`` and ``held_out_right``
    clusters, ``threshold``), as the module docstring describes. ValueError
    when a class has no fitted cluster, when fewer than
    :data:`MIN_CLUSTERS_PER_FEATURE` clusters per feature are fitted, or
    when fewer held-out road users are shown right than the percentile
    needs (100 / (100 - quantile)).
    """
    if not 0.0 < quantile < 100.0:
        raise ValueError(f'quantile must be in (0, 100), got {quantile}')
    rows = sim_clusters(pipeline, seeds)
    names = pipeline.loaded.class_names
    unknown_truth = sorted(set(rows['truth']) - set(names))
    if unknown_truth:
        raise ValueError(f'the model has no class {unknown_truth} of the simulator')
    index = np.array([names.index(name) for name in rows['truth']], np.int64)
    fitted = np.arange(len(index)) % 2 == 0
    width = rows['features'].shape[1]
    if fitted.sum() < MIN_CLUSTERS_PER_FEATURE * width:
        raise ValueError(f'{int(fitted.sum())} clusters to fit {width} features: at least '
                         f'{MIN_CLUSTERS_PER_FEATURE * width} are needed for their covariance; '
                         'fit on more scenes')
    stats = fit_stats(rows['features'][fitted], index[fitted], len(names))
    right = (~fitted & (rows['shown'] == rows['truth'])
             & np.isin(rows['shown'], list(ROAD_USERS)))
    needed = math.ceil(round(100.0 / (100.0 - quantile), 6))
    if right.sum() < needed:
        raise ValueError(f'{int(right.sum())} held-out road users shown right: the '
                         f'{quantile:g}th percentile needs at least {needed}; fit on more '
                         'scenes')
    scores = score_numpy(stats, rows['features'][right], index[right])
    stats = dataclasses.replace(stats, threshold=float(np.percentile(scores, quantile)))
    return stats, {'fitted': int(fitted.sum()), 'held_out_right': int(right.sum()),
                   'threshold': round(stats.threshold, 4)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Fit novelty statistics and write the checkpoint with them; exit status."""
    parser = argparse.ArgumentParser(
        prog='pointcam_novelty', description=__doc__.split('\n')[1],
        epilog="docs/model.md: how the shipped model's statistics were fitted")
    parser.add_argument('--model', type=Path, required=True, help='checkpoint to read (.pt)')
    parser.add_argument('--out', type=Path, required=True, help='checkpoint to write (.pt)')
    parser.add_argument('--scenes', type=int, default=300, help='simulated scenes (default 300)')
    parser.add_argument('--first-seed', type=int, default=FIRST_SEED)
    parser.add_argument('--quantile', type=float, default=99.0,
                        help='percentile of the held-out road users shown right that sets '
                        'the threshold (default 99)')
    parser.add_argument('--force', action='store_true', help='overwrite --out')
    args = parser.parse_args(argv)
    if not 2 <= args.scenes <= 100_000:
        parser.error(f'--scenes must be in [2, 100000], got {args.scenes}')
    if not 0.0 < args.quantile < 100.0:
        parser.error(f'--quantile must be in (0, 100), got {args.quantile}')
    if args.first_seed < 0:
        parser.error(f'--first-seed must be >= 0, got {args.first_seed}')
    problem = check_outputs([Output('--out', args.out, '--out')], {'--model': args.model},
                            args.force)
    if problem:
        parser.error(problem)
    try:
        loaded = load_checkpoint(args.model, 'cpu')
        config = PipelineConfig(device='cpu', model_path=str(args.model), novelty_check='disabled')
        pipeline = ScenePipeline(config, loaded=loaded)
        seeds = range(args.first_seed, args.first_seed + args.scenes)
        stats, summary = fit_novelty_stats(pipeline, seeds, args.quantile)
        info = {**loaded.info, 'novelty': {'scenes': args.scenes, 'first_seed': args.first_seed,
                                           'quantile': args.quantile, **summary}}
        save_checkpoint(args.out, loaded.model, loaded.class_names, loaded.num_points,
                        loaded.normalization, info=info, temperature=loaded.temperature,
                        temperature_bands=loaded.temperature_bands, novelty=stats)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f'pointcam_novelty: error: {exc}', file=sys.stderr)
        return 1
    print(f"fitted on {summary['fitted']} clusters of {args.scenes} scenes from seed "
          f'{args.first_seed}; threshold {stats.threshold:.2f}, the {args.quantile:g}th '
          f"percentile of {summary['held_out_right']} held-out road users shown right; "
          f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
