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

"""PointNet, DGCNN and PointNet++ side by side: registry, padding, CAM, checkpoints, imports."""

from concurrent.futures import ThreadPoolExecutor
import math

from conftest import repeat_in_threads
import numpy as np
from pointcam_ros.explain.gradcam import EXPLAINERS, make_explainer
from pointcam_ros.model.checkpoint import (
    CheckpointError, import_reference_state_dict, load_checkpoint, LoadedModel,
    save_checkpoint)
from pointcam_ros.model.dgcnn import DGCNNClassifier, knn
from pointcam_ros.model.pointnet import ConvBlock
from pointcam_ros.model.pointnet2 import ball_query, farthest_point_sample
from pointcam_ros.model.pointnet2 import PointNet2Classifier, PointNet2Config
from pointcam_ros.model.protocol import ExplainableModel, interpolation_weights, PointsTap
from pointcam_ros.model.registry import build_model, FAMILIES, family_of
import pytest
import torch
from torch import nn
import torch.nn.functional as F

CAM_METHODS = ('gradcam', 'gradcam++', 'xgradcam', 'hirescam')
#: Small sizes of each family, so that the whole file runs in seconds.
SMALL = {
    'pointnet': {'mlp1': (16,), 'mlp2': (32, 64), 'head': (32, 16),
                 'tnet_conv': (16, 32, 64), 'tnet_fc': (32, 16)},
    'dgcnn': {'k': 6, 'edge': (16, 16, 32), 'emb_dims': 64, 'head': (32, 16)},
    'pointnet2': {'npoints': (12, 6), 'radii': (0.7, 1.4), 'nsamples': (6, 8),
                  'mlps': ((16, 16), (32, 32)), 'global_mlp': (32, 64), 'head': (32, 16)},
}
NAMES = ['car', 'pole', 'wall', 'tree']


def randomized(family, dtype=torch.float64, channels=5, seed=0, **sizes):
    """Build a small model of ``family``, random weights and BatchNorm statistics, eval()."""
    torch.manual_seed(seed)
    model = build_model(family, len(NAMES), channels, **{**SMALL[family], **sizes})
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_(1.0, 0.3)
            module.bias.data.normal_(0.1, 0.3)
    return model.to(dtype).eval()


def objects(counts, num, channels=5, dtype=torch.float64, seed=1):
    """Objects of ``counts`` real points padded to ``num`` at random places: points, mask."""
    gen = torch.Generator().manual_seed(seed)
    points = 1e3 * torch.randn(len(counts), channels, num, generator=gen, dtype=dtype)
    mask = torch.zeros(len(counts), num, dtype=torch.bool)
    for b, count in enumerate(counts):
        mask[b, torch.randperm(num, generator=gen)[:count]] = True
        points[b][:, mask[b]] = torch.randn(channels, count, generator=gen, dtype=dtype)
    return points, mask


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def family(request):
    return request.param


# --- registry ---------------------------------------------------------------------------

def test_registry_builds_every_family_by_name_with_defaults():
    import pointcam_ros.model
    model = pointcam_ros.model.build_model('dgcnn', num_classes=7, in_channels=5, k=20)
    assert isinstance(model, DGCNNClassifier) and model.config.k == 20
    assert model.config.edge == (64, 64, 128, 256) and model.config.emb_dims == 1024
    default = build_model('pointnet2', num_classes=7, in_channels=5)
    assert default.config.npoints == (128, 32) and default.config.radii == (0.5, 1.0)
    assert default.config.global_mlp == (256, 512, 1024)
    for name in FAMILIES:
        model = build_model(name, 7)
        assert family_of(model) == name and model.config.num_classes == 7
        assert model.cam_layer is model.get_submodule(model.CAM_LAYER)
    with pytest.raises(ValueError, match="unknown model family 'resnet'"):
        build_model('resnet', 7)
    with pytest.raises(ValueError, match="dgcnn has no size 'radii'"):
        build_model('dgcnn', 7, radii=(1.0,))
    with pytest.raises(ValueError, match='one entry per level'):
        build_model('pointnet2', 7, radii=(0.5,))


# --- padding: ignored exactly -----------------------------------------------------------

def test_padded_points_are_never_neighbours_nor_centroids():
    points, mask = objects([3, 9, 20], 24, channels=3)
    index = knn(points, mask, 6)
    for b in range(3):
        assert mask[b][index[b][mask[b]]].all()
    picks, valid = farthest_point_sample(points, mask, 12)
    for b, count in enumerate([3, 9, 20]):
        assert mask[b, picks[b]].all() and int(valid[b].sum()) == min(count, 12)
        assert len(set(picks[b, :min(count, 12)].tolist())) == min(count, 12)
    centres = points.gather(2, picks[:, None, :].expand(3, 3, 12))
    group = ball_query(points, centres, mask, 1.0, 8)
    assert all(mask[b, group[b]].all() for b in range(3))


def test_padding_changes_nothing(family):
    model = randomized(family)
    counts = [4, 11, 30, 40]  # fewer than k and than the centroids, and more
    points, mask = objects(counts, 40)
    batched = model(points, mask)
    cams = model.cam_features(points, mask) if hasattr(model, 'cam_features') else None
    for b, count in enumerate(counts):
        alone = points[b:b + 1][:, :, mask[b]]
        torch.testing.assert_close(model(alone)[0], batched[b], rtol=1e-10, atol=1e-10)
        if cams is not None:
            own = model.cam_features(alone)
            layer = cams.mask[b] if cams.xyz is not None and cams.mask is not None else (
                mask[b] if cams.xyz is None else slice(None))
            expected = own.features[0] if own.mask is None else own.features[0][:, own.mask[0]]
            torch.testing.assert_close(cams.features[b][:, layer], expected)


# --- explainers on every family ---------------------------------------------------------

@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_gradcam_equals_captum_object_by_object(family, dtype):
    captum = pytest.importorskip('captum.attr')
    model = randomized(family, dtype)
    points, _ = objects([32] * 4, 32, dtype=dtype)
    result = make_explainer('gradcam', model, NAMES)(points)
    for b in range(4):
        theirs = captum.LayerGradCam(model, model.cam_layer).attribute(
            points[b:b + 1], target=int(result.target[b]), relu_attributions=True)
        theirs = theirs.detach()[0, 0]
        ours = result.cam[b] if result.layer_cam is None else result.layer_cam[b]
        assert ours.shape == theirs.shape
        scale = float(theirs.abs().max())
        assert scale > 0 and float((ours - theirs).abs().max()) <= 1e-5 * scale


@pytest.mark.parametrize('name', CAM_METHODS)
def test_closed_form_equals_autograd_and_hooks(family, name):
    model = randomized(family)
    points, mask = objects([7, 25, 32], 32)
    closed = make_explainer(name, model, NAMES)
    assert closed.gradients == 'closed_form'
    autograd = make_explainer(name, model, NAMES, gradients='autograd')(points, mask)
    wrapped = ExplainableModel(model, num_classes=4, in_channels=5,
                               cam_layer=model.CAM_LAYER,
                               cam_points='cam_points' if model.cam_points else None).eval()
    hooked = make_explainer(name, wrapped, NAMES)
    assert hooked.path == 'hooks' and hooked.gradients == 'autograd'
    hooked = hooked(points, mask)
    closed = closed(points, mask)
    for other in (autograd, hooked):
        torch.testing.assert_close(closed.cam, other.cam, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(closed.logits, other.logits)


@pytest.mark.parametrize('name', EXPLAINERS)
def test_batched_with_padding_equals_one_at_a_time(family, name):
    model = randomized(family)
    counts = [5, 18, 32]
    points, mask = objects(counts, 32)
    batched = make_explainer(name, model, NAMES)(points, mask, target=[0, 1, 2])
    assert batched.saliency.shape == (3, 32) and not batched.cam[~mask].any()
    for b in range(3):
        alone = make_explainer(name, model, NAMES)(points[b:b + 1][:, :, mask[b]], target=b)
        torch.testing.assert_close(batched.cam[b][mask[b]], alone.cam[0], rtol=1e-7,
                                   atol=1e-10)
        torch.testing.assert_close(batched.logits[b], alone.logits[0])
        if batched.layer_cam is not None:
            torch.testing.assert_close(batched.layer_cam[b], alone.layer_cam[0])


def test_duplicate_invariance_is_the_model_s_and_the_method_s():
    for family, expected in (('pointnet', True), ('dgcnn', False), ('pointnet2', False)):
        assert make_explainer('gradcam', randomized(family), NAMES).duplicate_invariant is expected
    assert not make_explainer('gradcam++', randomized('pointnet'), NAMES).duplicate_invariant


def test_pointnet2_map_reaches_every_point_by_feature_propagation_weights():
    model = randomized('pointnet2')
    points, mask = objects([9, 32], 32)
    result = make_explainer('gradcam', model, NAMES)(points, mask)
    layer = model.cam_features(points, mask)
    assert result.layer_cam.shape == (2, 6) and result.cam.shape == (2, 32)
    # The weights by hand: 3 nearest real centroids, 1 / (d^2 + 1e-8), normalised.
    for b in range(2):
        xyz = points[b, :3].T.numpy()
        real = layer.mask[b].numpy() if layer.mask is not None else np.ones(6, bool)
        centres = layer.xyz[b].T.numpy()[real]
        raw = result.weights[b].numpy() @ layer.features[b].detach().numpy()[:, real]
        d2 = ((xyz[:, None, :] - centres[None]) ** 2).sum(-1)
        near = np.argsort(d2, axis=1)[:, :3]
        w = 1 / (np.take_along_axis(d2, near, 1) + 1e-8)
        expected = np.maximum((raw[near] * w).sum(1) / w.sum(1), 0)
        np.testing.assert_allclose(result.cam[b][mask[b]].numpy(), expected[mask[b].numpy()],
                                   rtol=1e-9, atol=1e-12)
    index, weights = interpolation_weights(points[:, :3], layer.xyz, layer.mask)
    torch.testing.assert_close(weights.sum(dim=2), torch.ones(2, 32, dtype=torch.float64))
    assert layer.mask is None or layer.mask.gather(1, index.reshape(2, -1)).all()


# --- the protocol: a model of your own ---------------------------------------------------

class TinyNet(nn.Module):
    """A user's model: per-point MLP, a strided 'downsampling', masked max, linear head."""

    def __init__(self, stride=1):
        super().__init__()
        self.stride = stride
        self.features = nn.Sequential(nn.Conv1d(3, 16, 1), nn.ReLU(), nn.Conv1d(16, 24, 1))
        self.where = PointsTap()
        self.out = nn.Linear(24, 4)

    def forward(self, points, mask=None):
        xyz, keep = points[:, :, ::self.stride], None if mask is None else mask[:, ::self.stride]
        if self.stride > 1:
            xyz, keep = self.where(xyz, keep)
        a = self.features(xyz)
        if keep is not None:
            a = a.masked_fill(~keep[:, None, :], float('-inf'))
        return self.out(a.max(dim=2).values)


def test_a_model_of_your_own_runs_every_explainer_and_the_pipeline():
    captum = pytest.importorskip('captum.attr')
    torch.manual_seed(0)
    model = ExplainableModel(TinyNet(), num_classes=4, in_channels=3,
                             cam_layer='features').double().eval()
    points, mask = objects([10, 16], 16, channels=3)
    for name in EXPLAINERS:
        result = make_explainer(name, model, NAMES)(points, mask)
        assert result.saliency.shape == (2, 16) and not result.cam[~mask].any()
    result = make_explainer('gradcam', model, NAMES)(points)
    theirs = captum.LayerGradCam(model, model.cam_layer).attribute(
        points, target=result.target, relu_attributions=True)[:, 0].detach()
    torch.testing.assert_close(result.cam, theirs)
    # Fewer CAM points than input points: cam_points says where they are.
    strided = ExplainableModel(TinyNet(stride=2), num_classes=4, in_channels=3,
                               cam_layer='features', cam_points='where').double().eval()
    result = make_explainer('gradcam', strided, NAMES)(points, mask)
    assert result.layer_cam.shape == (2, 8) and result.cam.shape == (2, 16)
    blind = ExplainableModel(TinyNet(stride=2), num_classes=4, in_channels=3,
                             cam_layer='features').double().eval()
    with pytest.raises(ValueError, match='must name cam_points'):
        make_explainer('gradcam', blind, NAMES)(points, mask)
    with pytest.raises(ValueError, match="no submodule 'nope'"):
        ExplainableModel(TinyNet(), num_classes=4, in_channels=3, cam_layer='nope')
    # End to end through the scene pipeline, as docs/models.md shows.
    from pointcam_ros.common.config import PipelineConfig
    from pointcam_ros.perception.pipeline import ScenePipeline
    loaded = LoadedModel(model=model.float(), class_names=NAMES, num_points=64,
                         normalization='center', path='<TinyNet>')
    pipeline = ScenePipeline(PipelineConfig(mode='object'), loaded=loaded)
    cloud = np.random.default_rng(0).normal([8, 0, 0.5], 0.4, (300, 3)).astype(np.float32)
    scene = pipeline.process(cloud)
    assert scene.saliency.shape == (300,) and np.isfinite(scene.saliency).all()
    with pytest.raises(ValueError, match='not a model of a registered family'):
        save_checkpoint('never.pt', model, NAMES, 64, 'center')


def test_a_model_of_your_own_shared_by_explainers_in_two_threads():
    """Each thread's hooks keep its own pass: the same maps as one thread alone."""
    model = ExplainableModel(TinyNet(stride=2), num_classes=4, in_channels=3,
                             cam_layer='features', cam_points='where').double().eval()
    inputs = [objects([10, 16], 16, channels=3, seed=2),
              objects([5, 9, 12], 12, channels=3, seed=3)]
    explainers = [make_explainer('gradcam', model, NAMES) for _ in inputs]
    alone = [e(points, mask).cam for e, (points, mask) in zip(explainers, inputs)]
    results = repeat_in_threads([lambda i=i: explainers[i](*inputs[i]).cam for i in range(2)],
                                40)
    for i in range(2):
        assert len(results[i]) == 40  # no run raised
        for cam in results[i]:
            torch.testing.assert_close(cam, alone[i], rtol=0, atol=0)


def test_a_model_that_runs_its_layers_on_another_thread_is_refused_by_name():
    """The hooks keep the calling thread's pass only: a thread-pool forward is named."""
    pool = ThreadPoolExecutor(1)

    class Offloaded(TinyNet):
        def forward(self, points, mask=None):  # as nn.DataParallel's parallel_apply does
            return pool.submit(super().forward, points, mask).result()

    model = ExplainableModel(Offloaded(), num_classes=4, in_channels=3,
                             cam_layer='features').double().eval()
    try:
        with pytest.raises(ValueError, match='did not run, or not on the thread that called'):
            make_explainer('gradcam', model, NAMES)(*objects([10, 16], 16, channels=3))
    finally:
        pool.shutdown()
    assert not model.cam_layer._forward_hooks  # removed on the error too


# --- checkpoints ------------------------------------------------------------------------

def test_checkpoint_round_trip_of_every_family(tmp_path, family):
    model = randomized(family, torch.float32)
    path = tmp_path / f'{family}.pt'
    save_checkpoint(path, model, NAMES, 64, 'view_ground')
    assert torch.load(path, weights_only=True)['family'] == family
    loaded = load_checkpoint(path)
    assert type(loaded.model) is type(model) and loaded.model.config == model.config
    points, mask = objects([20, 64], 64, dtype=torch.float32)
    torch.testing.assert_close(loaded.model(points, mask), model(points, mask))


@pytest.mark.parametrize('family, key, value, field, reason', [
    ('dgcnn', 'k', 0, 'architecture.k', r'is 0, outside 1..128'),
    ('dgcnn', 'edge', [16, '32'], r'architecture.edge\[1\]', 'must be an int'),
    ('dgcnn', 'radii', [1.0], 'architecture.radii', 'is unknown to this pointcam_ros for '
     'family dgcnn'),
    ('dgcnn', 'negative_slope', math.nan, 'architecture.negative_slope', 'must be a number'),
    ('pointnet2', 'radii', [0.7, -1.0], r'architecture.radii\[1\]', r'in \[0.0, 1000.0\]'),
    ('pointnet2', 'radii', [0.7], 'architecture', 'one entry per level'),
    ('pointnet2', 'mlps', [[16, 16], []], r'architecture.mlps\[1\]', 'has 0 layers'),
    ('pointnet2', 'npoints', [10 ** 6, 6], r'architecture.npoints\[0\]', 'outside 1..8192'),
    ('pointnet2', 'global_mlp', [8192] * 3, 'architecture', 'more than the limit of'),
    ('dgcnn', 'k', 16, 'state_dict', None),  # k changes no weight: loads
    ('dgcnn', 'emb_dims', 32, 'state_dict.embed.conv.weight', r'has shape \(64, 64, 1\)'),
    ('pointnet2', 'mlps', [[16, 8], [32, 32]], r'state_dict.sa.0.mlp_convs.1.weight',
     r'has shape \(16, 16, 1, 1\)'),
])
def test_each_family_s_architecture_is_checked_before_building(tmp_path, family, key, value,
                                                               field, reason):
    path = tmp_path / 'm.pt'
    save_checkpoint(path, randomized(family, torch.float32), NAMES, 64, 'view_ground')
    payload = torch.load(path, weights_only=True)
    payload['architecture'][key] = value
    torch.save(payload, path)
    if reason is None:
        assert load_checkpoint(path).model.config.k == value
        return
    with pytest.raises(CheckpointError, match=f"m.pt: field '{field}' .*{reason}"):
        load_checkpoint(path)


def test_unknown_family_and_memory_bounds_are_named(tmp_path):
    path = tmp_path / 'm.pt'
    save_checkpoint(path, randomized('dgcnn', torch.float32), NAMES, 64, 'view_ground')
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, 'family': 'pointtransformer'}, path)
    with pytest.raises(CheckpointError, match="m.pt: field 'family' is 'pointtransformer', a "
                       'model family unknown to this pointcam_ros'):
        load_checkpoint(path)
    torch.save({**payload, 'num_points': 8192}, path)
    with pytest.raises(CheckpointError, match="field 'num_points' 8192 x 8192 kNN distances"):
        load_checkpoint(path)
    payload['architecture'].pop('k')
    torch.save(payload, path)  # missing sizes take the family's defaults
    assert load_checkpoint(path).model.config.k == 20


# --- state dicts of the reference implementations ---------------------------------------

def _conv(sd, name, fan_in, fan_out, gen, dims, bias=True):
    sd[f'{name}.weight'] = torch.randn(fan_out, fan_in, *([1] * dims), generator=gen) \
        / fan_in ** 0.5
    if bias:
        sd[f'{name}.bias'] = 0.1 * torch.randn(fan_out, generator=gen)


def _bn(sd, name, width, gen):
    sd[f'{name}.weight'] = 1 + 0.2 * torch.randn(width, generator=gen)
    sd[f'{name}.bias'] = 0.1 * torch.randn(width, generator=gen)
    sd[f'{name}.running_mean'] = 0.1 * torch.randn(width, generator=gen)
    sd[f'{name}.running_var'] = 0.5 + torch.rand(width, generator=gen)
    sd[f'{name}.num_batches_tracked'] = torch.tensor(7)


def _dgcnn_state_dict(channels=3, classes=4, emb=1024):
    """Keys and shapes of WangYueFt/dgcnn ``DGCNN(args, output_channels=classes)``."""
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for i, (a, b) in enumerate([(2 * channels, 64), (128, 64), (128, 128), (256, 256)], 1):
        _conv(sd, f'conv{i}.0', a, b, gen, 2, bias=False)
        _bn(sd, f'conv{i}.1', b, gen)
    _conv(sd, 'conv5.0', 512, emb, gen, 1, bias=False)
    _bn(sd, 'conv5.1', emb, gen)
    for i in range(1, 6):  # self.bn1 .. bn5: the same modules, registered twice
        for key in [k for k in sd if k.startswith(f'conv{i}.1.')]:
            sd[f'bn{i}.' + key[len(f'conv{i}.1.'):]] = sd[key]
    _conv(sd, 'linear1', 2 * emb, 512, gen, 0, bias=False)
    _bn(sd, 'bn6', 512, gen)
    _conv(sd, 'linear2', 512, 256, gen, 0)
    _bn(sd, 'bn7', 256, gen)
    _conv(sd, 'linear3', 256, classes, gen, 0)
    return sd


def _dgcnn_reference_forward(sd, x, k):
    """Run WangYueFt's forward in eval mode, written from their source with functional ops."""
    def bn(t, name):
        return F.batch_norm(t, sd[f'{name}.running_mean'], sd[f'{name}.running_var'],
                            sd[f'{name}.weight'], sd[f'{name}.bias'], False, 0.0, 1e-5)

    def graph_feature(t):
        inner = -2 * torch.matmul(t.transpose(2, 1), t)
        xx = torch.sum(t ** 2, dim=1, keepdim=True)
        idx = (-xx - inner - xx.transpose(2, 1)).topk(k=k, dim=-1)[1]
        batch, dims, num = t.shape
        idx = (idx + torch.arange(batch).view(-1, 1, 1) * num).view(-1)
        t = t.transpose(2, 1).contiguous()
        feature = t.view(batch * num, -1)[idx, :].view(batch, num, k, dims)
        t = t.view(batch, num, 1, dims).repeat(1, 1, k, 1)
        return torch.cat((feature - t, t), dim=3).permute(0, 3, 1, 2)

    outs = []
    for i in range(1, 5):
        t = graph_feature(x if i == 1 else outs[-1])
        t = F.leaky_relu(bn(F.conv2d(t, sd[f'conv{i}.0.weight']), f'conv{i}.1'), 0.2)
        outs.append(t.max(dim=-1)[0])
    t = F.leaky_relu(bn(F.conv1d(torch.cat(outs, 1), sd['conv5.0.weight']), 'conv5.1'), 0.2)
    t = torch.cat((F.adaptive_max_pool1d(t, 1).flatten(1),
                   F.adaptive_avg_pool1d(t, 1).flatten(1)), 1)
    t = F.leaky_relu(bn(F.linear(t, sd['linear1.weight']), 'bn6'), 0.2)
    t = F.leaky_relu(bn(F.linear(t, sd['linear2.weight'], sd['linear2.bias']), 'bn7'), 0.2)
    return F.linear(t, sd['linear3.weight'], sd['linear3.bias'])


def test_dgcnn_reference_state_dict_loads_key_by_key():
    sd = _dgcnn_state_dict()
    model = import_reference_state_dict({f'module.{k}': v for k, v in sd.items()}, NAMES, k=10)
    assert isinstance(model, DGCNNClassifier) and model.config.k == 10
    assert model.config.in_channels == 3 and model.config.edge == (64, 64, 128, 256)
    ours = model.state_dict()
    pairs = {'conv5.0': 'embed.conv', 'conv5.1': 'embed.bn', 'linear1': 'head.0.linear',
             'bn6': 'head.0.bn', 'linear2': 'head.1.linear', 'bn7': 'head.1.bn',
             'linear3': 'classifier'}
    pairs.update({f'conv{i}.0': f'edge_convs.{i - 1}.conv' for i in range(1, 5)})
    pairs.update({f'conv{i}.1': f'edge_convs.{i - 1}.bn' for i in range(1, 5)})
    seen = set()
    for key, value in sd.items():
        prefix, rest = key.rsplit('.', 1)
        if prefix.startswith('bn') and int(prefix[2:]) <= 5:
            continue  # the twin of conv<i>.1
        mine = f'{pairs[prefix]}.{rest}'
        assert ours[mine].shape == value.shape and torch.equal(ours[mine], value), key
        seen.add(mine)
    assert seen == set(ours)
    x = torch.randn(3, 3, 48, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(model(x), _dgcnn_reference_forward(sd, x, 10), rtol=1e-4,
                               atol=1e-4)
    broken = dict(sd, **{'bn2.weight': sd['bn2.weight'] + 1})
    with pytest.raises(CheckpointError, match="'bn2.weight' differs from 'conv2.1.weight'"):
        import_reference_state_dict(broken, NAMES)
    with pytest.raises(CheckpointError, match='4 classes but 2 class names'):
        import_reference_state_dict(sd, NAMES[:2])


def _pointnet2_state_dict(channels=3, classes=4):
    """Keys and shapes of yanx27 ``pointnet2_cls_ssg.get_model(classes, normal_channel)``."""
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for level, (cin, mlp) in enumerate([(channels, (64, 64, 128)), (131, (128, 128, 256)),
                                        (259, (256, 512, 1024))], 1):
        for j, width in enumerate(mlp):
            _conv(sd, f'sa{level}.mlp_convs.{j}', cin, width, gen, 2)
            _bn(sd, f'sa{level}.mlp_bns.{j}', width, gen)
            cin = width
    for j, (a, b) in enumerate([(1024, 512), (512, 256), (256, classes)], 1):
        _conv(sd, f'fc{j}', a, b, gen, 0)
        if j < 3:
            _bn(sd, f'bn{j}', b, gen)
    return sd


def _pointnet2_reference_forward(sd, x, sizes):
    """Run yanx27's forward in eval mode, from their source, FPS started at point 0."""
    def bn(t, name):
        return F.batch_norm(t, sd[f'{name}.running_mean'], sd[f'{name}.running_var'],
                            sd[f'{name}.weight'], sd[f'{name}.bias'], False, 0.0, 1e-5)

    def index_points(points, idx):
        batch = torch.arange(points.shape[0]).view(-1, *([1] * (idx.dim() - 1)))
        return points[batch, idx]

    def fps(xyz, npoint):
        batch, num, _ = xyz.shape
        centroids = torch.zeros(batch, npoint, dtype=torch.long)
        distance = torch.ones(batch, num) * 1e10
        farthest = torch.zeros(batch, dtype=torch.long)
        for i in range(npoint):
            centroids[:, i] = farthest
            centroid = xyz[torch.arange(batch), farthest, :].view(batch, 1, 3)
            dist = torch.sum((xyz - centroid) ** 2, -1)
            distance = torch.minimum(distance, dist)
            farthest = torch.max(distance, -1)[1]
        return centroids

    def square_distance(src, dst):
        dist = -2 * torch.matmul(src, dst.permute(0, 2, 1))
        return dist + torch.sum(src ** 2, -1)[:, :, None] + torch.sum(dst ** 2, -1)[:, None]

    def query_ball_point(radius, nsample, xyz, new_xyz):
        batch, num, _ = xyz.shape
        group_idx = torch.arange(num).view(1, 1, num).repeat([batch, new_xyz.shape[1], 1])
        group_idx[square_distance(new_xyz, xyz) > radius ** 2] = num
        group_idx = group_idx.sort(dim=-1)[0][:, :, :nsample]
        first = group_idx[:, :, 0:1].expand_as(group_idx)
        return torch.where(group_idx == num, first, group_idx)

    def mlp(t, level):
        for j in range(3):
            t = F.relu(bn(F.conv2d(t, sd[f'sa{level}.mlp_convs.{j}.weight'],
                                   sd[f'sa{level}.mlp_convs.{j}.bias']), f'sa{level}.mlp_bns.{j}'))
        return torch.max(t, 2)[0]

    xyz, points = x[:, :3].permute(0, 2, 1), x[:, 3:].permute(0, 2, 1) if x.shape[1] > 3 else None
    for level, (npoint, radius, nsample) in enumerate(sizes, 1):
        new_xyz = index_points(xyz, fps(xyz, npoint))
        idx = query_ball_point(radius, nsample, xyz, new_xyz)
        grouped = index_points(xyz, idx) - new_xyz[:, :, None, :]
        if points is not None:
            grouped = torch.cat([grouped, index_points(points, idx)], dim=-1)
        xyz, points = new_xyz, mlp(grouped.permute(0, 3, 2, 1), level).permute(0, 2, 1)
    grouped = torch.cat([xyz, points], dim=-1)[:, None]  # sample_and_group_all
    t = mlp(grouped.permute(0, 3, 2, 1), 3).flatten(1)
    t = F.relu(bn(F.linear(t, sd['fc1.weight'], sd['fc1.bias']), 'bn1'))
    t = F.relu(bn(F.linear(t, sd['fc2.weight'], sd['fc2.bias']), 'bn2'))
    return F.log_softmax(F.linear(t, sd['fc3.weight'], sd['fc3.bias']), -1)


def test_pointnet2_reference_state_dict_loads_key_by_key():
    sd = _pointnet2_state_dict(channels=6)
    sizes = {'npoints': (32, 8), 'radii': (0.4, 0.8), 'nsamples': (8, 16)}
    model = import_reference_state_dict({'epoch': 1, 'model_state_dict': sd}, NAMES, **sizes)
    assert isinstance(model, PointNet2Classifier)
    assert model.config == PointNet2Config(num_classes=4, in_channels=6, dropout=0.4,
                                           radii=(0.4, 0.8), npoints=(32, 8),
                                           nsamples=(8, 16), **{
                                               k: v for k, v in PointNet2Config(1).to_dict()
                                               .items() if k in ('mlps', 'global_mlp',
                                                                 'head')})
    ours = model.state_dict()
    for key, value in sd.items():
        for src, dst in (('sa1.', 'sa.0.'), ('sa2.', 'sa.1.'), ('sa3.', 'sa.2.'),
                         ('fc1.', 'head.0.linear.'), ('bn1.', 'head.0.bn.'),
                         ('fc2.', 'head.1.linear.'), ('bn2.', 'head.1.bn.'),
                         ('fc3.', 'classifier.')):
            if key.startswith(src):
                mine = dst + key[len(src):]
                break
        assert ours[mine].shape == value.shape and torch.equal(ours[mine], value), key
    assert len(ours) == len(sd)
    gen = torch.Generator().manual_seed(3)
    x = torch.cat([torch.randn(2, 3, 64, generator=gen) * 0.5,
                   torch.randn(2, 3, 64, generator=gen)], 1)
    expected = _pointnet2_reference_forward(
        sd, x, list(zip(sizes['npoints'], sizes['radii'], sizes['nsamples'])))
    torch.testing.assert_close(torch.log_softmax(model(x), 1), expected, rtol=1e-4, atol=1e-4)
    default = import_reference_state_dict(_pointnet2_state_dict(), NAMES)
    assert default.config.npoints == (512, 128) and default.config.radii == (0.2, 0.4)
    with pytest.raises(CheckpointError, match='one entry per level'):
        import_reference_state_dict(sd, NAMES, npoints=(32,))


# --- training ---------------------------------------------------------------------------

def test_train_arch_takes_a_family_or_json():
    from pointcam_ros.learn.train import DEFAULT_ARCH, parse_arch
    assert parse_arch('{}') == {'family': 'pointnet', **DEFAULT_ARCH}
    assert parse_arch('dgcnn') == {'family': 'dgcnn'}
    assert parse_arch('{"family": "pointnet2", "radii": [0.4, 0.8]}') == {
        'family': 'pointnet2', 'radii': [0.4, 0.8]}
    with pytest.raises(ValueError, match="dgcnn has no size 'mlp2'"):
        parse_arch('{"family": "dgcnn", "mlp2": [8]}')
    with pytest.raises(ValueError, match='unknown model family'):
        parse_arch('{"family": "resnet"}')


def test_one_training_epoch_of_each_new_family(tmp_path):
    from pointcam_ros.learn.batching import Augmentation
    from pointcam_ros.learn.dataset import ObjectDataset
    from pointcam_ros.learn.train import train
    rng = np.random.default_rng(0)
    data = ObjectDataset(points=[rng.normal(size=(30, 4)).astype(np.float32) for _ in range(8)],
                         labels=np.arange(8) % 4, distance=np.ones(8, np.float32),
                         seeds=np.arange(8), class_names=NAMES)
    for family in ('dgcnn', 'pointnet2'):
        out = tmp_path / f'{family}.pt'
        report = train(data, data, out, epochs=1, num_points=32, normalization='view_ground',
                       batch_size=4, lr=1e-3, seed=0, device=torch.device('cpu'),
                       arch={'family': family, **SMALL[family]}, progress=False,
                       select='last', augmentation=Augmentation(rotate=False))
        assert report['family'] == family
        assert family_of(load_checkpoint(out).model) == family


def _reference_block(block: ConvBlock, x: torch.Tensor) -> torch.Tensor:
    """Conv1d, BatchNorm1d and the activation run one after the other, as in training."""
    out = torch.nn.functional.conv1d(x, block.conv.weight, block.conv.bias)
    bn = block.bn
    out = torch.nn.functional.batch_norm(out, bn.running_mean, bn.running_var, bn.weight,
                                         bn.bias, training=False, eps=bn.eps)
    return block.act(out)


@pytest.mark.parametrize('relu', [True, False])
def test_conv_block_fused_in_eval_is_the_unfused_function(relu):
    """The eval-mode fold of BatchNorm into the 1x1 conv equals conv, then BN, then ReLU."""
    torch.manual_seed(0)
    block = ConvBlock(6, 9, relu=relu)
    with torch.no_grad():
        block.bn.running_mean.normal_(0.0, 2.0)
        block.bn.running_var.uniform_(0.1, 3.0)
        block.bn.weight.normal_(1.0, 0.5)
        block.bn.bias.normal_(0.0, 0.5)
    block.eval()
    x = torch.randn(4, 6, 33)
    for given in (x, x.transpose(1, 2).contiguous().transpose(1, 2), torch.randn(0, 6, 33)):
        got = block(given)
        assert got.shape == (len(given), 9, 33)
        torch.testing.assert_close(got, _reference_block(block, given), rtol=1e-5, atol=1e-5)
    assert (block(x) < 0).any() != relu  # the last block of fxia22's layout has no ReLU
    # Gradients flow through the fused path as through the modules.
    given = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(block(given).square().sum(), given)
    reference = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(_reference_block(block, reference).square().sum(),
                                      reference)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)


def test_conv_block_keeps_batch_statistics_where_the_fold_does_not_apply():
    torch.manual_seed(1)
    x = torch.randn(5, 4, 20) * 3 + 1
    block = ConvBlock(4, 8).eval()
    block.bn.train()  # BatchNorm in training mode inside an eval() model: batch statistics
    expected = torch.relu(torch.nn.functional.batch_norm(
        block.conv(x), None, None, block.bn.weight, block.bn.bias, training=True,
        eps=block.bn.eps))
    torch.testing.assert_close(block(x), expected)
    for bn in (torch.nn.BatchNorm1d(8, affine=False),
               torch.nn.BatchNorm1d(8, track_running_stats=False)):
        block = ConvBlock(4, 8)
        block.bn = bn
        block.eval()
        torch.testing.assert_close(block(x), torch.relu(bn(block.conv(x))))
