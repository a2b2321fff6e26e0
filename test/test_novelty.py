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

"""The novelty score, its statistics in checkpoints, the ``novel`` rule and its fitting."""

import dataclasses
import math

from conftest import repeat_in_threads
import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.explain.gradcam import make_explainer
from pointcam_ros.learn import novelty as fitting
from pointcam_ros.model.checkpoint import (
    CheckpointError, load_checkpoint, MAX_NOVELTY_WIDTH, save_checkpoint)
from pointcam_ros.model.novelty import (
    fit_stats, NoveltyStats, penultimate_features, penultimate_width, pooled_features,
    score_numpy, TENSOR_NAMES)
from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
from pointcam_ros.model.pointnet2 import PointNet2Classifier, PointNet2Config
from pointcam_ros.model.registry import build_model, FAMILIES
from pointcam_ros.perception import rules
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.rules import BACKGROUND_RULES
from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
import pytest
from test_model_families import SMALL  # small sizes of each family
import torch


def _stats(classes: int, width: int, seed: int = 0, threshold: float = 0.0) -> NoveltyStats:
    """Statistics fitted to random features: every class present."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(40 * classes, width)) + np.repeat(
        rng.normal(scale=3.0, size=(classes, width)), 40, axis=0)
    return fit_stats(features, np.repeat(np.arange(classes), 40), classes, threshold)


def _reference(stats: NoveltyStats, z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Write the relative Mahalanobis distance out, one object at a time."""
    means, precision, mean, background = (t.numpy() for t in stats.tensors().values())
    out = []
    for row, k in zip(z, c):
        gap, gap0 = row - means[k], row - mean
        out.append(gap @ precision @ gap - gap0 @ background @ gap0)
    return np.array(out)


def test_scores_are_the_relative_mahalanobis_distance():
    stats = _stats(4, 6)
    rng = np.random.default_rng(1)
    z, c = rng.normal(scale=4.0, size=(9, 6)), rng.integers(0, 4, 9)
    np.testing.assert_allclose(score_numpy(stats, z, c), _reference(stats, z, c), rtol=1e-10)
    # The class matters: the same features scored for another class differ.
    assert not np.allclose(score_numpy(stats, z, c), score_numpy(stats, z, (c + 1) % 4))


def test_fit_stats_are_the_class_means_and_the_inverse_covariances():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(300, 3))
    classes = np.repeat([0, 1, 2], 100)
    stats = fit_stats(features, classes, 3)
    for c in range(3):
        np.testing.assert_allclose(stats.class_means[c].numpy(),
                                   features[classes == c].mean(axis=0))
    centred = features - stats.class_means.numpy()[classes]
    covariance = centred.T @ centred / len(centred) + 1e-3 * np.eye(3)
    np.testing.assert_allclose(stats.precision.numpy() @ covariance, np.eye(3), atol=1e-10)
    with pytest.raises(ValueError, match=r'every class 0..3 needs features'):
        fit_stats(features, classes, 4)


def test_the_shipped_model_carries_statistics_fitted_on_reserved_simulated_scenes():
    loaded = load_checkpoint()
    assert loaded.novelty is not None
    record = loaded.info['novelty']
    assert (record['scenes'], record['first_seed'], record['quantile']) == (300, 5_100_000, 99.0)
    assert record['threshold'] == pytest.approx(loaded.novelty.threshold, abs=1e-4)
    assert loaded.novelty.class_means.shape == (len(loaded.class_names),
                                                penultimate_width(loaded.model))


def test_a_checkpoint_keeps_its_novelty_statistics(tiny_model, tmp_path):
    loaded = load_checkpoint(tiny_model)
    assert loaded.novelty is None
    width = penultimate_width(loaded.model)
    stats = _stats(len(loaded.class_names), width, threshold=3.5)
    path = tmp_path / 'with.pt'
    save_checkpoint(path, loaded.model, loaded.class_names, loaded.num_points,
                    loaded.normalization, novelty=stats)
    again = load_checkpoint(path).novelty
    assert again is not None and again.threshold == 3.5
    for name in TENSOR_NAMES:
        assert torch.equal(getattr(again, name), getattr(stats, name))


def test_calibrating_a_model_keeps_its_novelty_statistics(tiny_model, tmp_path):
    """Temperatures move neither the features nor the predicted class: the stats stay."""
    from pointcam_ros.learn.dataset import ObjectDataset
    from pointcam_ros.learn.train import calibrate
    loaded = load_checkpoint(tiny_model)
    stats = _stats(len(loaded.class_names), penultimate_width(loaded.model), threshold=2.5)
    path = tmp_path / 'with.pt'
    save_checkpoint(path, loaded.model, loaded.class_names, loaded.num_points,
                    loaded.normalization, novelty=stats)
    rng = np.random.default_rng(3)
    objects = [rng.normal(size=(int(n), 3)).astype(np.float32) for n in rng.integers(20, 90, 70)]
    val_set = ObjectDataset(objects, rng.integers(0, len(loaded.class_names), 70),
                            np.full(70, 10.0), np.arange(70), list(loaded.class_names))
    calibrate(path, val_set, torch.device('cpu'))
    again = load_checkpoint(path)
    assert again.temperature != 1.0 and again.novelty is not None
    assert again.novelty.threshold == 2.5
    assert torch.equal(again.novelty.precision, stats.precision)


def _payload(tiny_model, tmp_path) -> dict:
    loaded = load_checkpoint(tiny_model)
    path = tmp_path / 'with.pt'
    save_checkpoint(path, loaded.model, loaded.class_names, loaded.num_points,
                    loaded.normalization,
                    novelty=_stats(len(loaded.class_names), penultimate_width(loaded.model)))
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize('change, message', [
    (lambda n: n['precision'].__setitem__((0, 0), float('nan')),
     r"field 'novelty.precision' holds 1 NaN/Inf values"),
    (lambda n: n.__setitem__('class_means', torch.zeros(7, 17)),
     r"field 'novelty.class_means' has shape \(7, 17\).*needs \(7, 16\): the statistics do "
     r'not fit the model'),
    (lambda n: n.__setitem__('threshold', float('inf')),
     r"field 'novelty.threshold' must be a finite number"),
    (lambda n: n.pop('mean'), r"field 'novelty' must be a mapping of class_means"),
    (lambda n: n.__setitem__(3, 1.0), r"field 'novelty' must be a mapping of class_means"),
    (lambda n: n.__setitem__('threshold', 10 ** 400),
     r"field 'novelty.threshold' must be a finite number"),
    (lambda n: n['precision'].__setitem__((0, 1), n['precision'][0, 1] + 1e-3),
     r"field 'novelty.precision' is not symmetric .* fit the statistics again"),
    (lambda n: n['background_precision'].neg_(),
     r"field 'novelty.background_precision' is not positive definite: it is not the inverse"),
])
def test_broken_novelty_statistics_are_refused_by_name(tiny_model, tmp_path, change, message):
    payload = _payload(tiny_model, tmp_path)
    change(payload['novelty'])
    path = tmp_path / 'broken.pt'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_badly_conditioned_statistics_are_fitted_symmetric_saved_and_loaded(tiny_model, tmp_path):
    """Tight, far-apart classes: an LU inverse is asymmetric beyond the loader's bound."""
    loaded = load_checkpoint(tiny_model)
    classes, width = len(loaded.class_names), penultimate_width(loaded.model)
    rng = np.random.default_rng(0)
    labels = np.arange(60 * width) % classes
    features = (100 * rng.normal(size=(classes, width)))[labels] + 0.01 * rng.normal(
        size=(len(labels), width))
    stats = fit_stats(features, labels, classes, threshold=1.0)
    for matrix in (stats.precision, stats.background_precision):
        assert torch.equal(matrix, matrix.T)
    path = tmp_path / 'tight.pt'
    save_checkpoint(path, loaded.model, loaded.class_names, loaded.num_points,
                    loaded.normalization, novelty=stats)
    assert torch.equal(load_checkpoint(path).novelty.background_precision,
                       stats.background_precision)


def test_statistics_for_a_classifier_wider_than_the_bound_are_not_saved(tmp_path):
    model = PointNetClassifier(PointNetConfig(
        num_classes=3, mlp1=(8,), mlp2=(8, 16), head=(8, MAX_NOVELTY_WIDTH + 1),
        tnet_conv=(8, 8, 8), tnet_fc=(8, 8))).eval()
    stats = _stats(3, MAX_NOVELTY_WIDTH + 1)
    with pytest.raises(ValueError, match=r'cannot save .*more than 1024'):
        save_checkpoint(tmp_path / 'wide.pt', model, ['a', 'b', 'c'], 64, 'center',
                        novelty=stats)


def test_a_file_the_loader_would_refuse_is_not_saved_nor_the_old_one_lost(
        tiny_model, tmp_path):
    """2 MB of info: a pickle record over the loader's 1 MiB bound."""
    loaded = load_checkpoint(tiny_model)
    path = tmp_path / 'model.pt'
    path.write_bytes(b'the old file')
    with pytest.raises(ValueError, match=r'cannot save .*load_checkpoint would refuse'):
        save_checkpoint(path, loaded.model, loaded.class_names, loaded.num_points,
                        loaded.normalization, info={'notes': 'x' * 2_000_000})
    assert path.read_bytes() == b'the old file'
    assert [p.name for p in tmp_path.iterdir()] == ['model.pt']  # no temporary left


def test_a_temperature_beyond_float_range_is_refused_by_name(tiny_model, tmp_path):
    payload = torch.load(tiny_model, weights_only=True)
    payload['temperature'] = 10 ** 400
    torch.save(payload, tmp_path / 'hot.pt')
    with pytest.raises(CheckpointError, match=r"field 'temperature' must be a finite number"):
        load_checkpoint(tmp_path / 'hot.pt')


@pytest.mark.parametrize('score, name, kind', [
    (5.0, 'car', 'novel'), (5.0, 'pedestrian', 'novel'),
    (1.0, 'car', ''),  # at or below the threshold
    (float('nan'), 'car', ''),  # not scored
    (5.0, 'tree', ''), (5.0, 'background', ''),  # not road users
])
def test_novelty_rule_checks_road_users_above_the_threshold(score, name, kind):
    assert rules.novelty_rule(score, 1.0, name)[0] == kind
    assert 'novel' in rules.UNKNOWN_RULES


@pytest.fixture(scope='module')
def street_scan():
    """Scan a simulated street on an HDL-32E: points (M, 3) float32."""
    xyz, _, _ = scan(random_scene(2_000_401, 'street'), SENSORS['hdl32'], 3).flat()
    return xyz


def _with_threshold(loaded, threshold: float):
    stats = _stats(len(loaded.class_names), penultimate_width(loaded.model))
    return dataclasses.replace(loaded, novelty=dataclasses.replace(stats, threshold=threshold))


def _assert_scores_are_the_clusters(pipeline: ScenePipeline, xyz: np.ndarray) -> list:
    """
    Process ``xyz`` and check each object's score against its cluster's features.

    The features are drawn apart with the pipeline's seed
    (``pointcam_novelty``'s ``cluster_features``), scored for the class the
    model predicted: compared where no rule showed background instead.
    Returns the objects.
    """
    out = pipeline.process(xyz)
    features = fitting.cluster_features(pipeline, xyz, out)
    kept = [k for k, obj in enumerate(out.objects)
            if obj.rule.split(':')[0] not in BACKGROUND_RULES]
    predicted = np.array([out.objects[k].class_id for k in kept])
    np.testing.assert_allclose([out.objects[k].novelty for k in kept],
                               score_numpy(pipeline.loaded.novelty, features[kept], predicted),
                               rtol=1e-5)
    return out.objects


def test_the_pipeline_scores_the_features_of_each_cluster(street_scan):
    """Numpy backend: the scores of the clusters' features drawn apart with the same seed."""
    loaded = _with_threshold(load_checkpoint(), math.inf)
    pipeline = ScenePipeline(PipelineConfig(device='cpu'), loaded=loaded, backend='numpy')
    objects = _assert_scores_are_the_clusters(pipeline, street_scan)
    assert len(objects) > 10
    scored = [obj.novelty for obj in objects]
    assert np.isfinite(scored).all()
    # The torch backend draws its samples with torch's generator: the repeats that fill a
    # small cluster to num_points move its centroid a little, so the scores differ a little.
    torch_out = ScenePipeline(PipelineConfig(device='cpu'), loaded=loaded,
                              backend='torch').process(street_scan)
    assert [obj.num_points for obj in torch_out.objects] == [obj.num_points for obj in objects]
    np.testing.assert_allclose([obj.novelty for obj in torch_out.objects], scored, rtol=0.02)


def test_a_road_user_above_the_threshold_is_shown_as_unknown_in_scene_mode(street_scan):
    loaded = dataclasses.replace(load_checkpoint(), novelty=None)
    plain = ScenePipeline(PipelineConfig(device='cpu'), loaded=loaded).process(street_scan)
    assert all(math.isnan(obj.novelty) for obj in plain.objects)  # no statistics: no score
    named = [obj for obj in plain.objects
             if not obj.unknown and obj.class_name in rules.ROAD_USERS]
    assert named
    strict = _with_threshold(loaded, -math.inf)
    out = ScenePipeline(PipelineConfig(device='cpu'), loaded=strict).process(street_scan)
    for before in named:
        after = out.objects[before.object_id]
        assert after.unknown and after.rule.startswith('novel: novelty ')
        assert after.class_name == before.class_name and after.confidence == before.confidence
        assert (out.class_id[out.object_id == after.object_id] == -2).all()
    # Objects the model does not call road users are never judged.
    others = [obj for obj in out.objects if obj.class_name not in rules.ROAD_USERS]
    assert others and not any(obj.rule.startswith('novel') for obj in others)
    # 'disabled' leaves them named, and object mode does not judge.
    off = ScenePipeline(PipelineConfig(device='cpu', novelty_check='disabled'), loaded=strict)
    assert not any(obj.rule.startswith('novel') for obj in off.process(street_scan).objects)
    crop = ScenePipeline(PipelineConfig(device='cpu', mode='object'), loaded=strict)
    [whole] = crop.process(street_scan[plain.object_id == named[0].object_id]).objects
    assert not whole.rule.startswith('novel') and math.isfinite(whole.novelty)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_the_features_are_the_classifier_s_input_in_every_family(family):
    """classifier(head(pooled)) are the logits; the CAM pass reports the same pooled."""
    model = build_model(family, 4, 5, **SMALL[family]).eval()
    points = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(2))
    pooled = pooled_features(model, points)
    features = penultimate_features(model, pooled)
    assert features.shape == (3, penultimate_width(model))
    torch.testing.assert_close(model.classifier(features), model(points))
    explained = make_explainer('gradcam', model)(points)
    torch.testing.assert_close(explained.pooled, pooled)


def test_scores_are_for_the_predicted_class_and_not_made_when_disabled(street_scan):
    """An explained class other than the predicted one does not change the scores."""
    loaded = _with_threshold(load_checkpoint(), math.inf)
    scores = {}
    for target in ('', 'pedestrian'):
        out = ScenePipeline(PipelineConfig(device='cpu', target_class=target),
                            loaded=loaded).process(street_scan)
        scores[target] = [obj.novelty for obj in out.objects]
    assert np.isfinite(scores['']).all()
    np.testing.assert_array_equal(scores['pedestrian'], scores[''])
    off = ScenePipeline(PipelineConfig(device='cpu', novelty_check='disabled'), loaded=loaded)
    assert all(math.isnan(obj.novelty) for obj in off.process(street_scan).objects)


def test_a_model_without_pooled_features_cannot_carry_statistics(tiny_model):
    """A protocol model with a head and a Linear classifier but no pool: refused up front."""
    from pointcam_ros.model.protocol import ExplainableModel

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Conv1d(3, 8, 1)
            self.head = torch.nn.Identity()
            self.classifier = torch.nn.Linear(8, 7)

        def forward(self, points, mask=None):
            return self.classifier(self.head(self.features(points).amax(dim=2)))

    model = ExplainableModel(Net(), num_classes=7, in_channels=3, cam_layer='features').eval()
    loaded = load_checkpoint(tiny_model)
    mine = dataclasses.replace(loaded, model=model, novelty=_stats(7, 8))
    assert penultimate_width(model) is None
    with pytest.raises(CheckpointError, match='no pooled features and Linear classifier'):
        ScenePipeline(PipelineConfig(device='cpu'), loaded=mine)


def test_the_perturbation_methods_are_scored_on_their_unperturbed_pass(street_scan):
    """Occlusion runs the classifier on perturbed copies too: the scores are the objects'."""
    loaded = _with_threshold(load_checkpoint(), math.inf)
    pipeline = ScenePipeline(PipelineConfig(device='cpu', method='occlusion'), loaded=loaded,
                             backend='numpy')
    _assert_scores_are_the_clusters(pipeline, street_scan)


@pytest.mark.parametrize('method', ['occlusion', 'pointshift'])
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_the_perturbation_methods_report_the_pooled_features_and_logits_of_a_plain_pass(
        family, method):
    """Their pass on the objects is the model's own: same logits, pooled features reported."""
    model = build_model(family, 4, 5, **SMALL[family]).eval()
    points = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(8))
    explained = make_explainer(method, model)(points)
    torch.testing.assert_close(explained.pooled, pooled_features(model, points), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(explained.logits, model(points), rtol=0, atol=0)


class _RunHelper(torch.nn.Module):
    """A model of the protocol (no wrapper) with a head, a classifier and a run() of its own."""

    config = PointNetConfig(num_classes=4, in_channels=3)

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv1d(3, 8, 1)
        self.head = torch.nn.Identity()
        self.classifier = torch.nn.Linear(8, 4)

    @property
    def cam_layer(self):
        return self.features

    def check_input(self, points, mask):
        pass

    def run(self, points, mask=None):  # a predict helper, not PointNet's run
        return self(points, mask).argmax(dim=1)

    def forward(self, points, mask=None):
        return self.classifier(self.head(self.features(points).amax(dim=2)))


@pytest.mark.parametrize('method', ['occlusion', 'pointshift'])
def test_a_model_with_a_run_of_its_own_is_called_as_it_is(method):
    """Only the families' own forward is taken apart: any other model is just called."""
    model = _RunHelper().eval()
    assert penultimate_width(model) is None  # no statistics for it either
    points = torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(9))
    explained = make_explainer(method, model)(points)
    assert explained.pooled is None
    with torch.no_grad():
        torch.testing.assert_close(explained.logits, model(points), rtol=0, atol=0)
    with pytest.raises(TypeError, match='not a model family'):
        pooled_features(model, points)


def test_a_family_with_a_forward_or_classify_of_its_own_has_no_penultimate_width():
    """Its pooled features or the classifier's input would not be the family's own."""
    class OwnForward(PointNetClassifier):
        def forward(self, points, mask=None):
            return super().forward(points, mask) * 2

    class OwnClassify(PointNetClassifier):
        def classify(self, global_features):
            return super().classify(global_features) * 2

    config = PointNetConfig(num_classes=4, in_channels=3)
    assert penultimate_width(PointNetClassifier(config)) is not None
    assert penultimate_width(OwnForward(config)) is None
    assert penultimate_width(OwnClassify(config)) is None


def test_a_family_subclass_explained_through_hooks_is_scored_by_a_plain_pass(street_scan):
    """Grad-CAM reaches a PointNet++ without POOLING by hooks (no pooled): one more pass."""
    loaded = load_checkpoint()

    class Hooked(PointNet2Classifier):
        POOLING = property(lambda self: self.missing)  # hasattr(POOLING) is False

    model = Hooked(PointNet2Config(**{**SMALL['pointnet2'], 'num_classes': len(
        loaded.class_names), 'in_channels': loaded.model.config.in_channels})).eval()
    assert make_explainer('gradcam', model).path == 'hooks'
    width = penultimate_width(model)
    mine = dataclasses.replace(loaded, model=model, novelty=_stats(len(loaded.class_names),
                                                                   width))
    pipeline = ScenePipeline(PipelineConfig(device='cpu'), loaded=mine, backend='numpy')
    _assert_scores_are_the_clusters(pipeline, street_scan)


@pytest.mark.parametrize('method', ['gradcam', 'gradcam++', 'xgradcam', 'hirescam'])
def test_the_cam_methods_report_the_pooled_features_of_their_own_pass(method):
    """The pipeline scores these; a plain pass gives the same features."""
    loaded = load_checkpoint()
    rng = np.random.default_rng(6)
    chunk = torch.from_numpy(rng.normal(size=(5, 5, loaded.num_points)).astype(np.float32))
    explained = make_explainer(method, loaded.model, loaded.class_names)(chunk)
    assert explained.pooled is not None
    torch.testing.assert_close(explained.pooled, pooled_features(loaded.model, chunk))
    features = penultimate_features(loaded.model, explained.pooled)
    assert features.shape == (5, penultimate_width(loaded.model))


def test_pointcam_novelty_writes_a_checkpoint_with_statistics(tmp_path, capsys):
    """20 scenes, the 90th percentile: the shipped model's weights with new statistics."""
    model = tmp_path / 'in.pt'
    model.write_bytes(open(load_checkpoint().path, 'rb').read())
    out = tmp_path / 'out.pt'
    argv = ['--model', str(model), '--out', str(out), '--scenes', '20', '--quantile', '90']
    assert fitting.main(argv) == 0
    loaded = load_checkpoint(out)
    assert loaded.novelty is not None and math.isfinite(loaded.novelty.threshold)
    record = loaded.info['novelty']
    assert record['scenes'] == 20 and record['quantile'] == 90.0
    assert record['fitted'] >= fitting.MIN_CLUSTERS_PER_FEATURE * 128  # and recorded
    original = load_checkpoint(model)
    for key, value in original.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert 'wrote' in capsys.readouterr().out
    # An output never replaces its input, not even with --force.
    with pytest.raises(SystemExit):
        fitting.main(['--model', str(model), '--out', str(model), '--scenes', '20', '--force'])
    assert 'same file' in capsys.readouterr().err


def test_pointcam_novelty_refuses_too_few_clusters_for_the_covariance(tmp_path, capsys):
    """Two scenes give the shipped model (128 features) far fewer than 640 clusters."""
    out = tmp_path / 'out.pt'
    argv = ['--model', load_checkpoint().path, '--out', str(out), '--scenes', '2']
    assert fitting.main(argv) == 1
    err = capsys.readouterr().err
    assert 'clusters to fit 128 features: at least 640 are needed' in err
    assert 'fit on more scenes' in err and not out.exists()


def test_two_pipelines_on_one_model_in_two_threads_score_their_own_objects():
    """Each thread's scores are its own scan's, as when run alone (no shared state)."""
    loaded = load_checkpoint()
    scans = [scan(random_scene(seed, 'street'), SENSORS['hdl32'], seed).flat()[0]
             for seed in (2_000_401, 2_000_402)]
    pipelines = [ScenePipeline(PipelineConfig(device='cpu'), loaded=loaded) for _ in scans]
    alone = [[obj.novelty for obj in p.process(xyz).objects] for p, xyz in zip(pipelines, scans)]
    assert len(alone[0]) != len(alone[1])  # a mix-up would show as a shape or value error
    results = repeat_in_threads(
        [lambda i=i: [obj.novelty for obj in pipelines[i].process(scans[i]).objects]
         for i in range(2)], 4)
    for i in range(2):
        assert len(results[i]) == 4  # no run raised
        for scores in results[i]:
            np.testing.assert_allclose(scores, alone[i], rtol=1e-7)
