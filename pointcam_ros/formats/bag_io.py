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
rosbag2 output with ``rosbags`` (no ROS install needed), written safely.

:class:`SafeBagWriter` writes an MCAP bag into a hidden temporary folder next
to the destination and renames it into place only when closed without an
error, so an interrupted run never leaves a half-written bag under the final
name. Every bag it writes carries :data:`OUTPUT_MARKER` in its metadata
(``custom_data``), and every temporary folder a :data:`PARTIAL_MARKER` file
with the writing process's id: an existing destination is replaced only
with ``overwrite`` *and* only when it is such a bag holding nothing else
(:func:`check_output`), and temporary folders left by a killed run are
recognised and removed by the next run (:func:`remove_stale_partials`).
Nothing else is ever deleted.
"""

import json
import os
from pathlib import Path
import queue
import shutil
import tempfile
import threading
from typing import Any, Iterable, Optional, Sequence


import numpy as np
from pointcam_ros.formats.cloud_io import PackedCloud
from pointcam_ros.formats.markers import MarkerSpec
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore
import yaml

POINTCLOUD2 = 'sensor_msgs/msg/PointCloud2'
MARKER_ARRAY = 'visualization_msgs/msg/MarkerArray'


def typestore() -> Typestore:
    """
    Message definitions written into bags: ROS 2 Kilted, as the rclpy wheels here.

    The CDR layout of PointCloud2 and MarkerArray is the same on Humble,
    Jazzy and Kilted.
    """
    return get_typestore(Stores.ROS2_KILTED)


OUTPUT_MARKER = 'pointcam_ros.output'
"""``custom_data`` key in the metadata of every bag :class:`SafeBagWriter` writes."""
PARTIAL_MARKER = 'pointcam_ros.partial.json'
"""File in each temporary folder of :class:`SafeBagWriter`: ``{"pid": ..., "host": ...}``."""


class BagExistsError(FileExistsError):
    """The output bag exists and overwriting was not requested (or is not allowed)."""


def is_pointcam_output(path: Path) -> bool:
    """
    Tell whether ``path`` is a bag written by :class:`SafeBagWriter` holding nothing else.

    That is: its ``metadata.yaml`` carries :data:`OUTPUT_MARKER`, and every
    file in the folder is ``metadata.yaml`` or one of the bag's own files.
    """
    metadata = path / 'metadata.yaml'
    if not path.is_dir() or not metadata.is_file():
        return False
    try:
        info = yaml.safe_load(metadata.read_text())['rosbag2_bagfile_information']
        if OUTPUT_MARKER not in (info.get('custom_data') or {}):
            return False
        own = {'metadata.yaml', *info.get('relative_file_paths', [])}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return False
    return all(p.is_file() and p.relative_to(path).as_posix() in own
               for p in path.rglob('*') if not p.is_dir())


def is_bag(path: Path) -> bool:
    """Tell whether ``path`` is a rosbag2 folder (with ``metadata.yaml``) or a ROS 1 ``.bag``."""
    path = Path(path)
    if path.is_dir():
        return (path / 'metadata.yaml').is_file()
    return path.is_file() and path.suffix == '.bag'


def bags_in(folder: Path) -> list[Path]:
    """
    Bags directly inside ``folder``, sorted by name; [] when it is a bag itself.

    Hidden entries (temporary folders of :class:`SafeBagWriter`) and bags
    this package wrote (:func:`is_pointcam_output`) are left out.
    """
    folder = Path(folder)
    if not folder.is_dir() or is_bag(folder):
        return []
    return [p for p in sorted(folder.iterdir())
            if not p.name.startswith('.') and is_bag(p) and not is_pointcam_output(p)]


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(output: Path, inputs: Iterable[Path], overwrite: bool) -> None:
    """
    Refuse an output that could destroy anything this tool did not write.

    Raises ValueError when ``output`` is an input, contains one or lies
    inside one, or when its parent folder does not exist; :class:`BagExistsError`
    when it exists and either ``overwrite`` is False or it is not a previous
    pointcam output holding only its own files (:func:`is_pointcam_output`).
    """
    target = Path(output).resolve()
    for path in inputs:
        source = Path(path).resolve()
        if target == source:
            raise ValueError(f'output {output} is the input bag {path}: choose another name')
        if _is_within(source, target):
            raise ValueError(f'output {output} contains the input bag {path}: choose a '
                             'folder outside it')
        if _is_within(target, source):
            raise ValueError(f'output {output} is inside the input bag {path}: choose a '
                             'folder outside it')
    if not target.parent.is_dir():
        raise ValueError(f'the folder {target.parent} of output {output} does not exist: '
                         'create it first')
    if not os.path.lexists(target):
        return
    if not overwrite:
        raise BagExistsError(f'{output} exists: choose another output or pass --overwrite '
                             'to replace a previous pointcam_bag output')
    if not is_pointcam_output(target):
        raise BagExistsError(f'{output} exists and is not a pointcam_bag output bag (or holds '
                             'other files too): refusing to replace it, even with '
                             '--overwrite; choose another output')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_partials_of(output: Path, pid: int, host: str) -> list[Path]:
    """
    Delete the temporary folders of ``output`` written by process ``pid`` on ``host``.

    For a scheduler that knows the process died (a killed worker, on any
    host that shares the output folder); folders of other processes, and
    folders without a readable :data:`PARTIAL_MARKER`, are left alone.
    """
    output = Path(output)
    removed = []
    for folder in output.parent.glob(f'.{output.name}.partial-*'):
        try:
            owner = json.loads((folder / PARTIAL_MARKER).read_text())
            ours = owner['host'] == host and int(owner['pid']) == int(pid)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ours:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def remove_stale_partials(output: Path) -> list[Path]:
    """
    Delete temporary folders of ``output`` left by killed runs on this host; return them.

    Only folders named ``.<name>.partial-*`` next to ``output`` that hold a
    :data:`PARTIAL_MARKER` naming a process of this host that no longer runs.
    """
    output = Path(output)
    removed = []
    for folder in output.parent.glob(f'.{output.name}.partial-*'):
        try:
            owner = json.loads((folder / PARTIAL_MARKER).read_text())
            stale = owner['host'] == os.uname().nodename and not _pid_alive(int(owner['pid']))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or not readable: leave it alone
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class SafeBagWriter:
    """
    Context manager writing a rosbag2 MCAP bag atomically (see module docstring).

    Serialisation and disk writes run in a background thread (bounded queue),
    so they overlap with the caller's computation; the first error of that
    thread is raised by the next ``write`` or on exit, and then no bag is
    published.
    """

    def __init__(self, path: os.PathLike, overwrite: bool = False,
                 store: Optional[Typestore] = None, queue_size: int = 16,
                 inputs: Sequence[os.PathLike] = ()):
        self.path = Path(path)
        self._inputs = [Path(p) for p in inputs]
        self._overwrite = overwrite
        check_output(self.path, self._inputs, overwrite)
        remove_stale_partials(self.path)
        self.store = store or typestore()
        self._tmp_root = Path(tempfile.mkdtemp(prefix=f'.{self.path.name}.partial-',
                                               dir=self.path.parent))
        (self._tmp_root / PARTIAL_MARKER).write_text(
            json.dumps({'pid': os.getpid(), 'host': os.uname().nodename}))
        self._writer = Writer(self._tmp_root / self.path.name, version=9,
                              storage_plugin=StoragePlugin.MCAP)
        self._writer.set_custom_data(OUTPUT_MARKER, 'pointcam_bag')
        self._connections: dict[str, Any] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._drain, name='bag_writer', daemon=True)

    def __enter__(self) -> 'SafeBagWriter':
        """Open the temporary bag and start the writer thread."""
        self._writer.open()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Publish the bag under its final name, or delete it if an error occurred."""
        try:
            self._queue.put(None)
            self._thread.join()
            self._writer.close()
            if exc_type is None and self._error is not None:
                raise self._error
            if exc_type is None:
                self._commit()
        finally:
            shutil.rmtree(self._tmp_root, ignore_errors=True)

    def _commit(self) -> None:
        built = self._tmp_root / self.path.name
        check_output(self.path, self._inputs, self._overwrite)  # again: it may have changed
        if os.path.lexists(self.path):
            old = self._tmp_root / 'replaced'
            os.replace(self.path, old)
        os.replace(built, self.path)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so producers never block forever
            topic, msgtype, stamp_ns, payload, raw = item
            try:
                data = payload if raw else self.store.serialize_cdr(payload, msgtype)
                if topic not in self._connections:
                    self._connections[topic] = self._writer.add_connection(
                        topic, msgtype, typestore=self.store)
                self._writer.write(self._connections[topic], int(stamp_ns), data)
            except BaseException as exc:  # noqa: B902 - re-raised in the caller's thread
                self._error = exc

    def _put(self, item: tuple) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Queue CDR bytes (e.g. from ``rclpy.serialization.serialize_message``)."""
        self._put((topic, msgtype, stamp_ns, bytes(data), True))

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg: Any) -> None:
        """Queue a rosbags message object; it is serialised in the writer thread."""
        self._put((topic, msgtype, stamp_ns, msg, False))


def rosbags_cloud(store: Typestore, cloud: PackedCloud, header: Any) -> Any:
    """Build a rosbags ``sensor_msgs/msg/PointCloud2`` from a packed cloud and a header."""
    types = store.types
    field_cls = types['sensor_msgs/msg/PointField']
    return types[POINTCLOUD2](
        header=header, height=cloud.height, width=cloud.width,
        fields=[field_cls(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                for f in cloud.fields],
        is_bigendian=bool(cloud.is_bigendian), point_step=cloud.point_step,
        row_step=cloud.row_step, data=np.frombuffer(cloud.data, np.uint8),
        is_dense=bool(cloud.is_dense))


def rosbags_markers(store: Typestore, specs: Sequence[MarkerSpec], header: Any) -> Any:
    """Build a rosbags ``visualization_msgs/msg/MarkerArray`` from marker descriptions."""
    t = store.types
    duration = t['builtin_interfaces/msg/Duration'](sec=0, nanosec=0)
    markers = []
    for spec in specs:
        markers.append(t['visualization_msgs/msg/Marker'](
            header=header, ns=spec.ns, id=spec.marker_id, type=spec.marker_type,
            action=spec.action,
            pose=t['geometry_msgs/msg/Pose'](
                position=t['geometry_msgs/msg/Point'](*spec.position),
                orientation=t['geometry_msgs/msg/Quaternion'](*spec.orientation)),
            scale=t['geometry_msgs/msg/Vector3'](*spec.scale),
            color=t['std_msgs/msg/ColorRGBA'](*spec.color),
            lifetime=duration, frame_locked=False, points=[], colors=[],
            texture_resource='', texture=t['sensor_msgs/msg/CompressedImage'](
                header=header, format='', data=np.zeros(0, np.uint8)),
            uv_coordinates=[], text=spec.text, mesh_resource='',
            mesh_file=t['visualization_msgs/msg/MeshFile'](filename='',
                                                           data=np.zeros(0, np.uint8)),
            mesh_use_embedded_materials=False))
    return t[MARKER_ARRAY](markers=markers)
