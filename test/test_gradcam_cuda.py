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
