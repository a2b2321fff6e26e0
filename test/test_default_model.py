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
The model shipped in the package, on a small test set simulated afresh.

Scenes come from seeds 3,000,000 and up, used by no split of training
(train 0+, val 1,000,000+, test 2,000,000+); street, campus and open scenes
mixed as in training. The bars are set below the figures measured on the
15,994-object test set (docs/model.md) to allow for the smaller sample.
"""

import numpy as np
from pointcam_ros.learn import evaluate
from pointcam_ros.learn.calibration import expected_calibration_error, softmax
from pointcam_ros.learn.dataset import build_dataset, ObjectDataset
from pointcam_ros.learn.metrics import collect_logits, confusion_matrix, metrics
from pointcam_ros.model.checkpoint import load_checkpoint
import pytest
import torch

pytestmark = pytest.mark.slow  # ~40 s: -m "not slow" leaves these out of a quick local run

FRESH_SEEDS = range(3_000_000, 3_000_040)
# Set for the shipped model of 0.2.0 (fine-tuned on the simulator with shrub rows, billboards
# and scenes out to 100 m, objects cut by both segmentation designs): 0.876 on its
# 15,994-object test set; on these 2,809 fresh objects (cut by the default `range` design)
# 0.873, lowest class background 0.827 of 1,431, calibrated ECE 0.021 by points (0.022 with
# one temperature). The model of 0.1.0 scores 0.816 here (truck 0.669, background 0.767; ECE
# 0.079): every bar below fails it.
ACCURACY_BAR = 0.85
CLASS_BAR = 0.78
ECE_BAR = 0.05  # calibrated ECE 0.013 on the test set (by points; one temperature: 0.015)
# Point dropping, 20 % of the points, 13 (5 %) at a time with the saliency recomputed in
# between (`pointcam_eval --step 5`), on FAITHFUL_OBJECTS of these fresh objects. Measured:
# Grad-CAM's top 20 % cost 11.5 accuracy points, a random 20 % 0.0, the least salient 20 %
# 0.5 (README, 1,000 test objects: 11.8, 0.0 and -0.6, against bars of >= 8 and <= 1). Here
# one object is 0.52 points and a drop's standard error ~2.3 points, hence bars of 6 and 2.
# A saliency of random numbers costs 1.0 point and an inverted one 0.0: both fail the top
# bar. The full curves (to 50 %, 0.5 % steps, all objects) are bench work (`pointcam_eval`).
FAITHFUL_OBJECTS = 192
TOP_DROP_BAR = 0.06
RANDOM_DROP_BAR = 0.02


@pytest.fixture(scope='module')
def fresh():
    loaded = load_checkpoint()
    return loaded, build_dataset(FRESH_SEEDS, progress=False)


@pytest.fixture(scope='module')
def logits(fresh):
    """Return the shipped model's logits of every fresh object (predict() is their arg-max)."""
    loaded, data = fresh
    return collect_logits(loaded.model, data, loaded.num_points, loaded.normalization,
                          torch.device('cpu'))


def test_shipped_model_is_small_and_self_describing(fresh):
    loaded, data = fresh
    assert loaded.class_names == data.class_names
    assert loaded.normalization == 'view_ground' and loaded.num_points == 256
    assert loaded.model.config.in_channels == 5


def test_shipped_model_accuracy_on_unseen_scenes(fresh, logits):
    loaded, data = fresh
    assert len(data) > 500 and logits.shape == (len(data), len(data.class_names))
    predicted = logits.argmax(axis=1)
    result = metrics(confusion_matrix(data.labels, predicted, len(data.class_names)),
                     data.class_names)
    assert result['accuracy'] >= ACCURACY_BAR, result
    for name, row in result['per_class'].items():
        if row['support'] >= 40:
            assert row['accuracy'] >= CLASS_BAR, (name, row)


def test_shipped_model_saliency_is_faithful(fresh, monkeypatch):
    loaded, data = fresh
    subset = np.random.default_rng(0).permutation(len(data))[:FAITHFUL_OBJECTS]
    sample = ObjectDataset([data.points[i] for i in subset], data.labels[subset],
                           data.distance[subset], data.seeds[subset], data.class_names)
    # The curve up to 20 % only (the bars are about 20 %): a third of the full curve's cost.
    monkeypatch.setattr(evaluate, 'DROP_FRACTIONS', (0.1, 0.2))
    result = evaluate.faithfulness(loaded, sample, 'gradcam', progress=False, step=0.05)
    assert result['objects'] == FAITHFUL_OBJECTS and result['drop_fractions'] == [0.1, 0.2]
    base = result['accuracy_no_drop']
    top, random, least = (result['curves'][order]['accuracy'][1]
                          for order in ('most_salient', 'random', 'least_salient'))
    assert base - top >= TOP_DROP_BAR, result
    assert base - random <= RANDOM_DROP_BAR, result
    # Least salient first must cost no more than random, judged within two binomial
    # standard errors of an accuracy on this many objects (~3.6 points).
    noise = 2 * np.sqrt(random * (1 - random) / FAITHFUL_OBJECTS)
    assert least >= random - noise, result


def test_shipped_model_is_calibrated(fresh, logits):
    loaded, data = fresh
    assert loaded.temperature_bands is not None and 'calibration' in loaded.info
    counts = torch.tensor([len(points) for points in data.points])
    temperatures = loaded.temperatures(counts).double().numpy()
    after = expected_calibration_error(softmax(logits, temperatures), data.labels)
    assert after <= ECE_BAR, after
