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
One PointCloud2 scan through a pipeline: decode, process, encode.

The node (``pointcam_node``) and the bag tool (``pointcam_bag``) explain a
message the same way, with one call::

    scan = explain_cloud(msg, pipeline.process)  # decode -> process -> encode
    scan.cloud                                   # the saliency cloud (PackedCloud)
    scan.markers                                 # the label markers (MarkerSpec)

The pipeline comes in as its ``process`` callable (``(M, 3)`` float32
points to a :class:`~pointcam_ros.common.results.SceneResult`), so this
module sits below ``perception/`` in the layering and ``perception/``
never sees a PointCloud2: followed from a message to the saliency cloud,
a scan enters ``formats/`` once (here) and ``perception/`` once
(``process``). Wrapping the packed cloud and the markers into rclpy or
rosbags messages stays with the caller (``ros/ros_msgs``,
``formats/bag_io``).
"""

from dataclasses import dataclass
import time
from typing import Any, Callable, Optional

import numpy as np
from pointcam_ros.common.results import SceneResult
from pointcam_ros.formats.cloud_io import (
    CloudPoints, PackedCloud, read_cloud, saliency_cloud, SALIENCY_POINT_STEP)
from pointcam_ros.formats.markers import MarkerSpec, object_markers

#: A pipeline's ``process``: ``(M, 3)`` float32 points to their result.
Process = Callable[[np.ndarray], SceneResult]
#: Makes a writable buffer of the given number of bytes for the saliency cloud's data.
Buffer = Callable[[int], Any]


@dataclass
class ExplainedCloud:
    """
    One decoded, explained and encoded PointCloud2 scan.

    ``points``: the cloud's M valid points (``xyz`` ``(M, 3)`` float32);
    ``result``: the pipeline's answer for them (per point ``(M,)``);
    ``cloud``: the saliency cloud, one point per valid input point (x y z
    intensity label object_id; give it the input's header), None when not
    encoded; ``markers``: the label markers of the objects (boxes and "car
    0.93" texts, after a ``DELETEALL``), None when not asked for.
    ``decode_ms``, ``process_ms``, ``encode_ms``: wall time of the three
    steps (encoding: cloud and markers).
    """

    points: CloudPoints
    result: SceneResult
    cloud: Optional[PackedCloud]
    markers: Optional[list[MarkerSpec]]
    decode_ms: float
    process_ms: float
    encode_ms: float = 0.0


def explain_cloud(cloud: Any, process: Process, encode: bool = True, labels: bool = True,
                  buffer: Optional[Buffer] = None,
                  max_points: Optional[int] = None) -> ExplainedCloud:
    """
    Decode ``cloud`` (rclpy, rosbags or :class:`PackedCloud`), ``process`` it, encode the answer.

    ``encode``: build the saliency cloud, ``labels``: the markers (skip
    what nobody reads).
    ``buffer``: makes the cloud's data buffer from its size in bytes (the
    node passes one a ROS message takes over without a copy); default
    ``bytes``. ``max_points``: a cloud of more points (width x height) is
    refused before it is decoded (the pipeline's ``max_input_points``).
    Raises :class:`~pointcam_ros.formats.cloud_io.CloudFormatError` for a
    malformed or too large cloud and whatever ``process`` raises for a scan
    it refuses (the pipeline's ``ScanError``).
    """
    started = time.perf_counter()
    points = read_cloud(cloud, max_points=max_points)
    decoded = time.perf_counter()
    result = process(points.xyz)
    processed = time.perf_counter()
    out = None
    if encode:
        data = None if buffer is None else buffer(points.xyz.shape[0] * SALIENCY_POINT_STEP)
        out = saliency_cloud(points.xyz, result.saliency, result.class_id, result.object_id,
                             buffer=data)
    markers = object_markers(result.objects) if labels else None
    return ExplainedCloud(points, result, out, markers, decode_ms=1e3 * (decoded - started),
                          process_ms=1e3 * (processed - decoded),
                          encode_ms=1e3 * (time.perf_counter() - processed))
