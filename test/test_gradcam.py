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

"""Grad-CAM on PointNet: exactness, batching, masking and the sibling methods."""

from conftest import randomized_model
import numpy as np
from pointcam_ros.common import config
from pointcam_ros.explain.gradcam import (
    EXPLAINERS, GradCAM, make_explainer, normalize_cam, OcclusionSaliency,
    PointShiftSaliency)
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
import pytest
import torch


SMALL = PointNetConfig(num_classes=5, mlp1=(16,), mlp2=(32, 64), head=(32, 16),
                       tnet_conv=(16, 32, 64), tnet_fc=(32, 16), feature_transform=True)


@pytest.fixture(scope='module')
def model():
    return randomized_model(SMALL)


def test_hand_computed_cam_on_a_tiny_model():
    config = PointNetConfig(num_classes=2, mlp1=(3,), mlp2=(2,), head=(2,), dropout=0.0,
                            input_transform=False)
    model = PointNetClassifier(config).eval()
    with torch.no_grad():
        model.mlp1[0].conv.weight.copy_(torch.eye(3)[:, :, None])
        model.mlp2[0].conv.weight.copy_(torch.tensor([[1., 0, 0], [0, 1, 1]])[:, :, None])
        model.head[0].linear.weight.copy_(torch.eye(2))
        model.classifier.weight.copy_(torch.tensor([[2., -1], [-1, 1]]))
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Linear)):
                module.bias.zero_()
            if isinstance(module, torch.nn.BatchNorm1d):
                # Identity: (x - 0) / sqrt(var + eps) with var + eps = 1 (eps = 0 is
                # refused by torch 2.11's batch_norm even in eval mode).
                module.running_var.fill_(1.0 - module.eps)
    # Points (1,0,0), (0,2,0), (0,0,3): A_0 = [1, 0, 0], A_1 = [0, 2, 3], g = (1, 3),
    # logits = (2*1 - 3, -1 + 3) = (-1, 2), so class 1 is predicted.
    points = torch.tensor([[[1., 0, 0], [0, 2, 0], [0, 0, 3]]]).transpose(1, 2)
    result = GradCAM(model)(points)
    torch.testing.assert_close(result.logits, torch.tensor([[-1., 2.]]))
    assert result.target.tolist() == [1]
    # alpha = W_c[1] / N = (-1/3, 1/3); CAM = ReLU(-A_0/3 + A_1/3) = [0, 2/3, 1].
    torch.testing.assert_close(result.weights, torch.tensor([[-1 / 3, 1 / 3]]))
    torch.testing.assert_close(result.cam, torch.tensor([[0., 2 / 3, 1.]]))
    torch.testing.assert_close(result.saliency, torch.tensor([[0., 2 / 3, 1.]]))
    # Class 0: alpha = (2/3, -1/3); CAM = ReLU([2/3, -2/3, -1]) = [2/3, 0, 0].
    other = GradCAM(model)(points, target=0)
    torch.testing.assert_close(other.cam, torch.tensor([[2 / 3, 0., 0.]]))
    torch.testing.assert_close(other.saliency, torch.tensor([[1., 0., 0.]]))


def test_matches_captum_layer_gradcam(model):
    captum = pytest.importorskip('captum.attr')
    points = torch.randn(6, 3, 200, generator=torch.Generator().manual_seed(1))
    ours = GradCAM(model)(points)
    for target in (ours.target, torch.tensor([0, 1, 2, 3, 4, 0])):
        ours = GradCAM(model)(points, target=target)
        theirs = captum.LayerGradCam(model, model.cam_layer).attribute(
            points, target=target, relu_attributions=True).squeeze(1).detach()
        scale = theirs.abs().max()
        assert scale > 0
        torch.testing.assert_close(ours.cam / scale, theirs / scale, atol=1e-5, rtol=1e-4)


def test_matches_full_autograd_with_hooks_in_float64():
    """Reference: textbook Grad-CAM with a forward hook and autograd over all of A."""
    model = randomized_model(SMALL, seed=3, dtype=torch.float64)
    points = torch.randn(4, 3, 97, dtype=torch.float64)
    captured = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        logits = model(points)
    finally:
        handle.remove()
    activations = captured[0]
    target = logits.argmax(dim=1)
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activations)
    alpha = grads.mean(dim=2)
    expected = torch.relu(torch.einsum('bc,bcn->bn', alpha, activations)).detach()
    result = GradCAM(model)(points)
    torch.testing.assert_close(result.weights, alpha, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(result.cam, expected, rtol=1e-10, atol=1e-14)


def test_alpha_matches_finite_differences():
    """alpha_k = (1/N) d y_c / d(shift of channel k at every point), by central differences."""
    model = randomized_model(SMALL, seed=5, dtype=torch.float64)
    points = torch.randn(2, 3, 64, dtype=torch.float64)
    result = GradCAM(model)(points)
    with torch.no_grad():
        activations, _ = model.local_features(points)
        eps = 1e-6
        channels = activations.shape[1]
        for b in range(2):
            c = int(result.target[b])
            fd = torch.empty(channels, dtype=torch.float64)
            for k in range(channels):
                shifted = activations[b:b + 1].clone()
                shifted[0, k] += eps
                up = model.classify(shifted.max(dim=2).values)[0, c]
                shifted[0, k] -= 2 * eps
                down = model.classify(shifted.max(dim=2).values)[0, c]
                fd[k] = (up - down) / (2 * eps) / points.shape[2]
            torch.testing.assert_close(result.weights[b], fd, rtol=1e-5, atol=1e-9)


def test_batched_equals_one_object_at_a_time(model):
    points = torch.randn(7, 3, 150, generator=torch.Generator().manual_seed(2))
    batched = GradCAM(model)(points)
    for b in range(7):
        single = GradCAM(model)(points[b:b + 1])
        torch.testing.assert_close(batched.cam[b:b + 1], single.cam, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(batched.logits[b:b + 1], single.logits, rtol=1e-5, atol=1e-6)


def test_result_of_one_object_does_not_depend_on_the_others(model):
    points = torch.randn(4, 3, 120, generator=torch.Generator().manual_seed(3))
    first = GradCAM(model)(points)
    changed = points.clone()
    changed[1:] = torch.randn(3, 3, 120) * 5
    second = GradCAM(model)(changed)
    torch.testing.assert_close(first.cam[0], second.cam[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(first.logits[0], second.logits[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', EXPLAINERS)
def test_saliency_permutes_with_the_points(model, name):
    points = torch.randn(3, 3, 90, generator=torch.Generator().manual_seed(4))
    perm = torch.randperm(90, generator=torch.Generator().manual_seed(5))
    explainer = make_explainer(name, model)
    if name == 'occlusion':
        # Region seeds start at the first point: start both runs from the same one.
        perm = torch.cat([torch.tensor([0]), perm[perm != 0]])
    base = explainer(points)
    permuted = explainer(points[:, :, perm])
    torch.testing.assert_close(permuted.saliency, base.saliency[:, perm], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(permuted.logits, base.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', EXPLAINERS)
def test_padding_changes_nothing(model, name):
    real = torch.randn(1, 3, 60, generator=torch.Generator().manual_seed(6))
    padded = torch.cat([real, torch.full((1, 3, 40), 1e3)], dim=2)  # absurd padding values
    mask = torch.zeros(1, 100, dtype=torch.bool)
    mask[0, :60] = True
    explainer = make_explainer(name, model)
    alone = explainer(real)
    with_pad = explainer(padded, mask)
    torch.testing.assert_close(with_pad.logits, alone.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(with_pad.saliency[:, :60], alone.saliency, rtol=1e-4, atol=1e-6)
    assert (with_pad.saliency[:, 60:] == 0).all() and (with_pad.cam[:, 60:] == 0).all()


def test_mixed_point_counts_in_one_batch(model):
    gen = torch.Generator().manual_seed(7)
    objects = [torch.randn(1, 3, n, generator=gen) for n in (30, 100, 64)]
    width = 100
    points = torch.zeros(3, 3, width)
    mask = torch.zeros(3, width, dtype=torch.bool)
    for b, obj in enumerate(objects):
        points[b, :, :obj.shape[2]] = obj[0]
        mask[b, :obj.shape[2]] = True
    batched = GradCAM(model)(points, mask)
    for b, obj in enumerate(objects):
        single = GradCAM(model)(obj)
        torch.testing.assert_close(batched.cam[b, :obj.shape[2]], single.cam[0],
                                   rtol=1e-5, atol=1e-7)


def test_no_hooks_left_no_grads_touched_and_eval_required(model):
    points = torch.randn(2, 3, 50)
    GradCAM(model)(points)
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks
    assert all(p.grad is None for p in model.parameters())
    model.train()
    try:
        with pytest.raises(RuntimeError, match='eval'):
            GradCAM(model)(points)
    finally:
        model.eval()


def test_targets_by_index_name_and_per_object(model):
    names = ['car', 'truck', 'pedestrian', 'cyclist', 'pole']
    method = make_explainer('gradcam', model, names)
    points = torch.randn(3, 3, 40)
    assert method(points, target='pedestrian').target.tolist() == [2, 2, 2]
    assert method(points, target=['car', 4, 'pole']).target.tolist() == [0, 4, 4]
    assert method(points, target=torch.tensor(1)).target.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="unknown target class 'bus'"):
        method(points, target='bus')
    with pytest.raises(ValueError, match='target classes must be in'):
        method(points, target=9)
    with pytest.raises(ValueError, match='2 targets for 3 objects'):
        method(points, target=[0, 1])


def test_normalisation_rule():
    cam = torch.tensor([[0., 1., 4.], [0., 0., 0.]])
    torch.testing.assert_close(normalize_cam(cam), torch.tensor([[0., .25, 1.], [0., 0., 0.]]))


def test_siblings_differ_from_gradcam_but_share_logits(model):
    points = torch.randn(4, 3, 80, generator=torch.Generator().manual_seed(8))
    results = {name: make_explainer(name, model)(points) for name in EXPLAINERS}
    for name, result in results.items():
        assert result.saliency.shape == (4, 80)
        assert float(result.saliency.min()) >= 0 and float(result.saliency.max()) <= 1
        torch.testing.assert_close(result.logits, results['gradcam'].logits)
        if name != 'gradcam':
            assert not torch.allclose(result.saliency, results['gradcam'].saliency)


def test_point_shift_score_is_the_loss_change_of_a_shift_to_the_centre():
    model = randomized_model(SMALL, dtype=torch.float64)
    points = torch.randn(2, 3, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False
    explainer = PointShiftSaliency(model)
    target = torch.tensor([1, 3])
    result = explainer(points, mask, target=target)

    @torch.no_grad()
    def loss(pts):
        return torch.nn.functional.cross_entropy(model(pts, mask), target, reduction='sum')

    # s_i = -r_i^2 dL/dr_i: moving point i a step h towards the centre changes L by
    # about h * s_i / r_i^2 (the centre is the median of the real points).
    step, positive = 1e-6, 0
    for b, i in [(0, 0), (0, 17), (0, 33), (1, 5), (1, 12), (1, 29)]:
        real = points[b, :, :40 if b == 0 else 30]
        center = real.median(dim=1).values
        offset = points[b, :, i] - center
        moved = points.clone()
        moved[b, :, i] -= step * offset / offset.norm()
        expected = (loss(moved) - loss(points)) / step * offset.norm() ** 2
        score = float(result.cam[b, i])
        assert score == pytest.approx(max(float(expected), 0.0), rel=1e-4, abs=1e-8)
        positive += score > 0
    assert positive >= 2  # the check is not all zeros
    assert result.cam[1, 30:].abs().sum() == 0


@pytest.mark.parametrize('name', EXPLAINERS)
def test_every_explainer_runs_in_float64(name):
    model = randomized_model(SMALL, dtype=torch.float64)
    points = torch.randn(3, 3, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    result = make_explainer(name, model)(points)
    assert result.cam.dtype == result.saliency.dtype == torch.float64
    single = make_explainer(name, randomized_model(SMALL))(points.float())
    assert torch.equal(result.predicted, single.predicted)


def test_explainer_names_agree_with_the_config():
    assert set(config.EXPLAINERS) == set(EXPLAINERS)
    with pytest.raises(ValueError, match="unknown explainer 'lime'"):
        make_explainer('lime', randomized_model(SMALL))


def test_occlusion_regions_cover_each_object():
    xyz = torch.randn(2, 50, 3)
    mask = torch.ones(2, 50, dtype=torch.bool)
    ids = OcclusionSaliency.region_ids(xyz, mask, 8)
    assert ids.shape == (2, 50)
    assert all(len(np.unique(row)) == 8 for row in ids.numpy())


def test_input_validation(model):
    with pytest.raises(ValueError, match=r'points must be \(B, 3, N\)'):
        GradCAM(model)(torch.randn(2, 4, 10))
    with pytest.raises(ValueError, match='at least one real point'):
        GradCAM(model)(torch.randn(1, 3, 10), torch.zeros(1, 10, dtype=torch.bool))


# --- Closed-form head gradient (no autograd) against autograd and captum ----------------

CAM_METHODS = ('gradcam', 'gradcam++', 'xgradcam', 'hirescam')
#: Heads of several depths; last_relu=False gives feature maps with negative values.
HEADS = {
    'small': SMALL,
    'deep_no_last_relu': PointNetConfig(num_classes=4, mlp1=(8,), mlp2=(16, 24), head=(20, 12, 8),
                                        tnet_conv=(8, 16), tnet_fc=(8,), last_relu=False),
    'no_hidden_layer': PointNetConfig(num_classes=3, mlp1=(8,), mlp2=(16,), head=(),
                                      input_transform=False),
}


def _padded_batch(dtype, seed=11, batch=5, width=70):
    """Objects of 12..70 real points, padding filled with absurd values: points and mask."""
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(batch, 3, width, generator=gen).to(dtype)
    mask = torch.zeros(batch, width, dtype=torch.bool)
    for b, count in enumerate(torch.linspace(12, width, batch).long().tolist()):
        mask[b, :count] = True
        points[b, :, count:] = 1e3
    return points, mask


@pytest.mark.parametrize('head', HEADS)
@pytest.mark.parametrize('name', CAM_METHODS)
def test_closed_form_equals_autograd_in_float64(head, name):
    model = randomized_model(HEADS[head], seed=21, dtype=torch.float64)
    points, mask = _padded_batch(torch.float64)
    some_cam = False
    for m in (mask, None):
        target = torch.arange(5) % HEADS[head].num_classes
        for t in (None, target):
            closed = make_explainer(name, model, gradients='closed_form')(points, m, target=t)
            auto = make_explainer(name, model, gradients='autograd')(points, m, target=t)
            for field in ('logits', 'weights', 'cam', 'saliency', 'probabilities'):
                torch.testing.assert_close(getattr(closed, field), getattr(auto, field),
                                           rtol=1e-10, atol=1e-12, msg=field)
            assert torch.equal(closed.target, auto.target)
            assert (closed.weights.abs().flatten(1).amax(dim=1) > 0).all()
            some_cam |= bool((closed.cam > 0).any())
    assert some_cam


def test_closed_form_equals_autograd_in_float32(model):
    points, mask = _padded_batch(torch.float32, seed=12, batch=9)
    for name in CAM_METHODS:
        closed = make_explainer(name, model, gradients='closed_form')(points, mask)
        auto = make_explainer(name, model, gradients='autograd')(points, mask)
        torch.testing.assert_close(closed.logits, auto.logits, rtol=1e-6, atol=1e-6)
        scale = auto.cam.abs().max()
        torch.testing.assert_close(closed.cam / scale, auto.cam / scale, rtol=1e-5, atol=1e-5)


def test_head_gradient_per_object_targets_mixed_with_predicted():
    from pointcam_ros.explain.head import head_gradient, head_gradient_autograd
    model = randomized_model(HEADS['deep_no_last_relu'], seed=4, dtype=torch.float64)
    pooled = torch.randn(6, 24, dtype=torch.float64)
    requested = torch.tensor([-1, 0, 3, -1, 2, 1])
    logits, grad = head_gradient(model, pooled, requested)
    ref_logits, ref_grad = head_gradient_autograd(model, pooled, requested)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)
    # The -1 rows explain the arg-max class: their gradient is that class's.
    _, predicted_grad = head_gradient(model, pooled, logits.argmax(dim=1))
    torch.testing.assert_close(grad[[0, 3]], predicted_grad[[0, 3]], rtol=0, atol=0)


def _captum_cam(captum, model, points, mask, target):
    """Captum's LayerGradCam on A with the mask passed to the model; zero at padding."""
    cam = captum.LayerGradCam(model, model.cam_layer).attribute(
        points, target=target, additional_forward_args=(mask,),
        relu_attributions=False).squeeze(1).detach()
    # Captum averages the gradient over all N points, Grad-CAM over the real N_b ones.
    counts = mask.sum(dim=1, keepdim=True).to(cam.dtype)
    return torch.relu(cam * points.shape[2] / counts).masked_fill(~mask, 0.0)


@pytest.mark.parametrize('head', HEADS)
def test_closed_form_matches_captum_with_padding_in_float64(head):
    captum = pytest.importorskip('captum.attr')
    model = randomized_model(HEADS[head], seed=8, dtype=torch.float64)
    points, mask = _padded_batch(torch.float64, seed=13)
    ours = GradCAM(model, gradients='closed_form')(points, mask)
    for target in (ours.target, torch.arange(5) % HEADS[head].num_classes):
        ours = GradCAM(model, gradients='closed_form')(points, mask, target=target)
        theirs = _captum_cam(captum, model, points, mask, target)
        assert theirs.abs().max() > 0
        torch.testing.assert_close(ours.cam, theirs, rtol=1e-5, atol=1e-10)


def test_shipped_model_closed_form_matches_autograd_and_captum():
    captum = pytest.importorskip('captum.attr')
    from pointcam_ros.model.checkpoint import load_checkpoint
    from pointcam_ros.model.preprocess import normalize_object
    loaded = load_checkpoint(None, torch.device('cpu'))
    model = loaded.model.double().eval()
    gen = np.random.default_rng(3)
    width = loaded.num_points
    points = torch.zeros(4, loaded.model.config.in_channels, width, dtype=torch.float64)
    mask = torch.zeros(4, width, dtype=torch.bool)
    for b, count in enumerate((width, width // 2, 40, width - 7)):
        blob = gen.normal(size=(count, 3)) * (1.0 + b, 0.5, 0.8 + 0.3 * b) + (12, 4 * b, -1)
        height = blob[:, 2] - blob[:, 2].min() + 0.2  # above the ground, for view_ground
        grounded = np.c_[blob, height].astype(np.float32)
        points[b, :, :count] = torch.from_numpy(
            normalize_object(grounded, loaded.normalization).T.astype(np.float64))
        mask[b, :count] = True
        points[b, :, count:] = 50.0
    try:
        closed = GradCAM(model, gradients='closed_form')(points, mask)
        auto = GradCAM(model, gradients='autograd')(points, mask)
        torch.testing.assert_close(closed.weights, auto.weights, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(closed.cam, auto.cam, rtol=1e-10, atol=1e-12)
        theirs = _captum_cam(captum, model, points, mask, closed.target)
        torch.testing.assert_close(closed.cam, theirs, rtol=1e-5, atol=1e-10)
        assert (closed.cam.amax(dim=1) > 0).all()
    finally:
        loaded.model.float()


def test_closed_form_runs_without_autograd():
    model = randomized_model(SMALL, seed=2)
    points, mask = _padded_batch(torch.float32, seed=14)
    expected = GradCAM(model, gradients='autograd')(points, mask)
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            result = GradCAM(model)(points, mask)
        assert result.cam.grad_fn is None and not result.cam.requires_grad
        torch.testing.assert_close(result.cam, expected.cam, rtol=1e-5, atol=1e-6)
    with torch.inference_mode(), pytest.raises(RuntimeError):
        GradCAM(model, gradients='autograd')(points, mask)


def test_head_without_closed_form_falls_back_to_autograd():
    model = randomized_model(SMALL, seed=6, dtype=torch.float64)
    model.head[0].act = torch.nn.LeakyReLU(0.1)
    with pytest.raises(ValueError, match=r"head\[0\] is not Linear ... ReLU.*'autograd'"):
        GradCAM(model, gradients='closed_form')
    with pytest.raises(ValueError, match='gradients must be one of'):
        GradCAM(model, gradients='numeric')
    auto = GradCAM(model)
    assert auto.gradients == 'autograd' and auto.runner is None
    points = torch.randn(3, 3, 40, dtype=torch.float64)
    captured = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        logits = model(points)
    finally:
        handle.remove()
    target = logits.argmax(dim=1)
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), captured[0])
    torch.testing.assert_close(auto(points).weights, grads.mean(dim=2), rtol=1e-10, atol=1e-14)


# --- Batch buckets: the CUDA-graph path's padding, run on the CPU ---------------------------

@pytest.mark.parametrize('name', CAM_METHODS)
def test_bucket_padding_gives_the_unpadded_results(name):
    model = randomized_model(SMALL, seed=9, dtype=torch.float64)
    padded = make_explainer(name, model, buckets=(1, 4, 8))
    plain = make_explainer(name, model, buckets=None)
    assert padded.runner.buckets_for(torch.device('cpu')) == (1, 4, 8)
    for batch in (1, 3, 4, 5, 8, 13, 20):
        points, mask = _padded_batch(torch.float64, seed=batch, batch=batch, width=48)
        target = torch.arange(batch) % 5
        for m, t in ((None, None), (mask, None), (mask, target)):
            got = padded(points, m, target=t)
            want = plain(points, m, target=t)
            assert got.cam.shape == (batch, 48)
            for field in ('cam', 'saliency', 'logits', 'probabilities', 'weights'):
                torch.testing.assert_close(getattr(got, field), getattr(want, field),
                                           rtol=1e-12, atol=1e-14, msg=field)
            assert torch.equal(got.target, want.target)
            assert torch.equal(got.predicted, want.predicted)


def test_bucket_padding_in_float32_and_bucket_options(model):
    points, mask = _padded_batch(torch.float32, seed=15, batch=6)
    got = GradCAM(model, buckets=(2, 8))(points, mask)
    want = GradCAM(model, buckets=None)(points, mask)
    torch.testing.assert_close(got.cam, want.cam, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-5, atol=1e-6)
    # 'auto' pads (and captures graphs) only on CUDA: plain eager on the CPU.
    assert GradCAM(model).runner.buckets_for(torch.device('cpu')) == ()
    assert GradCAM(model).warm_up(32) == 0
    assert GradCAM(model, buckets=(2, 8)).warm_up(32, masked=True) == 2
    assert GradCAM(model, gradients='autograd').warm_up(32) == 0
    for bad in ((8, 4), (0, 2), 'large'):
        with pytest.raises(ValueError, match='buckets must be'):
            GradCAM(model, buckets=bad)


@pytest.mark.parametrize('name', EXPLAINERS)
def test_every_explainer_needs_eval_mode(model, name):
    explainer = make_explainer(name, model)
    model.train()
    try:
        with pytest.raises(RuntimeError, match='eval'):
            explainer(torch.randn(2, 3, 30))
    finally:
        model.eval()


def test_one_factory_passes_options_and_shares_one_base(model):
    from pointcam_ros.explain.base import Explainer
    occlusion = make_explainer('occlusion', model, groups=4)
    assert occlusion.groups == 4
    assert all(isinstance(make_explainer(n, model), Explainer) for n in EXPLAINERS)
    with pytest.raises(TypeError):
        make_explainer('pointshift', model, buckets=(1,))


# --- Every CAM method against its paper's formula, by plain autograd ------------------------

#: A tiny model for the paper references. Its feature map ends in a ReLU, as the papers
#: assume (XGrad-CAM's sum of a channel's activations is then its L1 norm).
TINY = PointNetConfig(num_classes=3, mlp1=(6,), mlp2=(10, 8), head=(7,), tnet_conv=(6, 8),
                      tnet_fc=(6,), feature_transform=True)


def _paper_cam(name, model, points, target):
    """
    Return CAM (N,), weights and the class score of one unpadded object, as in the paper.

    Independent of the package's closed forms: A is taken from the model by a forward
    hook, every derivative comes from torch.autograd through the whole model (max-pool
    included), and Grad-CAM++ uses its general form, with the second and third
    derivatives of Y = exp(S) computed element by element by autograd.
    """
    captured = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        score = model(points)[0, target]
    finally:
        handle.remove()
    features = captured[0]
    act = features[0].detach()  # A (C, N)
    if name == 'gradcam++':
        # Chattopadhay et al. 2018, eq. 10 for Y = exp(S) (their eq. 17-19):
        # a_kp = Y''_kp / (2 Y''_kp + sum_q A_kq Y'''_kp), w_k = sum_p a_kp ReLU(Y'_kp).
        y = torch.exp(score)
        (d1,) = torch.autograd.grad(y, features, create_graph=True)
        # Diagonals of the second and third derivatives, all elements at once (vmap).
        basis = torch.eye(act.numel(), dtype=act.dtype).view(-1, *features.shape)
        (h,) = torch.autograd.grad(d1, features, basis, create_graph=True,
                                   is_grads_batched=True)
        d2 = h.flatten(1).diagonal().view_as(act)
        (t,) = torch.autograd.grad(d2, features, basis[:, 0], is_grads_batched=True)
        d3 = t.flatten(1).diagonal().view_as(act)
        d2 = d2.detach()
        denom = 2 * d2 + act.sum(dim=1, keepdim=True) * d3
        alpha = torch.where(d2 != 0, d2 / torch.where(denom != 0, denom, 1.0), 0.0)
        weights = (alpha * torch.relu(d1[0].detach())).sum(dim=1)
        return torch.relu(weights @ act), weights, y.detach()
    (grad,) = torch.autograd.grad(score, features)
    grad = grad[0]
    if name == 'gradcam':  # Selvaraju et al. 2017: w_k = 1/N sum_p dS/dA_kp
        weights = grad.mean(dim=1)
        cam = weights @ act
    elif name == 'xgradcam':  # Fu et al. 2020: w_k = sum_p A_kp / ||A_k||_1 dS/dA_kp
        norm = act.abs().sum(dim=1, keepdim=True)
        weights = (act / torch.where(norm != 0, norm, 1.0) * grad).sum(dim=1)
        cam = weights @ act
    else:  # HiResCAM, Draelos & Carin 2020: CAM_p = sum_k dS/dA_kp A_kp, weights per point
        weights = grad
        cam = (grad * act).sum(dim=0)
    return torch.relu(cam), weights, score.detach()


@pytest.mark.parametrize('name', CAM_METHODS)
def test_each_cam_method_equals_its_papers_formula_in_float64(name):
    model = randomized_model(TINY, seed=31, dtype=torch.float64)
    padded, mask = _padded_batch(torch.float64, seed=32, batch=4, width=16)
    plain = torch.randn(4, 3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(33))
    positive = 0
    for points, m in ((padded, mask), (plain, None)):
        counts = [16] * 4 if m is None else m.sum(dim=1).tolist()
        for target in (None, torch.tensor([2, 0, 1, 2])):
            ours = make_explainer(name, model)(points, m, target=target)
            for b, n in enumerate(counts):
                # The reference sees the object's real points only, without padding or mask.
                cam, weights, score = _paper_cam(name, model, points[b:b + 1, :, :n],
                                                 int(ours.target[b]))
                # Grad-CAM++ differentiates Y = exp(S): its weights and CAM are exp(S) times
                # those of pytorch-grad-cam's form (gradients of S), which the package uses.
                scale = score if name == 'gradcam++' else 1.0
                got = ours.weights[b, :, :n] if name == 'hirescam' else ours.weights[b]
                torch.testing.assert_close(got * scale, weights, rtol=1e-9, atol=1e-12)
                torch.testing.assert_close(ours.cam[b, :n] * scale, cam, rtol=1e-9, atol=1e-12)
                torch.testing.assert_close(ours.saliency[b, :n], normalize_cam(cam[None])[0],
                                           rtol=1e-9, atol=1e-12)
                assert (ours.cam[b, n:] == 0).all()
                if name == 'hirescam':
                    assert (ours.weights[b, :, n:] == 0).all()
                positive += bool((cam > 0).any())
    assert positive >= 8  # of the 16 CAMs compared, most have some positive evidence
