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
Accuracy and saliency faithfulness (``pointcam_eval``).

Point-dropping curves as in Zheng et al. (ICCV 2019): for each object,
remove the k % most salient points, k % random points, or the k % least
salient points (k = 5..50), and measure accuracy and the probability of the
true class at each k. As in the paper, points go a few at a time and the
saliency is recomputed on the remaining points before each step (Zheng et
al. drop 5 of 1,024 points per step, 0.5 %; ``--step``), unless
``--one-shot``. The step matters for gradient saliency, which is only
valid near the current points (the README has figures for both). Points
are removed through the padding mask, so the network truly never sees
them. Saliency is computed for the true class.
"""

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.common.atomic import write_text_atomic
from pointcam_ros.explain.gradcam import EXPLAINERS, make_explainer
from pointcam_ros.learn.batching import make_batch
from pointcam_ros.learn.dataset import load_dataset, ObjectDataset
from pointcam_ros.learn.metrics import confusion_matrix, metrics
from pointcam_ros.model.checkpoint import load_checkpoint, LoadedModel
from pointcam_ros.model.device import DEVICE_HELP, resolve_device
import torch
from tqdm import tqdm

DROP_FRACTIONS = tuple(k / 100 for k in range(5, 55, 5))
ORDERS = ('most_salient', 'random', 'least_salient')


def _drop_more(keep: torch.Tensor, saliency: torch.Tensor, count: int, order: str,
               generator: torch.Generator) -> torch.Tensor:
    """Drop ``count`` more of the kept points (``keep`` (B, N) bool), chosen by ``order``."""
    noise = torch.rand(saliency.shape, generator=generator).to(saliency.device)
    if order == 'random':
        score = noise
    elif order == 'most_salient':
        score = saliency + 1e-6 * noise  # ties (e.g. many zeros) broken at random
    else:
        score = -saliency + 1e-6 * noise
    score = score.masked_fill(~keep, float('-inf'))
    dropped = score.topk(count, dim=1).indices
    return keep.clone().scatter_(1, dropped, False)


def normalized_auc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid area under ``y(x)`` divided by the x range (numpy 1.x and 2.x alike)."""
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return area / float(x[-1] - x[0])


def faithfulness(loaded: LoadedModel, dataset: ObjectDataset, method: str,
                 batch_size: int = 64, seed: int = 0, progress: bool = True,
                 iterative: bool = True, step: float = 0.005) -> dict:
    """
    Point-dropping curves for one explainer; returns accuracy/probability per k.

    ``iterative`` (as in Zheng et al.): the saliency is recomputed on the
    remaining points before each further ``step`` share of the points
    (at least one point) is dropped; otherwise all drops follow the
    saliency of the full object (one shot). Random dropping needs no steps.
    """
    if not 0.0 < step <= 0.5:
        raise ValueError(f'step must be in (0, 0.5], got {step}')
    device = next(loaded.model.parameters()).device
    explainer = make_explainer(method, loaded.model, loaded.class_names)
    rng = np.random.default_rng(seed)
    # One generator per order: the random curve is the same for every method and step.
    generators = {order: torch.Generator().manual_seed(seed + k) for k, order in enumerate(ORDERS)}
    correct = {o: np.zeros(len(DROP_FRACTIONS)) for o in ORDERS}
    prob = {o: np.zeros(len(DROP_FRACTIONS)) for o in ORDERS}
    base_correct, base_prob = 0.0, 0.0
    for start in tqdm(range(0, len(dataset), batch_size), desc=method, unit='batch',
                      disable=not progress, leave=False):
        points = make_batch(dataset.points[start:start + batch_size], loaded.num_points,
                            loaded.normalization, rng).to(device)
        target = torch.from_numpy(dataset.labels[start:start + batch_size]).to(device)
        result = explainer(points, target=target)
        base_correct += float((result.predicted == target).sum())
        base_prob += float(result.probabilities.gather(1, target[:, None]).sum())
        num = points.shape[2]
        per_step = max(1, int(round(step * num)))
        for order in ORDERS:
            keep = torch.ones(points.shape[0], num, dtype=torch.bool, device=device)
            saliency, dropped = result.saliency, 0
            stepwise = iterative and order != 'random'
            for i, fraction in enumerate(DROP_FRACTIONS):
                goal = int(round(fraction * num))
                while dropped < goal:
                    count = min(per_step, goal - dropped) if stepwise else goal - dropped
                    if stepwise and dropped > 0:
                        saliency = explainer(points, keep, target=target).saliency
                    keep = _drop_more(keep, saliency, count, order, generators[order])
                    dropped += count
                with torch.no_grad():
                    probs = torch.softmax(loaded.model(points, keep), dim=1)
                correct[order][i] += float((probs.argmax(dim=1) == target).sum())
                prob[order][i] += float(probs.gather(1, target[:, None]).sum())
    total = len(dataset)
    curves = {}
    for order in ORDERS:
        acc = correct[order] / total
        p = prob[order] / total
        ks = np.array(DROP_FRACTIONS)
        curves[order] = {'accuracy': acc.tolist(), 'target_probability': p.tolist(),
                         'auc_accuracy': normalized_auc(ks, acc),
                         'auc_probability': normalized_auc(ks, p)}
    return {'method': method, 'objects': total, 'drop_fractions': list(DROP_FRACTIONS),
            'iterative': iterative, 'step': step if iterative else None,
            'accuracy_no_drop': base_correct / total,
            'target_probability_no_drop': base_prob / total, 'curves': curves}


def plot_curves(results: Sequence[dict], path: Path) -> None:
    """Write a PNG with accuracy vs. fraction dropped, one panel per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.6), squeeze=False)
    for ax, result in zip(axes[0], results):
        ks = [100 * k for k in result['drop_fractions']]
        for order, style in zip(ORDERS, ('r-o', 'k--', 'g-s')):
            ax.plot(ks, result['curves'][order]['accuracy'], style, ms=3,
                    label=order.replace('_', ' '))
        ax.set_title(result['method'])
        ax.set_xlabel('% of points dropped')
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('accuracy')
    axes[0][0].legend(loc='lower left', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``pointcam_eval``: accuracy plus point-dropping faithfulness, as JSON and PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--data', type=Path, required=True, help='data set (.npz)')
    parser.add_argument('--model', default='', help='checkpoint (default: shipped model)')
    parser.add_argument('--methods', nargs='+', default=['gradcam'],
                        choices=EXPLAINERS)
    parser.add_argument('--max-objects', type=int)
    parser.add_argument('--one-shot', action='store_true',
                        help='drop by the full-object saliency only (default: recompute '
                        'the saliency after every step, as Zheng et al.)')
    parser.add_argument('--step', type=float, default=0.5,
                        help='percent of the points dropped per step (default: %(default)s, '
                        'as Zheng et al.: 5 of 1,024 points; at least one point)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--out', type=Path, default=Path('eval'), help='output folder')
    parser.add_argument('--device', default='auto', help=DEVICE_HELP)
    args = parser.parse_args(argv)
    if not 0 < args.step <= 50:
        parser.error(f'--step must be a percentage in (0, 50], got {args.step}')
    device = resolve_device(args.device)
    loaded = load_checkpoint(args.model or None, device)
    dataset = load_dataset(args.data, args.max_objects)
    args.out.mkdir(parents=True, exist_ok=True)
    from pointcam_ros.learn.metrics import predict
    predicted = predict(loaded.model, dataset, loaded.num_points, loaded.normalization, device)
    report = {'model': loaded.path, 'data': str(args.data),
              'accuracy': metrics(confusion_matrix(dataset.labels, predicted,
                                                   len(dataset.class_names)),
                                  dataset.class_names),
              'faithfulness': [faithfulness(loaded, dataset, m, batch_size=args.batch_size,
                                            iterative=not args.one_shot, step=args.step / 100)
                               for m in args.methods]}
    write_text_atomic(args.out / 'eval.json', json.dumps(report, indent=2))
    plot_curves(report['faithfulness'], args.out / 'faithfulness.png')
    print(f"accuracy {report['accuracy']['accuracy']:.4f} on {len(dataset)} objects")
    print(f"{'method':<10} {'k':>4} {'top-k drop':>10} {'random':>8} {'least':>8}")
    for result in report['faithfulness']:
        i = result['drop_fractions'].index(0.2)
        c = result['curves']
        print(f"{result['method']:<10} {'20%':>4} "
              f"{c['most_salient']['accuracy'][i]:>10.3f} {c['random']['accuracy'][i]:>8.3f} "
              f"{c['least_salient']['accuracy'][i]:>8.3f}   (no drop "
              f"{result['accuracy_no_drop']:.3f})")
    print(f'wrote {args.out}/eval.json and {args.out}/faithfulness.png')
    return 0
