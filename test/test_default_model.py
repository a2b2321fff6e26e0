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
10,378-object test set (see README) to allow for the smaller sample.
"""

import numpy as np
from pointcam_ros.learn.calibration import expected_calibration_error, softmax
from pointcam_ros.learn.dataset import build_dataset
from pointcam_ros.learn.evaluate import faithfulness
from pointcam_ros.learn.metrics import collect_logits, confusion_matrix, metrics, predict
from pointcam_ros.model.checkpoint import load_checkpoint
import pytest
import torch

FRESH_SEEDS = range(3_000_000, 3_000_040)
# Set for the shipped model, fine-tuned with the sensor-view input plus each point's height
# above the ground on the street/campus/open simulator: 0.951 on the 10,378-object test set,
# every class >= 0.93 there; 0.936 on these 1,778 fresh objects (lowest classes: truck 0.912
# of 125, background 0.912 of 839; calibrated ECE 0.014).
ACCURACY_BAR = 0.92  # the previous (view_range) model: 0.903
CLASS_BAR = 0.87  # the previous model's lowest class: 0.863
ECE_BAR = 0.05  # calibrated ECE 0.006 on the test set
# Point dropping, 20 % of the points (measured on these fresh objects, 300 of them:
# Grad-CAM's top 20 % cost 9.0 accuracy points, random 20 % 0.0, least salient 20 %
# gained 0.3).
TOP_DROP_BAR = 0.06
RANDOM_DROP_BAR = 0.02


@pytest.fixture(scope='module')
def fresh():
    loaded = load_checkpoint()
    return loaded, build_dataset(FRESH_SEEDS, progress=False)


def test_shipped_model_is_small_and_self_describing(fresh):
    loaded, data = fresh
    assert loaded.class_names == data.class_names
    assert loaded.normalization == 'view_ground' and loaded.num_points == 256
    assert loaded.model.config.in_channels == 5


def test_shipped_model_accuracy_on_unseen_scenes(fresh):
    loaded, data = fresh
    assert len(data) > 500
    predicted = predict(loaded.model, data, loaded.num_points, loaded.normalization,
                        torch.device('cpu'))
    result = metrics(confusion_matrix(data.labels, predicted, len(data.class_names)),
                     data.class_names)
    assert result['accuracy'] >= ACCURACY_BAR, result
    for name, row in result['per_class'].items():
        if row['support'] >= 40:
            assert row['accuracy'] >= CLASS_BAR, (name, row)


def test_shipped_model_saliency_is_faithful(fresh):
    loaded, data = fresh
    rng = np.random.default_rng(0)
    subset = rng.choice(len(data), size=300, replace=False)
    from pointcam_ros.learn.dataset import ObjectDataset
    sample = ObjectDataset([data.points[i] for i in subset], data.labels[subset],
                           data.distance[subset], data.seeds[subset], data.class_names)
    result = faithfulness(loaded, sample, 'gradcam', progress=False)
    k = result['drop_fractions'].index(0.2)
    base = result['accuracy_no_drop']
    curves = result['curves']
    assert base - curves['most_salient']['accuracy'][k] >= TOP_DROP_BAR, result
    assert base - curves['random']['accuracy'][k] <= RANDOM_DROP_BAR, result
    # Least salient first must cost no more than random. On 300 objects an accuracy has a
    # binomial standard error of ~2 points, so "no more" is judged within two of them (on
    # 1,000 test objects least-salient dropping gained 1.0 point, random 0.1).
    random_acc = curves['random']['accuracy'][k]
    noise = 2 * np.sqrt(random_acc * (1 - random_acc) / len(subset))
    assert curves['least_salient']['accuracy'][k] >= random_acc - noise, result


def test_shipped_model_is_calibrated(fresh):
    loaded, data = fresh
    assert loaded.temperature != 1.0 and 'calibration' in loaded.info
    logits = collect_logits(loaded.model, data, loaded.num_points, loaded.normalization,
                            torch.device('cpu'))
    after = expected_calibration_error(softmax(logits, loaded.temperature), data.labels)
    assert after <= ECE_BAR, after
