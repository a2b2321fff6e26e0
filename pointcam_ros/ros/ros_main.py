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
"""Shared entry-point logic of the rclpy executables (init, signals, spin, clean shutdown)."""

import signal
from typing import Any, Callable, Optional

from pointcam_ros.model.checkpoint import CheckpointError
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def spin_node(factory: Callable[[], Node], name: str,
              args: Optional[list[str]] = None) -> int:
    """
    Create a node with ``factory``, spin it until Ctrl-C / SIGTERM, shut down cleanly.

    Returns the process exit code: 0, or 1 when the node cannot start (bad
    parameters or model), after logging why. Works on Humble (no context
    manager for ``rclpy.init``, SIGINT-only handling) as on Jazzy/Kilted.
    """
    rclpy.init(args=args)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # Humble's rclpy handles SIGINT only; newer ones install their own SIGTERM handler.
        signal.signal(signal.SIGTERM, _terminate)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, CheckpointError) as exc:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
        return 1
    finally:
        if node is not None:
            stop = getattr(node, 'stop', None)
            if stop is not None:
                stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
