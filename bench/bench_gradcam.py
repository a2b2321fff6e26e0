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
Grad-CAM speed: forward alone, closed form, CUDA graphs, autograd, the naive loop.

Prints the median ms per batch of B objects x N points, float32, eval mode,
for the default PointNet architecture (PointNetConfig defaults: Qi et al.'s
widths, input T-Net) or, with --shipped, the shipped model's narrower one:

- forward: ``model(points)`` under ``torch.no_grad`` (logits only);
  ``fwd graph``: the same captured as a CUDA graph at the same bucket
  (CUDA only);
- closed: Grad-CAM with the closed-form head gradient, eager;
- graph: the same replayed as a CUDA graph at batch buckets (the default
  on CUDA; CUDA only);
- autograd: Grad-CAM with ``torch.autograd.grad`` through the head;
- naive: per-object loop with a forward hook and ``backward()``, as most
  tutorials do (skipped above --naive-max-batch);
- ratio: Grad-CAM / forward, graph over fwd graph on CUDA, closed over
  forward on the CPU.

It also prints the floating-point operations per object of the forward pass
and of closed-form Grad-CAM (torch's FlopCounterMode: matrix products and
convolutions), which do not depend on the machine or its load.

    .venv/bin/python bench/bench_gradcam.py [--device cuda] [--batches 1 8 32 64]
"""

import argparse
import time

from machine import describe
from pointcam_ros.explain.buckets import BucketRunner
from pointcam_ros.explain.gradcam import GradCAM
from pointcam_ros.model.checkpoint import load_checkpoint
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
import torch
from torch.utils.flop_counter import FlopCounterMode


def naive_gradcam(model, points):
    """Per-object loop with a forward hook and loss.backward(), as in most tutorials."""
    cams = []
    for b in range(points.shape[0]):
        captured = {}

        def hook(module, inputs, output):
            output.retain_grad()
            captured['a'] = output

        handle = model.cam_layer.register_forward_hook(hook)
        try:
            model.zero_grad(set_to_none=True)
            logits = model(points[b:b + 1])
            logits[0, logits[0].argmax()].backward()
        finally:
            handle.remove()
        a = captured['a']
        alpha = a.grad.mean(dim=2, keepdim=True)
        cams.append(torch.relu((alpha * a).sum(dim=1)).detach())
    model.zero_grad(set_to_none=True)
    return torch.cat(cams)


def time_ms(func, device, repeats, warmup=2, stat='median'):
    """Median (or minimum) wall time of ``func()`` in ms, synchronising CUDA around each call."""
    for _ in range(warmup):
        func()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1e3 * (times[0] if stat == 'min' else times[len(times) // 2])


def main():
    """Run the sweep and print a table."""
    parser = argparse.ArgumentParser(description='Grad-CAM engine benchmark')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 8, 32, 64, 128])
    parser.add_argument('--points', type=int, nargs='+', default=[512, 1024])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--shipped', action='store_true',
                        help="use the shipped model's (narrower) architecture instead")
    parser.add_argument('--naive-max-batch', type=int, default=64,
                        help='skip the slow naive loop above this batch size')
    parser.add_argument('--stat', choices=('median', 'min'), default='median',
                        help='min is steadier on a CPU shared with other jobs')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    torch.manual_seed(0)
    if args.shipped:
        model = load_checkpoint(None, device).model.eval()
    else:
        model = PointNetClassifier(PointNetConfig(num_classes=8)).to(device).eval()
    print(f'architecture: {model.config}')
    print(f'device: {describe(args.device)}')
    closed = GradCAM(model, buckets=None, cuda_graphs=False)
    graphed = GradCAM(model)  # CUDA graphs at buckets on CUDA; plain eager on the CPU
    autograd = GradCAM(model, gradients='autograd')
    forward_graph = BucketRunner(lambda p, m, r: (model(p, m),), model, 'auto')
    channels = model.config.in_channels  # x, y, z plus the model's extra channels
    check = torch.randn(4, channels, 256, device=device)
    reference = naive_gradcam(model, check)
    scale = reference.abs().max().item()
    for label, engine in (('closed', closed), ('graph', graphed), ('autograd', autograd)):
        diff = (engine(check).cam - reference).abs().max().item()
        print(f'{label} vs naive loop on 4x256: max |diff| {diff:.2e} (CAM max {scale:.2e})')
    for num in args.points:  # operation count: independent of the machine's load
        one = check[:1, :, :1].expand(8, channels, num)
        flops = []
        for func in (lambda: model(one), lambda: closed(one)):
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                func()
            flops.append(counter.get_total_flops() / 8 / 1e9)
        print(f'FLOPs per object of {num} points: forward {flops[0]:.4f} G, closed-form '
              f'Grad-CAM {flops[1]:.4f} G (x{flops[1] / flops[0]:.4f})')
    columns = ('forward', 'fwd graph', 'closed', 'graph', 'autograd', 'naive', 'ratio')
    print(f"{'B':>4} {'N':>5} " + ' '.join(f'{c:>9}' for c in columns)
          + f'   (ms per batch, {args.stat} of {args.repeats})')

    def timed(func, repeats=args.repeats, warmup=2):
        return time_ms(func, device, repeats, warmup, args.stat)

    with torch.no_grad():
        for num in args.points:
            for batch in args.batches:
                points = torch.randn(batch, channels, num, device=device)
                none = torch.full((batch,), -1, dtype=torch.long, device=device)
                row = {'forward': timed(lambda: model(points)),
                       'closed': timed(lambda: closed(points)),
                       'autograd': timed(lambda: autograd(points))}
                if cuda:
                    row['fwd graph'] = timed(lambda: forward_graph(points, None, none))
                    row['graph'] = timed(lambda: graphed(points))
                    row['ratio'] = row['graph'] / row['fwd graph']
                else:
                    row['ratio'] = row['closed'] / row['forward']
                if batch <= args.naive_max_batch:
                    with torch.enable_grad():
                        row['naive'] = timed(lambda: naive_gradcam(model, points),
                                             max(1, args.repeats // 2), 1)
                cells = [f'{row[c]:>9.2f}' if c in row else '-'.rjust(9) for c in columns]
                print(f'{batch:>4} {num:>5} ' + ' '.join(cells), flush=True)


if __name__ == '__main__':
    main()
