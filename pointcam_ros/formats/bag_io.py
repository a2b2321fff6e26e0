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
(``custom_data``): what wrote it (its ``kind``: ``'explanation'`` for
pointcam_bag's outputs, ``'recording'`` for everything else, the default),
the exact names of the files it wrote, and the inputs it was made from
(:func:`source_fingerprint`). Every temporary folder holds a
:data:`PARTIAL_MARKER` file with the writing process's id.

An existing destination is replaced only with ``overwrite`` *and* only when
it is an explanation holding nothing but the files its writer wrote
(:func:`replace_refusal`); a symbolic link at the destination is never
replaced. Temporary folders left by a killed run are recognised by their
exact name and marker and removed by the next run
(:func:`remove_stale_partials`). Nothing else is ever deleted.
"""

import json
import os
from pathlib import Path
import queue
import re
import shutil
import stat
import sys
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
"""
``custom_data`` key in the metadata of every bag :class:`SafeBagWriter` writes.

Its value is JSON: ``{"version": 2, "kind": ..., "program": ..., "files": [...],
"sources": [...]}``. Versions before 2 wrote the plain string ``'pointcam_bag'``
for explanations *and* for the demo's recordings alike, so such a bag is never
treated as a replaceable explanation.
"""
MARKER_VERSION = 2
EXPLANATION = 'explanation'
"""``kind`` of pointcam_bag's outputs: the only bags ``overwrite`` may replace."""
RECORDING = 'recording'
"""``kind`` of every other bag (the demo's recordings): never replaced."""
KINDS = (EXPLANATION, RECORDING)
PARTIAL_MARKER = 'pointcam_ros.partial.json'
"""File in each temporary folder of :class:`SafeBagWriter`: ``{"pid", "host", "output"}``."""
_PARTIAL_SUFFIX = re.compile(r'[a-z0-9_]+')  # the random part of tempfile.mkdtemp's names


class BagExistsError(FileExistsError):
    """The output bag exists and overwriting was not requested (or is not allowed)."""


def _metadata(path: Path) -> Optional[dict]:
    """Return the ``rosbag2_bagfile_information`` of a bag folder; None if unreadable."""
    try:
        info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


def read_marker(path: os.PathLike) -> Optional[dict]:
    """
    Return the :data:`OUTPUT_MARKER` of the bag folder ``path``; None when it has none.

    A marker of a version before 2 (the plain string ``'pointcam_bag'``) or one
    that cannot be parsed comes back as ``{"version": 1}``: it does not say
    what wrote the bag.
    """
    path = Path(path)
    if os.path.islink(path) or not path.is_dir():
        return None
    info = _metadata(path)
    custom = (info or {}).get('custom_data') or {}
    if not isinstance(custom, dict) or OUTPUT_MARKER not in custom:
        return None
    try:
        marker = json.loads(custom[OUTPUT_MARKER])
    except (TypeError, ValueError):
        return {'version': 1}
    if not isinstance(marker, dict) or marker.get('version') != MARKER_VERSION:
        return {'version': 1}
    return marker


def output_kind(path: os.PathLike) -> Optional[str]:
    """``'explanation'``, ``'recording'``, ``'legacy'`` (a marker before version 2) or None."""
    marker = read_marker(path)
    if marker is None:
        return None
    kind = marker.get('kind')
    return kind if kind in KINDS else 'legacy'


def replace_refusal(path: os.PathLike) -> Optional[str]:
    """
    Why the existing ``path`` must not be replaced; None when it may be.

    It may be replaced only when it is a real folder (not a link) holding a
    bag whose marker says pointcam_bag wrote it as an ``explanation``, and
    every entry in it is a plain file the writer wrote, by exact name (as
    recorded in the marker): any other file, folder (even an empty one) or
    symbolic link is somebody else's, and keeps the whole folder.
    """
    path = Path(path)
    if os.path.islink(path):
        return (f'{path} is a symbolic link (to {os.readlink(path)}): pointcam_bag never '
                'replaces or deletes links; remove the link yourself (rm, not rm -r) or '
                'choose another output')
    if not path.is_dir():
        return f'{path} is not a folder'
    if _metadata(path) is None:
        return f'{path} holds no readable metadata.yaml, so it is no bag pointcam_bag wrote'
    marker = read_marker(path)
    if marker is None:
        return f'{path} is a bag pointcam_ros did not write (its metadata has no marker)'
    if marker.get('version') != MARKER_VERSION:
        return (f'{path} was written by an older pointcam_ros, whose marker does not tell an '
                'explanation from a recording (the demo wrote the same marker), so it is '
                'never replaced: if it is an explanation you no longer need, delete it '
                f'yourself (rm -r {path}) and run again, or choose another output')
    if marker.get('kind') != EXPLANATION:
        return (f'{path} is a {marker.get("kind", "bag")} written by '
                f'{marker.get("program") or "pointcam_ros"}, not a pointcam_bag explanation: '
                'recordings are never replaced; choose another output')
    own = marker.get('files')
    if not isinstance(own, list):
        return f'{path} has a marker without its list of files'
    foreign = []
    for entry in sorted(os.listdir(path)):
        try:
            mode = os.lstat(path / entry).st_mode
        except OSError:
            mode = 0
        if entry not in own or not stat.S_ISREG(mode):
            kind = ('link' if stat.S_ISLNK(mode) else 'folder' if stat.S_ISDIR(mode)
                    else 'file')
            foreign.append(f'{entry} ({kind})')
    if foreign:
        shown = ', '.join(foreign[:5]) + (' ...' if len(foreign) > 5 else '')
        return (f'{path} holds entries pointcam_bag did not write: {shown}; move them out '
                'of it (or choose another output) to let --overwrite replace it')
    return None


def is_pointcam_output(path: os.PathLike) -> bool:
    """
    Tell whether ``path`` is a pointcam_bag explanation that ``overwrite`` may replace.

    See :func:`replace_refusal`: a real folder whose marker says
    ``kind: explanation`` and that holds only the files its writer wrote.
    """
    return replace_refusal(path) is None


def source_fingerprint(inputs: Iterable[os.PathLike]) -> list[dict]:
    """
    Describe the bags ``inputs`` as they are now: resolved path, files' size and mtime.

    A rosbag2 folder lists its top-level files (``metadata.yaml`` and the
    storage files), a ``.bag`` file itself. JSON-ready; two fingerprints are
    equal only for the same bags, unchanged. An input that cannot be read
    gets ``"files": null``.
    """
    result = []
    for path in map(Path, inputs):
        resolved = path.resolve()
        try:
            if resolved.is_dir():
                files = []
                for entry in sorted(os.scandir(resolved), key=lambda e: e.name):
                    if entry.is_file():
                        info = entry.stat()
                        files.append([entry.name, info.st_size, info.st_mtime_ns])
            else:
                info = resolved.stat()
                files = [[resolved.name, info.st_size, info.st_mtime_ns]]
        except OSError:
            files = None
        result.append({'path': str(resolved), 'files': files})
    return result


def recorded_sources(path: os.PathLike) -> Optional[list]:
    """Return the :func:`source_fingerprint` in the marker of ``path``; None without one."""
    marker = read_marker(path)
    sources = (marker or {}).get('sources')
    return sources if isinstance(sources, list) else None


def describe_sources(sources: Optional[list]) -> str:
    """Name the paths of a fingerprint for a message."""
    if not sources:
        return 'an unrecorded source'
    return ', '.join(str(s.get('path')) for s in sources if isinstance(s, dict))


def is_bag(path: Path) -> bool:
    """Tell whether ``path`` is a rosbag2 folder (with ``metadata.yaml``) or a ROS 1 ``.bag``."""
    path = Path(path)
    if path.is_dir():
        return (path / 'metadata.yaml').is_file()
    return path.is_file() and path.suffix == '.bag'


def bags_in(folder: Path) -> list[Path]:
    """
    Bags directly inside ``folder``, sorted by name; [] when it is a bag itself.

    Hidden entries (temporary folders of :class:`SafeBagWriter`) and
    pointcam_bag's explanations (and bags of older versions, whose marker does
    not tell) are left out; recordings, the demo's included, are inputs.
    """
    folder = Path(folder)
    if not folder.is_dir() or is_bag(folder):
        return []
    return [p for p in sorted(folder.iterdir())
            if not p.name.startswith('.') and is_bag(p)
            and output_kind(p) not in (EXPLANATION, 'legacy')]


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(output: Path, inputs: Iterable[Path], overwrite: bool) -> None:
    """
    Refuse an output that could destroy anything this tool did not write.

    Raises :class:`BagExistsError` when ``output`` is a symbolic link
    (dangling or not, with or without ``overwrite``), ValueError when it is
    an input, contains one or lies inside one, or when its parent folder does
    not exist; :class:`BagExistsError` when it exists and either ``overwrite``
    is False or it is not a replaceable explanation (:func:`replace_refusal`).
    """
    output = Path(output)
    if os.path.islink(output):
        raise BagExistsError(f'refusing output {output}: {replace_refusal(output)}')
    target = output.resolve()
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
    why = replace_refusal(target)
    if why is not None:
        raise BagExistsError(f'{output} exists and is not a pointcam_bag output that '
                             f'--overwrite may replace: {why}')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _partials(output: Path) -> list[tuple[Path, dict]]:
    """
    Temporary folders of ``output`` with their readable :data:`PARTIAL_MARKER`.

    Found by exact name (``.<name>.partial-<random>``, listed, never a glob
    pattern, so names with ``[``, ``*`` or ``?`` work) and, for markers that
    name their output, by that name too.
    """
    prefix = f'.{output.name}.partial-'
    try:
        names = os.listdir(output.parent)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        if not name.startswith(prefix) or not _PARTIAL_SUFFIX.fullmatch(name[len(prefix):]):
            continue
        folder = output.parent / name
        if os.path.islink(folder) or not folder.is_dir():
            continue
        try:
            owner = json.loads((folder / PARTIAL_MARKER).read_text())
            if not isinstance(owner, dict) or owner.get('output', output.name) != output.name:
                continue
            owner['pid'] = int(owner['pid'])
            owner['host'] = str(owner['host'])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or not readable: leave it alone
        found.append((folder, owner))
    return found


def remove_partials_of(output: Path, pid: int, host: str) -> list[Path]:
    """
    Delete the temporary folders of ``output`` written by process ``pid`` on ``host``.

    For a scheduler that knows the process died (a killed worker, on any
    host that shares the output folder); folders of other processes, and
    folders without a readable :data:`PARTIAL_MARKER`, are left alone.
    """
    removed = []
    for folder, owner in _partials(Path(output)):
        if owner['host'] == host and owner['pid'] == int(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def remove_stale_partials(output: Path) -> list[Path]:
    """
    Delete temporary folders of ``output`` left by killed runs on this host; return them.

    Only folders named ``.<name>.partial-*`` next to ``output`` that hold a
    :data:`PARTIAL_MARKER` naming a process of this host that no longer runs.
    """
    removed = []
    for folder, owner in _partials(Path(output)):
        if owner['host'] == os.uname().nodename and not _pid_alive(owner['pid']):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _program() -> str:
    """Name of the running program, for the marker (what wrote the bag)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ''
    return name if name and name != '-c' else 'python'


class SafeBagWriter:
    """
    Context manager writing a rosbag2 MCAP bag atomically (see module docstring).

    ``kind`` goes into the marker: ``'recording'`` (the default, and the safe
    one: such a bag is never replaced) or ``'explanation'`` (pointcam_bag's
    outputs, which a later ``overwrite`` may replace). ``inputs`` are the bags
    it is made from: never overwritten, and recorded in the marker
    (:func:`source_fingerprint`, taken when the writer is created).

    Serialisation and disk writes run in a background thread (bounded queue),
    so they overlap with the caller's computation; the first error of that
    thread is raised by the next ``write`` or on exit, and then no bag is
    published.
    """

    def __init__(self, path: os.PathLike, overwrite: bool = False,
                 store: Optional[Typestore] = None, queue_size: int = 16,
                 inputs: Sequence[os.PathLike] = (), kind: str = RECORDING):
        if kind not in KINDS:
            raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
        self.path = Path(path)
        self.kind = kind
        self._inputs = [Path(p) for p in inputs]
        self._overwrite = overwrite
        check_output(self.path, self._inputs, overwrite)
        self._sources = source_fingerprint(self._inputs)
        remove_stale_partials(self.path)
        self.store = store or typestore()
        self._tmp_root = Path(tempfile.mkdtemp(prefix=f'.{self.path.name}.partial-',
                                               dir=self.path.parent))
        (self._tmp_root / PARTIAL_MARKER).write_text(json.dumps(
            {'pid': os.getpid(), 'host': os.uname().nodename, 'output': self.path.name}))
        self._writer = Writer(self._tmp_root / self.path.name, version=9,
                              storage_plugin=StoragePlugin.MCAP)
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
            built = self._tmp_root / self.path.name
            # The storage file exists since open(); close() adds only metadata.yaml.
            files = sorted({'metadata.yaml', *os.listdir(built)})
            self._writer.set_custom_data(OUTPUT_MARKER, json.dumps({
                'version': MARKER_VERSION, 'kind': self.kind, 'program': _program(),
                'files': files, 'sources': self._sources}))
            self._writer.close()
            if exc_type is None and self._error is not None:
                raise self._error
            if exc_type is None:
                if sorted(os.listdir(built)) != files:
                    raise RuntimeError(f'the bag writer wrote {sorted(os.listdir(built))}, not '
                                       f'the files {files} of its marker: no bag was published')
                self._commit()
        finally:
            shutil.rmtree(self._tmp_root, ignore_errors=True)

    def _commit(self) -> None:
        """
        Rename the finished bag onto ``path``, replacing only what may be replaced.

        The destination is checked again (it may have changed while the bag
        was written); an old explanation is moved into the private temporary
        folder and checked once more there (so nothing added in between is
        lost: it is moved back), and the name is claimed with ``mkdir`` before
        the final rename, which therefore never lands on anything else.
        """
        built = self._tmp_root / self.path.name
        check_output(self.path, self._inputs, self._overwrite)
        if os.path.lexists(self.path):
            old = self._tmp_root / 'replaced'
            os.rename(self.path, old)
            why = replace_refusal(old)
            if why is not None:
                os.rename(old, self.path)
                raise BagExistsError(f'{self.path} changed while the bag was written and is '
                                     f'no longer replaceable ({why}); it was left as it is')
        try:
            os.mkdir(self.path)
        except FileExistsError as exc:
            raise BagExistsError(f'{self.path} appeared while the bag was written: it was '
                                 'left as it is and no bag was published; choose another '
                                 'output') from exc
        os.replace(built, self.path)  # onto the empty folder made just now

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
