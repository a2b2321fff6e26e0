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
Label markers for RViz, described without ROS so rclpy and rosbags can both build them.

Per scan: one ``DELETEALL`` (clears the previous scan's markers), then per
object a translucent ``CUBE`` (namespace ``boxes``) and a
``TEXT_VIEW_FACING`` "pedestrian 0.93" above it (namespace ``labels``),
coloured per class.
"""

import math
from typing import NamedTuple, Sequence

from pointcam_ros.common.results import DetectedObject

DELETEALL, ADD = 3, 0
CUBE, TEXT_VIEW_FACING = 1, 9

#: RGB per class name; unknown names get grey.
CLASS_COLORS = {
    'car': (0.20, 0.55, 1.00), 'truck': (0.10, 0.20, 0.85), 'pedestrian': (1.00, 0.25, 0.20),
    'cyclist': (1.00, 0.60, 0.10), 'pole': (0.85, 0.85, 0.20), 'tree': (0.20, 0.80, 0.30),
    'background': (0.55, 0.55, 0.55), 'unknown': (0.6, 0.6, 0.6),
}


class MarkerSpec(NamedTuple):
    """The fields of a ``visualization_msgs/Marker`` that pointcam sets."""

    ns: str
    marker_id: int
    marker_type: int
    action: int
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]  # x, y, z, w
    scale: tuple[float, float, float]
    color: tuple[float, float, float, float]  # r, g, b, a
    text: str


def yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of a rotation by ``yaw`` rad about z."""
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def label_text(obj: DetectedObject) -> str:
    """
    Return 'pedestrian 0.93', plus the explained class when it is not the predicted one.

    An object below ``min_confidence`` reads 'unknown (car 0.41)'; one a shape rule
    overrode gets the rule's name: 'unknown (car 0.97) [sliver]',
    'background 0.02 (why truck?) [oversize]' (the saliency explains the model's class).
    A confidence that is not finite (the pipeline makes such an object unknown) reads 'n/a'.
    """
    shown = f'{obj.confidence:.2f}' if math.isfinite(obj.confidence) else 'n/a'
    text = f'{obj.class_name} {shown}'
    if obj.unknown:
        text = f'unknown ({text})'
    if obj.target_class != obj.class_name:
        text += f' (why {obj.target_class}?)'
    if obj.rule:  # a rule overrode the model: name it (the reason is in DetectedObject)
        text += f" [{obj.rule.split(':', 1)[0]}]"
    return text


def delete_all() -> MarkerSpec:
    """Return the ``DELETEALL`` marker that clears the previous scan's markers."""
    return MarkerSpec('', 0, CUBE, DELETEALL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0),
                      (1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0), '')


def box_and_label(namespace: str, marker_id: int, class_name: str, center: Sequence[float],
                  size: Sequence[float], yaw: float, text: str, box_alpha: float = 0.35,
                  text_height: float = 0.6, text_lift: float = 0.5) -> list[MarkerSpec]:
    """
    Describe a translucent box and a text above it.

    Namespaces ``<namespace>boxes`` and ``<namespace>labels``; coloured by
    ``class_name`` (:data:`CLASS_COLORS`, grey if unknown).
    """
    rgb = CLASS_COLORS.get(class_name, (0.6, 0.6, 0.6))
    center = tuple(float(v) for v in center)
    size = tuple(max(float(v), 0.05) for v in size)
    top = (center[0], center[1], center[2] + size[2] / 2 + text_lift)
    return [MarkerSpec(f'{namespace}boxes', marker_id, CUBE, ADD, center, yaw_quaternion(yaw),
                       size, (*rgb, box_alpha), ''),
            MarkerSpec(f'{namespace}labels', marker_id, TEXT_VIEW_FACING, ADD, top,
                       (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, text_height), (*rgb, 1.0), text)]


def object_markers(objects: Sequence[DetectedObject]) -> list[MarkerSpec]:
    """DELETEALL followed by a box and a text per object."""
    specs = [delete_all()]
    for obj in objects:
        specs += box_and_label('', obj.object_id, 'unknown' if obj.unknown else obj.class_name,
                               obj.center, obj.size, obj.yaw, label_text(obj))
    return specs
