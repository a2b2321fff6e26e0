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

"""Numpy-only results of the scene pipeline, shared by perception, io and ros."""

from dataclasses import dataclass, field

import numpy as np

#: ``label`` / ``class_id`` of points outside every object.
NO_OBJECT = -1
#: ``label`` / ``class_id`` of the points of an object whose confidence is below
#: ``min_confidence``: its saliency is still for its predicted class.
UNKNOWN = -2


@dataclass
class DetectedObject:
    """
    One classified object of a scan, in the input frame.

    ``center`` (3,) and ``size`` (3,) float64 of an oriented box whose yaw
    (rad, about z) follows the object's main horizontal axis.
    """

    object_id: int
    class_id: int
    class_name: str
    confidence: float
    target_class: str
    num_points: int
    center: np.ndarray
    size: np.ndarray
    yaw: float
    unknown: bool = False  # confidence below min_confidence: shown as "unknown (car 0.41)"
    rule: str = ''  # why a rule overrode the model: 'sliver: ...', 'oversize: ...', 'few: ...'
    #: How unlike its training data the model finds the cluster, for the class it predicted
    #: (pointcam_ros.model.novelty; the model's class also where a rule shows background);
    #: NaN when not scored (a model without statistics, or novelty_check disabled).
    novelty: float = float('nan')


@dataclass
class SceneResult:
    """
    Per-point and per-object results for an ``(M, 3)`` input.

    ``saliency`` (M,) float32 in [0, 1]; ``class_id`` and ``object_id`` (M,)
    int32, -1 outside objects; ``objects`` one entry per object id;
    ``timings`` milliseconds per stage (segment, sample, model, map_back).
    """

    saliency: np.ndarray
    class_id: np.ndarray
    object_id: np.ndarray
    objects: list[DetectedObject] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = 'cpu'
    #: Clusters left unexplained by the per-scan object cap (the largest are kept).
    objects_capped: int = 0
