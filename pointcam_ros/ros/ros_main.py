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
Shared entry-point logic of the rclpy executables.

Parameters declared from the schema (:class:`~pointcam_ros.common.config.Param`),
``--help``, init, signals, spin, clean shutdown, and one clean line
``cannot start: <parameter>: <why>`` (exit code 1) for any bad start-up value.
"""

import signal
import sys
import traceback
from typing import Any, Callable, Optional, Sequence

from pointcam_ros.common.config import ConfigError, help_text, Param
from pointcam_ros.model.checkpoint import CheckpointError
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter

#: Parameters every rclpy node has; not reported as unknown.
_BUILTIN_PARAMETERS = ('use_sim_time', 'start_type_description_service')


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def descriptor_for(spec: Param) -> ParameterDescriptor:
    """ROS ``ParameterDescriptor`` of a schema parameter: description, range, read-only."""
    unit = f' ({spec.unit})' if spec.unit else ''
    descriptor = ParameterDescriptor(
        description=spec.description + unit, read_only=spec.read_only,
        additional_constraints=f'allowed: {spec.range_text()}')
    if spec.low is not None and spec.kind is float:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high))]
    elif spec.low is not None and spec.kind is int:
        descriptor.integer_range = [
            IntegerRange(from_value=int(spec.low), to_value=int(spec.high))]
    return descriptor


def declare_from_schema(node: Node, specs: Sequence[Param],
                        executable: str = '') -> dict[str, Any]:
    """
    Declare ``specs`` on ``node``; return their start-up values by name.

    Start-up values (``-p``, ``--params-file``, launch) are checked with the
    schema first, so a bad one raises :class:`ConfigError` naming it, and
    integers given for float parameters (``max_range:=10``) are converted:
    the parameters stay statically typed. At run time (``ros2 param set
    max_range 10``) the same conversion needs Jazzy or newer (a pre-set
    callback); Humble then wants ``10.0``. Unknown start-up parameters are
    logged as a warning that points to ``<executable> --help``.
    """
    # rclpy has no public accessor for the start-up values; fall back to rclpy's own
    # checks (still reported as 'cannot start: <name>: ...') where it is missing.
    overrides = getattr(node, '_parameter_overrides', {})
    values = {}
    for spec in specs:
        value = spec.default
        if spec.name in overrides:
            value = spec.check(overrides[spec.name].value)
        try:
            node.declare_parameter(spec.name, value, descriptor_for(spec),
                                   ignore_override=True)
        except Exception as exc:  # noqa: B902 - any rclpy refusal names the parameter
            raise ConfigError(spec.name, str(exc)) from exc
        values[spec.name] = node.get_parameter(spec.name).value
    floats = {spec.name for spec in specs if spec.kind is float}
    if hasattr(node, 'add_pre_set_parameters_callback'):  # Jazzy and newer, not Humble
        node.add_pre_set_parameters_callback(
            lambda parameters: [_int_to_float(p) if p.name in floats else p
                                for p in parameters])
    known = {spec.name for spec in specs} | set(_BUILTIN_PARAMETERS)
    unknown = sorted(name for name in overrides
                     if name not in known and not name.startswith('qos_overrides.'))
    if unknown:
        node.get_logger().warning(f'ignoring unknown parameters {unknown}; '
                                  f'see {executable or node.get_name()} --help')
    return values


def _int_to_float(parameter: Parameter) -> Parameter:
    if parameter.type_ == Parameter.Type.INTEGER:
        return Parameter(parameter.name, Parameter.Type.DOUBLE, float(parameter.value))
    return parameter


def wants_help(argv: Sequence[str]) -> bool:
    """Tell whether ``-h``/``--help`` comes before ``--ros-args`` in ``argv[1:]``."""
    own = list(argv[1:])
    if '--ros-args' in own:
        own = own[:own.index('--ros-args')]
    return '-h' in own or '--help' in own


def print_help(executable: str, summary: str, specs: Sequence[Param]) -> None:
    """Print usage and every parameter of ``specs`` (CLI only)."""
    ros_args = '[--ros-args -p NAME:=VALUE ... --params-file FILE -r FROM:=TO]'
    print(f'usage: {executable} {ros_args}              (pip install)\n'
          f'       ros2 run pointcam_ros {executable} {ros_args}   (ROS workspace)\n\n'
          f'{summary}\n\nparameters:\n{help_text(specs)}', end='')


def _first_line(exc: BaseException) -> str:
    """Return the first non-empty line of ``exc``'s message, at most 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _start_failure(logger: Any, exc: Exception) -> None:
    """Log why a node could not start in one line ``cannot start: <parameter>: <why>``."""
    if isinstance(exc, ConfigError):
        logger.fatal(f'cannot start: {exc}')
    elif isinstance(exc, CheckpointError):
        logger.fatal(f'cannot start: model_path: {exc}')
    else:  # no traceback for a start-up failure; rclpy's messages may draw carets below
        logger.fatal(f'cannot start: {type(exc).__name__}: {_first_line(exc)}')
        logger.debug(f'start-up traceback:\n{traceback.format_exc()}')


def spin_node(factory: Callable[[], Node], name: str,
              args: Optional[list[str]] = None) -> int:
    """
    Create a node with ``factory``, spin it until Ctrl-C / SIGTERM, shut down cleanly.

    Returns the process exit code: 0, or 1 when the node cannot start (bad
    parameters, model or device) after logging one line
    ``cannot start: <parameter>: <why>``. Works on Humble (no context
    manager for ``rclpy.init``, SIGINT-only handling) as on Jazzy/Kilted.
    """
    logger = rclpy.logging.get_logger(name)
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: B902 - e.g. malformed --ros-args
        logger.fatal(f'cannot start: --ros-args: {_first_line(exc)}')
        return 1
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # Humble's rclpy handles SIGINT only; newer ones install their own SIGTERM handler.
        signal.signal(signal.SIGTERM, _terminate)
    node = None
    try:
        try:
            node = factory()
        except (KeyboardInterrupt, ExternalShutdownException):
            return 0
        except Exception as exc:  # noqa: B902
            if not rclpy.ok():  # Ctrl-C during start-up shut the context down under it
                return 0
            _start_failure(logger, exc)
            return 1
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: B902
        # Ctrl-C shuts the context down under a running callback, whose next publish then
        # raises (RCLError: publisher's context is invalid): a clean stop, not a failure.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            stop = getattr(node, 'stop', None)
            if stop is not None:
                stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run_main(factory: Callable[[], Node], name: str, executable: str, summary: str,
             specs: Sequence[Param], args: Optional[list[str]] = None) -> int:
    """Run a node executable: ``--help`` prints ``specs``, else :func:`spin_node`."""
    if wants_help(sys.argv if args is None else args):
        print_help(executable, summary, specs)
        return 0
    return spin_node(factory, name, args)
