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

"""The CUDA path gives the CPU path's results (skipped without a GPU)."""

from pointcam_ros.explain.gradcam import EXPLAINERS, make_explainer
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def _model_and_batch(dtype: torch.dtype):
    torch.manual_seed(0)
    model = PointNetClassifier(PointNetConfig(num_classes=6, feature_transform=True))
    points = torch.randn(16, 3, 512)
    mask = torch.ones(16, 512, dtype=torch.bool)
    mask[3, 200:] = False
    return model.to(dtype).eval(), points.to(dtype), mask


@pytest.mark.parametrize('name', EXPLAINERS)
def test_cuda_matches_cpu_in_float64(name):
    # In float64 both devices pick the same arg-max point for every channel, so every
    # method agrees to rounding. (In float32, TF32 convolutions and other reduction
    # orders flip near-ties between two points of almost equal activation: HiResCAM,
    # XGrad-CAM and occlusion then move credit between those points; seen on an H200.)
    model, points, mask = _model_and_batch(torch.float64)
    cpu = make_explainer(name, model)(points, mask)
    gpu = make_explainer(name, model.cuda())(points.cuda(), mask.cuda())
    assert gpu.cam.device.type == 'cuda'
    torch.testing.assert_close(gpu.logits.cpu(), cpu.logits, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gpu.saliency.cpu(), cpu.saliency, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('name', ['gradcam', 'gradcam++'])
def test_cuda_float32_pooled_gradient_methods_match_cpu(name):
    # Grad-CAM and Grad-CAM++ weigh whole channels, so float32 noise stays small.
    model, points, mask = _model_and_batch(torch.float32)
    cpu = make_explainer(name, model)(points, mask)
    gpu = make_explainer(name, model.cuda())(points.cuda(), mask.cuda())
    torch.testing.assert_close(gpu.logits.cpu(), cpu.logits, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(gpu.saliency.cpu(), cpu.saliency, rtol=1e-3, atol=1e-3)


CAM_METHODS = ('gradcam', 'gradcam++', 'xgradcam', 'hirescam')


def _objects(batch: int, dtype: torch.dtype, width: int = 256, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(batch, 3, width, generator=gen).to(dtype)
    mask = torch.ones(batch, width, dtype=torch.bool)
    for b in range(0, batch, 3):
        mask[b, width // 2 + b % 7:] = False
    return points.cuda(), mask.cuda()


@pytest.mark.parametrize('name', CAM_METHODS)
def test_cuda_graphs_match_eager_cuda_in_float64(name):
    model, _, _ = _model_and_batch(torch.float64)
    model.cuda()
    graphed = make_explainer(name, model)
    eager = make_explainer(name, model, buckets=None, cuda_graphs=False)
    assert graphed.runner.buckets_for(torch.device('cuda')) == (1, 8, 32, 64, 128)
    for batch in (1, 5, 8, 33, 64, 130):
        points, mask = _objects(batch, torch.float64, seed=batch)
        for m in (None, mask):
            got, want = graphed(points, m), eager(points, m)
            for field in ('cam', 'saliency', 'logits', 'weights'):
                torch.testing.assert_close(getattr(got, field), getattr(want, field),
                                           rtol=1e-9, atol=1e-12, msg=field)
            assert torch.equal(got.target, want.target)
    keys = {key[0] for key in graphed.runner._graphs}
    assert keys == {1, 8, 64, 128}  # 130 objects ran as chunks of 128 and 2 (bucket 8)


def test_cuda_graph_results_survive_the_next_call_and_follow_new_weights():
    model, _, _ = _model_and_batch(torch.float32)
    model.cuda()
    explainer = make_explainer('gradcam', model)
    first_points, _ = _objects(6, torch.float32, seed=1)
    first = explainer(first_points)
    kept = first.cam.clone()
    explainer(_objects(6, torch.float32, seed=2)[0])  # same graph, other inputs
    assert torch.equal(first.cam, kept)
    # New weights loaded in place are read by the captured graph.
    torch.manual_seed(5)
    other = PointNetClassifier(PointNetConfig(num_classes=6, feature_transform=True))
    model.load_state_dict(other.state_dict())
    reloaded = explainer(first_points)
    eager = make_explainer('gradcam', model, buckets=None, cuda_graphs=False)(first_points)
    # float32 convolutions run in TF32 on the GPU, with algorithms that may differ
    # between the padded and the unpadded batch: compare at TF32's precision.
    torch.testing.assert_close(reloaded.logits, eager.logits, rtol=2e-3, atol=2e-3)
    assert not torch.allclose(reloaded.logits, first.logits)
    # Moving the parameters (here: to float64) drops the graphs and captures again.
    model.double()
    moved = explainer(first_points.double())
    assert moved.cam.dtype == torch.float64
    assert all(key[2] == torch.float64 for key in explainer.runner._graphs)


def test_cuda_warm_up_captures_every_bucket():
    model, _, _ = _model_and_batch(torch.float32)
    explainer = make_explainer('gradcam', model.cuda())
    assert explainer.warm_up(128) == 5
    assert sorted(key[0] for key in explainer.runner._graphs) == [1, 8, 32, 64, 128]
    points, _ = _objects(20, torch.float32, width=128, seed=4)
    eager = make_explainer('gradcam', model, buckets=None, cuda_graphs=False)(points)
    scale = eager.cam.abs().max()
    torch.testing.assert_close(explainer(points).cam / scale, eager.cam / scale,
                               rtol=2e-3, atol=2e-3)
    assert len(explainer.runner._graphs) == 5  # no new capture


def test_cuda_closed_form_under_inference_mode_matches_autograd():
    model, _, _ = _model_and_batch(torch.float64)
    model.cuda()
    points, mask = _objects(12, torch.float64, seed=3)
    explainer = make_explainer('gradcam', model)
    with torch.inference_mode():
        got = explainer(points, mask)  # captures the graph in inference mode
    want = make_explainer('gradcam', model, gradients='autograd')(points, mask)
    torch.testing.assert_close(got.cam, want.cam, rtol=1e-9, atol=1e-12)
    again = explainer(points, mask)  # replays it outside inference mode
    torch.testing.assert_close(again.cam, want.cam, rtol=1e-9, atol=1e-12)
