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
Console entry points of the ROS executables that stay quiet on an early Ctrl-C.

``pointcam_node``, ``pointcam_sim`` and ``pointcam_demo`` import torch,
rclpy and open3d, which takes seconds. A Ctrl-C in that time would raise
``KeyboardInterrupt`` deep inside an import, print its traceback and leave
half-initialised modules behind. These wrappers hold SIGINT and SIGTERM while
they import the real ``main`` and, if one came, exit at once: 130 for
SIGINT, 0 for SIGTERM, as a running node does. This module imports nothing heavy.
"""

import importlib
import signal
from typing import Optional

_HELD = (signal.SIGINT, signal.SIGTERM)


def _run(module: str, args: Optional[list[str]]) -> int:
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum))
                for signum in _HELD}
    try:
        main = importlib.import_module(module).main
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        return 130 if caught[0] == signal.SIGINT else 0
    return main(args)


def node(args: Optional[list[str]] = None) -> int:
    """``pointcam_node``: :func:`pointcam_ros.ros.node.main`."""
    return _run('pointcam_ros.ros.node', args)


def sim(args: Optional[list[str]] = None) -> int:
    """``pointcam_sim``: :func:`pointcam_ros.ros.sim_node.main`."""
    return _run('pointcam_ros.ros.sim_node', args)


def demo(args: Optional[list[str]] = None) -> int:
    """``pointcam_demo``: :func:`pointcam_ros.ros.demo.main`."""
    return _run('pointcam_ros.ros.demo', args)
