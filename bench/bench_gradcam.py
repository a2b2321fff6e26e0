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
Grad-CAM speed: batched engine vs the per-object loop with module hooks.

Prints ms per batch for B objects x N points with the default PointNet
architecture (PointNetConfig defaults: Qi et al.'s widths, input T-Net) or,
with --shipped, the narrower architecture of the shipped model, in eval
mode, float32, on CPU or CUDA. The naive baseline is what most
tutorials do: for each object, a forward hook captures A, backward() of the
target logit fills A.grad, alpha = A.grad.mean.

    .venv/bin/python bench/bench_gradcam.py [--device cuda] [--batches 1 8 32 64]
"""

import argparse
import time

from machine import describe
from pointcam_ros.explain.gradcam import GradCAM
from pointcam_ros.model.checkpoint import load_checkpoint
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
import torch


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
    return torch.cat(cams)


def _time_ms(func, device, repeats, warmup=2):
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
    return 1e3 * times[len(times) // 2]


def main():
    """Run the sweep and print a table."""
    parser = argparse.ArgumentParser(description='Grad-CAM engine benchmark')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 8, 32, 64])
    parser.add_argument('--points', type=int, nargs='+', default=[256, 512, 1024])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--shipped', action='store_true',
                        help="use the shipped model's (narrower) architecture instead")
    parser.add_argument('--naive-max-batch', type=int, default=64,
                        help='skip the slow naive loop above this batch size')
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.shipped:
        model = load_checkpoint(None, device).model
    else:
        model = PointNetClassifier(PointNetConfig(num_classes=8)).to(device).eval()
    print(f'architecture: {model.config}')
    engine = GradCAM(model)
    print(f'device: {describe(args.device)}')
    check = torch.randn(4, 3, 256, device=device)
    diff = (engine(check).cam - naive_gradcam(model, check)).abs().max().item()
    scale = naive_gradcam(model, check).abs().max().item()
    print(f'engine vs naive loop on 4x256: max |diff| {diff:.2e} (CAM max {scale:.2e})')
    print(f"{'B':>4} {'N':>5} {'engine ms':>10} {'naive loop ms':>14} {'speed-up':>9}")
    for num in args.points:
        for batch in args.batches:
            points = torch.randn(batch, 3, num, device=device)
            fast = _time_ms(lambda: engine(points), device, args.repeats)
            if batch <= args.naive_max_batch:
                slow = _time_ms(lambda: naive_gradcam(model, points), device,
                                max(1, args.repeats // 2), warmup=1)
                print(f'{batch:>4} {num:>5} {fast:>10.2f} {slow:>14.2f} {slow / fast:>8.1f}x')
            else:
                print(f'{batch:>4} {num:>5} {fast:>10.2f} {"-":>14} {"-":>9}')


if __name__ == '__main__':
    main()
