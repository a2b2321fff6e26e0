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

"""pointcam_bag on real rosbag2 files (MCAP and SQLite3) written by the tests."""

import hashlib
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import (
    BagExistsError, is_pointcam_output, MARKER_ARRAY, output_kind, OUTPUT_MARKER, PARTIAL_MARKER,
    POINTCLOUD2, remove_partials_of, remove_stale_partials, rosbags_cloud, rosbags_markers,
    SafeBagWriter, typestore)
from pointcam_ros.formats.cloud_io import pack_cloud, read_cloud
from pointcam_ros.formats.sensor_layouts import LIVOX_CUSTOM
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
from pointcam_ros.tools.bag_cli import main
from pointcam_ros.tools.bag_tool import BagError, explain_bag, UsageError
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

STORE = typestore()


def _header(sec, frame='lidar'):
    t = STORE.types
    return t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=sec, nanosec=7),
                                    frame_id=frame)


def _clouds(count, sensor='vlp16'):
    scene = random_scene(2_000_300)
    return [scan_to_cloud(scan(scene, SENSORS[sensor], i)) for i in range(count)]


def write_bag(path, storage, topics):
    """topics: {name: [(t_ns, PackedCloud or None)]}; None entries make an empty topic."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        for topic, items in topics.items():
            conn = writer.add_connection(topic, 'sensor_msgs/msg/PointCloud2', typestore=STORE)
            for t_ns, cloud in items:
                msg = rosbags_cloud(STORE, cloud, _header(t_ns // 10**9))
                writer.write(conn, t_ns, STORE.serialize_cdr(msg, 'sensor_msgs/msg/PointCloud2'))
    return path


@pytest.fixture(scope='module')
def pipeline(tiny_model):
    return ScenePipeline(PipelineConfig(model_path=tiny_model, device='cpu'))


def _read(path):
    out = {}
    with AnyReader([path], default_typestore=STORE) as reader:
        for conn, t_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t_ns, conn.msgtype, raw))
    return out


def _digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(path).rglob('*')) if p.is_file()}


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3],
                         ids=['mcap', 'sqlite3'])
def test_bag_in_bag_out(tmp_path, pipeline, storage):
    clouds = _clouds(3)
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(3)]
    source = write_bag(tmp_path / 'drive', storage,
                       {'/velodyne_points': list(zip(stamps, clouds))})
    before = _digest(source)
    summary = explain_bag([source], tmp_path / 'out', pipeline, copy_inputs=True,
                          progress=False)
    assert summary.scans == 3 and summary.rejected == 0
    assert _digest(source) == before  # input untouched
    topics = _read(tmp_path / 'out')
    assert set(topics) == {'/velodyne_points', '/pointcam/saliency', '/pointcam/labels'}
    assert [t for t, _, _ in topics['/pointcam/saliency']] == stamps  # original timestamps
    assert (tmp_path / 'out' / 'metadata.yaml').exists()
    assert list((tmp_path / 'out').glob('*.mcap'))
    # rclpy can deserialise what we wrote (so `ros2 bag play` can publish it).
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import PointCloud2
    from visualization_msgs.msg import MarkerArray
    for (t_ns, _, raw), cloud in zip(topics['/pointcam/saliency'], clouds):
        msg = deserialize_message(bytes(raw), PointCloud2)
        assert msg.header.stamp.sec == t_ns // 10**9 and msg.header.stamp.nanosec == 7
        valid = np.isfinite(read_cloud(cloud).xyz).all(axis=1).sum()
        out = read_cloud(msg, ['intensity', 'object_id'])
        assert out.xyz.shape[0] == valid
        assert 0 <= out.extras['intensity'].min() and out.extras['intensity'].max() <= 1
    labels = deserialize_message(bytes(topics['/pointcam/labels'][0][2]), MarkerArray)
    assert labels.markers[0].action == 3
    assert all(m.header.stamp.nanosec == 7 for m in labels.markers)


def test_several_topics_layouts_and_an_empty_topic(tmp_path, pipeline):
    velodyne = _clouds(2)
    livox_xyz = read_cloud(velodyne[0]).xyz
    livox = pack_cloud({'x': livox_xyz[:, 0], 'y': livox_xyz[:, 1], 'z': livox_xyz[:, 2]},
                       LIVOX_CUSTOM.fields, LIVOX_CUSTOM.point_step)
    source = write_bag(tmp_path / 'multi', StoragePlugin.MCAP, {
        '/front/points': [(10**9, velodyne[0]), (2 * 10**9, velodyne[1])],
        '/livox/lidar': [(15 * 10**8, livox)],
        '/rear/points': []})
    with pytest.raises(ValueError, match='several PointCloud2 topics'):
        explain_bag([source], tmp_path / 'x', pipeline, progress=False)
    assert not (tmp_path / 'x').exists()
    with pytest.raises(ValueError, match='not PointCloud2 topics'):
        explain_bag([source], tmp_path / 'x', pipeline, topics=['/nope'], progress=False)
    summary = explain_bag([source], tmp_path / 'out', pipeline,
                          topics=['/front/points', '/livox/lidar', '/rear/points'],
                          progress=False)
    assert summary.scans == 3
    topics = _read(tmp_path / 'out')
    assert len(topics['/pointcam/front_points/saliency']) == 2
    assert len(topics['/pointcam/livox_lidar/saliency']) == 1
    assert '/pointcam/rear_points/saliency' not in topics


def _tree_digest(folder):
    """sha256 of every file under ``folder``, keyed by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob('*')) if p.is_file()}


def _one_scan_bag(path, storage=StoragePlugin.MCAP):
    return write_bag(path, storage, {'/points': [(10**9, _clouds(1)[0])]})


def test_overwrite_replaces_only_a_previous_pointcam_output(tmp_path, pipeline):
    source = _one_scan_bag(tmp_path / 'in')
    existing = tmp_path / 'mine'
    existing.mkdir()
    (existing / 'precious.txt').write_text('user data')
    before = _tree_digest(tmp_path)
    with pytest.raises(FileExistsError, match='--overwrite'):
        explain_bag([source], existing, pipeline, progress=False)
    with pytest.raises(FileExistsError, match='not a pointcam_bag output'):
        explain_bag([source], existing, pipeline, overwrite=True, progress=False)
    assert _tree_digest(tmp_path) == before  # nothing touched
    # A previous output of ours is replaced ...
    explain_bag([source], tmp_path / 'out', pipeline, progress=False)
    assert is_pointcam_output(tmp_path / 'out')
    first = _tree_digest(tmp_path / 'out')
    explain_bag([source], tmp_path / 'out', pipeline, overwrite=True, progress=False)
    assert _tree_digest(tmp_path / 'out').keys() == first.keys()
    # ... but not once a user has put a file of their own into it.
    (tmp_path / 'out' / 'notes.txt').write_text('mine')
    before = _tree_digest(tmp_path)
    with pytest.raises(FileExistsError, match='not a pointcam_bag output'):
        explain_bag([source], tmp_path / 'out', pipeline, overwrite=True, progress=False)
    assert _tree_digest(tmp_path) == before
    assert not list(tmp_path.glob('.*partial*'))  # no temporary folders left


@pytest.mark.parametrize('where', ['input', 'parent_of_input', 'inside_input', 'mcap_parent'])
def test_output_that_is_contains_or_is_inside_the_input_is_refused(tmp_path, pipeline, where):
    # /x/in is the input bag, /x/notes.txt a user's file: the adversary's layout.
    top = tmp_path / 'x'
    top.mkdir()
    source = _one_scan_bag(top / 'in')
    (top / 'notes.txt').write_text('keep me')
    mcap = next(source.glob('*.mcap'))
    inputs, output = {
        'input': ([source], source),
        'parent_of_input': ([source], top),
        'inside_input': ([source], source / 'out'),
        'mcap_parent': ([mcap], source),
    }[where]
    before = _tree_digest(tmp_path)
    with pytest.raises(ValueError, match='input bag'):
        explain_bag(inputs, output, pipeline, overwrite=True, progress=False)
    assert _tree_digest(tmp_path) == before
    exe = str(Path(sys.executable).parent / 'pointcam_bag')
    result = subprocess.run([exe, *map(str, inputs), '-o', str(output), '--overwrite',
                             '--quiet'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and 'input bag' in result.stderr
    assert 'Traceback' not in result.stderr
    assert _tree_digest(tmp_path) == before


def test_missing_output_parent_is_refused(tmp_path, pipeline):
    source = _one_scan_bag(tmp_path / 'in')
    with pytest.raises(ValueError, match='does not exist: create it first'):
        explain_bag([source], tmp_path / 'nope' / 'out', pipeline, progress=False)


def _slow_bag(path):
    clouds = _clouds(2)
    return write_bag(path, StoragePlugin.MCAP,
                     {'/points': [(i * 10**8, clouds[i % 2]) for i in range(1, 400)]})


def _foreground_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_bag_tool(tmp_path, tiny_model, source, output):
    params = tmp_path / 'params.yaml'
    PipelineConfig(model_path=tiny_model, device='cpu').to_yaml(params)
    exe = str(Path(sys.executable).parent / 'pointcam_bag')
    # As from a terminal: a job started in the background (a CI runner under `cmd &`)
    # inherits SIGINT ignored, and Python rightly keeps ignoring it.
    proc = subprocess.Popen([exe, str(source), '-o', str(output), '--params', str(params),
                             '--quiet'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_foreground_signals)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f'.{output.name}.partial-*/{output.name}/*.mcap')):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, 'pointcam_bag never started writing'
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the run: the scans keep it busy for many seconds
    return proc


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=['SIGINT', 'SIGTERM', 'SIGHUP'])
def test_interrupted_run_leaves_nothing_behind(tmp_path, tiny_model, signum):
    source = _slow_bag(tmp_path / 'in')
    (tmp_path / 'notes.txt').write_text('keep me')
    before = _tree_digest(tmp_path)
    proc = _start_bag_tool(tmp_path, tiny_model, source, tmp_path / 'out')
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert 'Traceback' not in err and 'interrupted' in err
    assert not (tmp_path / 'out').exists()
    assert not list(tmp_path.glob('.*partial*'))
    after = _tree_digest(tmp_path)
    after.pop('params.yaml')
    assert after == before


def test_partial_folder_of_a_killed_run_is_removed_by_the_next(tmp_path, tiny_model,
                                                               pipeline):
    source = _slow_bag(tmp_path / 'in')
    proc = _start_bag_tool(tmp_path, tiny_model, source, tmp_path / 'out')
    proc.kill()
    proc.communicate(timeout=60)
    stale = list(tmp_path.glob('.out.partial-*'))
    assert len(stale) == 1 and (stale[0] / PARTIAL_MARKER).exists()
    foreign = tmp_path / '.out.partial-notours'  # no marker: never touched
    foreign.mkdir()
    (foreign / 'data').write_text('x')
    explain_bag([_one_scan_bag(tmp_path / 'small')], tmp_path / 'out', pipeline,
                progress=False)
    assert not stale[0].exists()
    assert (foreign / 'data').read_text() == 'x'
    assert (tmp_path / 'out' / 'metadata.yaml').exists()


def test_corrupt_and_truncated_bags_give_clear_errors(tmp_path, pipeline):
    clouds = _clouds(4)
    source = write_bag(tmp_path / 'good', StoragePlugin.MCAP,
                       {'/points': [(i * 10**9, c) for i, c in enumerate(clouds, 1)]})
    mcap = next(source.glob('*.mcap'))
    data = mcap.read_bytes()
    cut = tmp_path / 'bag_a'
    cut.mkdir()
    (cut / 'metadata.yaml').write_text((source / 'metadata.yaml').read_text())
    (cut / mcap.name).write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(BagError, match='bag_a: cannot open, the bag is truncated or corrupt'):
        explain_bag([cut], tmp_path / 'out1', pipeline, progress=False)
    assert not (tmp_path / 'out1').exists()
    garbage = tmp_path / 'bag_b'
    garbage.mkdir()
    (garbage / 'metadata.yaml').write_text('rosbag2_bagfile_information: [not: valid')
    with pytest.raises(BagError, match='bag_b: cannot open'):
        explain_bag([garbage], tmp_path / 'out2', pipeline, progress=False)
    assert not (tmp_path / 'out2').exists()


def test_undecodable_message_is_rejected_and_later_scans_are_explained(tmp_path, pipeline):
    import sqlite3
    clouds = _clouds(3)
    source = write_bag(tmp_path / 'bag_c', StoragePlugin.SQLITE3,
                       {'/points': [(i * 10**9, c) for i, c in enumerate(clouds, 1)]})
    database = next(source.glob('*.db3'))
    with sqlite3.connect(database) as db:
        db.execute('UPDATE messages SET data = ? WHERE timestamp = ?',
                   (b'\x00\x01garbage', 2 * 10**9))
    summary = explain_bag([source], tmp_path / 'out', pipeline, progress=False)
    assert summary.scans == 2 and summary.rejected == 1
    stamps = [t for t, _, _ in _read(tmp_path / 'out')['/pointcam/saliency']]
    assert stamps == [10**9, 3 * 10**9]
    assert not list(tmp_path.glob('.*partial*'))


def test_command_line(tmp_path, tiny_model):
    source = write_bag(tmp_path / 'in', StoragePlugin.SQLITE3,
                       {'/points': [(10**9, _clouds(1)[0])]})
    params = tmp_path / 'params.yaml'
    PipelineConfig(model_path=tiny_model, device='cpu').to_yaml(params)
    exe = str(Path(sys.executable).parent / 'pointcam_bag')
    result = subprocess.run([exe, str(source), '-o', str(tmp_path / 'out'), '--params',
                             str(params), '--quiet'], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert '1 scans (0 rejected)' in result.stdout and 'device cpu' in result.stdout
    again = subprocess.run([exe, str(source), '-o', str(tmp_path / 'out'), '--params',
                            str(params)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and 'exists' in again.stderr


def test_writer_thread_errors_surface_and_leave_no_bag(tmp_path):
    from pointcam_ros.formats.bag_io import POINTCLOUD2, SafeBagWriter
    with pytest.raises(Exception):  # noqa: B017 - rosbags' serialiser raises its own type
        with SafeBagWriter(tmp_path / 'out') as writer:
            writer.write('/x', POINTCLOUD2, 1, object())  # not a PointCloud2
            for stamp in range(2, 50):  # the error surfaces here or on exit
                writer.write_raw('/y', POINTCLOUD2, stamp, b'\x00\x01\x00\x00')
    assert not (tmp_path / 'out').exists()
    assert not list(tmp_path.glob('.*partial*'))


def test_own_output_topics_are_never_chosen_as_inputs(tmp_path, pipeline):
    clouds = _clouds(2)
    # A bag recorded next to the node: the sensor plus the node's outputs.
    source = write_bag(tmp_path / 'demo', StoragePlugin.MCAP, {
        '/velodyne_points': [(10**9, clouds[0]), (2 * 10**9, clouds[1])],
        '/pointcam/saliency': [(10**9, clouds[0])],
        '/pointcam/front_points/saliency': [(10**9, clouds[0])],
        '/robot/pointcam/saliency': [(10**9, clouds[0])]})
    summary = explain_bag([source], tmp_path / 'out', pipeline, progress=False)
    assert summary.scans == 2
    assert len(_read(tmp_path / 'out')['/pointcam/saliency']) == 2
    # An explained bag with its inputs copied explains again, from the sensor topic.
    explain_bag([source], tmp_path / 'copied', pipeline, copy_inputs=True, progress=False)
    again = explain_bag([tmp_path / 'copied'], tmp_path / 'again', pipeline, progress=False)
    assert again.scans == 2
    # Only outputs: say so; naming them explicitly still works.
    outputs_only = write_bag(tmp_path / 'outputs_only', StoragePlugin.MCAP,
                             {'/pointcam/saliency': [(10**9, clouds[0])]})
    with pytest.raises(ValueError, match='only pointcam output topics'):
        explain_bag([outputs_only], tmp_path / 'x', pipeline, progress=False)
    forced = explain_bag([outputs_only], tmp_path / 'forced', pipeline,
                         topics=['/pointcam/saliency'], progress=False)
    assert forced.scans == 1
    # Two sensors: the message names the sensors, not the outputs.
    two = write_bag(tmp_path / 'two', StoragePlugin.MCAP, {
        '/a/points': [(10**9, clouds[0])], '/b/points': [(10**9, clouds[0])],
        '/pointcam/saliency': [(10**9, clouds[0])]})
    with pytest.raises(ValueError, match=r"several PointCloud2 topics \['/a/points', "
                                         r"'/b/points'\] \(pointcam outputs"):
        explain_bag([two], tmp_path / 'y', pipeline, progress=False)


@pytest.mark.parametrize('topic,output', [
    ('/pointcam/saliency', True), ('/pointcam/front_points/labels', True),
    ('/robot/pointcam/saliency', True), ('pointcam/saliency', True),
    ('/velodyne_points', False), ('/pointcam', False), ('/lidar/pointcam_points', False)])
def test_is_pointcam_topic(topic, output):
    from pointcam_ros.tools.bag_tool import is_pointcam_topic
    assert is_pointcam_topic(topic) is output


def test_missing_input_and_non_bag_inputs_get_their_own_messages(tmp_path, pipeline):
    source = _one_scan_bag(tmp_path / 'in')
    (tmp_path / 'notes.txt').write_text('not a bag')
    (tmp_path / 'empty').mkdir()
    cases = {
        tmp_path / 'nope': 'nope does not exist: check the path',
        tmp_path / 'notes.txt': 'notes.txt is not a rosbag: give a rosbag2 folder',
        tmp_path / 'empty': 'empty is not a rosbag: a folder needs the metadata.yaml',
        next(source.glob('*.mcap')): 'is not a rosbag: give the folder that holds it',
    }
    before = _tree_digest(tmp_path)
    for path, message in cases.items():
        with pytest.raises(BagError, match=message) as info:
            explain_bag([path], tmp_path / 'out', pipeline, progress=False)
        assert 'truncated or corrupt' not in str(info.value)
    assert _tree_digest(tmp_path) == before
    exe = str(Path(sys.executable).parent / 'pointcam_bag')
    result = subprocess.run([exe, str(tmp_path / 'nope'), '-o', str(tmp_path / 'out'),
                             '--quiet'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and 'does not exist: check the path' in result.stderr
    assert 'Traceback' not in result.stderr


def test_cpu_threads_option_overrides_params(tmp_path, tiny_model):
    source = _one_scan_bag(tmp_path / 'in')
    params = tmp_path / 'params.yaml'
    PipelineConfig(model_path=tiny_model, device='cpu', cpu_threads=2).to_yaml(params)
    code = ('import sys; from pointcam_ros.tools.bag_cli import main; '
            'sys.exit(main(sys.argv[1:]))')
    common = [sys.executable, '-c', code, str(source), '--params', str(params), '--quiet']
    default = subprocess.run([*common, '-o', str(tmp_path / 'a')], capture_output=True,
                             text=True, timeout=300)
    assert default.returncode == 0, default.stderr
    assert '2 torch threads' in default.stdout
    one = subprocess.run([*common, '-o', str(tmp_path / 'b'), '--cpu-threads', '1'],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    assert '1 torch threads' in one.stdout


def test_main_restores_the_callers_signal_handlers(tmp_path, tiny_model):
    """pointcam_bag's main() may run inside another program: its SIGTERM handler is temporary."""
    from pointcam_ros.tools.bag_cli import main
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    source = _one_scan_bag(tmp_path / 'in')
    assert main([str(source), '-o', str(tmp_path / 'out'), '--model', tiny_model, '--device',
                 'cpu', '--quiet']) == 0
    assert main([str(tmp_path / 'missing'), '-o', str(tmp_path / 'out2'), '--quiet']) == 1
    assert {s: signal.getsignal(s) for s in before} == before


# --- issue #22: the data-loss guards, each with a test that fails without it -----------------


def _snapshot(folder):
    """Every entry under ``folder``: sha256 of each file, target of each link, each folder."""
    out = {}
    for root, dirs, files in os.walk(folder):  # links to folders are listed, not followed
        for name in dirs + files:
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                out[rel] = ('link', os.readlink(path))
            elif path.is_dir():
                out[rel] = ('folder',)
            else:
                out[rel] = ('file', hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def _recording(path):
    """Write a bag as the demo records one: SafeBagWriter with its default kind."""
    cloud = _clouds(1)[0]
    with SafeBagWriter(path) as writer:
        writer.write('/points', POINTCLOUD2, 10**9, rosbags_cloud(STORE, cloud, _header(1)))
        writer.write('/ground_truth', MARKER_ARRAY, 10**9,
                     rosbags_markers(STORE, [], _header(1)))
    return path


def _cli(tiny_model, *args):
    return main([*map(str, args), '--model', tiny_model, '--device', 'cpu', '--quiet'])


def test_overwrite_never_replaces_a_recording(tmp_path, pipeline, tiny_model):
    """#22.1: the demo's recording carries the marker too, but it is no explanation."""
    recording = _recording(tmp_path / 'demo_20260101_120000')
    assert output_kind(recording) == 'recording' and not is_pointcam_output(recording)
    source = _one_scan_bag(tmp_path / 'in')
    before = _snapshot(tmp_path)
    with pytest.raises(BagExistsError, match='is a recording written by .*never replaced'):
        explain_bag([source], recording, pipeline, overwrite=True, progress=False)
    assert _cli(tiny_model, source, '-o', recording, '--overwrite') == 1
    assert _snapshot(tmp_path) == before
    # An explanation is marked as one, and that is what --overwrite replaces.
    explain_bag([source], tmp_path / 'out', pipeline, progress=False)
    assert output_kind(tmp_path / 'out') == 'explanation'
    explain_bag([source], tmp_path / 'out', pipeline, overwrite=True, progress=False)


def test_overwrite_refuses_a_plain_bag_and_a_marker_of_an_older_version(tmp_path, pipeline):
    """Fails when is_pointcam_output says yes to any bag folder (the mutation of #22)."""
    source = _one_scan_bag(tmp_path / 'in')
    user = _one_scan_bag(tmp_path / 'user_bag')  # rosbags' Writer, no marker
    older = tmp_path / 'older'  # what SafeBagWriter wrote before markers had a kind
    with Writer(older, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.set_custom_data(OUTPUT_MARKER, 'pointcam_bag')
        conn = writer.add_connection('/points', POINTCLOUD2, typestore=STORE)
        writer.write(conn, 10**9, STORE.serialize_cdr(
            rosbags_cloud(STORE, _clouds(1)[0], _header(1)), POINTCLOUD2))
    assert output_kind(older) == 'legacy' and output_kind(user) is None
    before = _snapshot(tmp_path)
    with pytest.raises(BagExistsError, match='did not write'):
        explain_bag([source], user, pipeline, overwrite=True, progress=False)
    with pytest.raises(BagExistsError, match=f'older pointcam_ros.*rm -r {older}'):
        explain_bag([source], older, pipeline, overwrite=True, progress=False)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize('target', ['dangling', 'explanation', 'empty_folder'])
def test_a_symlink_at_the_output_is_never_replaced(tmp_path, pipeline, tiny_model, target):
    """#22.2: ``ln -s /not/yet/mounted out; pointcam_bag in -o out`` must not replace the link."""
    source = _one_scan_bag(tmp_path / 'in')
    pointed = tmp_path / 'not_yet_mounted'
    if target == 'explanation':
        explain_bag([source], pointed, pipeline, progress=False)
    elif target == 'empty_folder':
        pointed.mkdir()
    link = tmp_path / 'out'
    link.symlink_to(pointed)
    before = _snapshot(tmp_path)
    scans = []
    for overwrite in (False, True):
        with pytest.raises(BagExistsError, match='symbolic link'):
            explain_bag([source], link, pipeline, overwrite=overwrite, progress=False,
                        on_scan=lambda done, total: scans.append(done))
    assert scans == []  # refused before any work
    assert _cli(tiny_model, source, '-o', link) == 1
    assert _cli(tiny_model, source, '-o', link, '--overwrite') == 1
    assert _snapshot(tmp_path) == before


def test_overwrite_keeps_an_output_holding_any_entry_it_did_not_write(tmp_path, pipeline):
    """#22.3: links, empty folders, folders and files a user put in an old output stop it."""
    source = _one_scan_bag(tmp_path / 'in')
    out = tmp_path / 'out'
    explain_bag([source], out, pipeline, progress=False)
    (tmp_path / 'precious').mkdir()
    (tmp_path / 'precious' / 'results.csv').write_text('1,2,3')
    mcap = next(out.glob('*.mcap'))

    def link_to_folder():
        (out / 'my_results_link').symlink_to('../precious')

    def own_file_as_link():
        mcap.rename(tmp_path / 'moved.mcap')
        mcap.symlink_to(tmp_path / 'moved.mcap')

    extras = {
        'my_results_link': link_to_folder,
        'my_empty_dir': lambda: (out / 'my_empty_dir').mkdir(),
        'dangling': lambda: (out / 'dangling').symlink_to(tmp_path / 'nowhere'),
        'folder': lambda: ((out / 'folder').mkdir(), (out / 'folder' / 'f.txt').write_text('x')),
        'notes.txt': lambda: (out / 'notes.txt').write_text('mine'),
        mcap.name: own_file_as_link,
    }
    for name, make in extras.items():
        make()
        before = _snapshot(tmp_path)
        with pytest.raises(BagExistsError, match=f'did not write: {name}'):
            explain_bag([source], out, pipeline, overwrite=True, progress=False)
        assert _snapshot(tmp_path) == before, name
        entry = out / name  # the test's own additions, undone one by one
        if name == mcap.name:
            mcap.unlink()
            (tmp_path / 'moved.mcap').rename(mcap)
        elif entry.is_symlink() or entry.is_file():
            entry.unlink()
        else:
            for inner in entry.iterdir():
                inner.unlink()
            entry.rmdir()
    explain_bag([source], out, pipeline, overwrite=True, progress=False)  # only its own files
    assert (tmp_path / 'precious' / 'results.csv').read_text() == '1,2,3'


def test_a_destination_changed_while_writing_is_left_alone(tmp_path, pipeline):
    """The last check before the rename: what appeared meanwhile is neither replaced nor lost."""
    source = _one_scan_bag(tmp_path / 'in')
    out = tmp_path / 'out'
    explain_bag([source], out, pipeline, progress=False)
    cloud = rosbags_cloud(STORE, _clouds(1)[0], _header(1))
    with pytest.raises(BagExistsError, match='did not write: notes.txt'):
        with SafeBagWriter(out, overwrite=True, inputs=[source], kind='explanation') as writer:
            writer.write('/pointcam/saliency', POINTCLOUD2, 10**9, cloud)
            (out / 'notes.txt').write_text('written while the bag was being written')
    assert (out / 'notes.txt').read_text().startswith('written while')
    fresh = tmp_path / 'fresh'
    with pytest.raises(BagExistsError, match='fresh'):
        with SafeBagWriter(fresh, inputs=[source], kind='explanation') as writer:
            writer.write('/pointcam/saliency', POINTCLOUD2, 10**9, cloud)
            fresh.mkdir()  # an empty folder made meanwhile: a rename would replace it
            (tmp_path / 'mine').mkdir()
            (fresh / 'link').symlink_to(tmp_path / 'mine')
    assert os.listdir(fresh) == ['link'] and (tmp_path / 'mine').is_dir()
    fresh_empty = tmp_path / 'fresh_empty'
    with pytest.raises(BagExistsError, match='fresh_empty'):
        with SafeBagWriter(fresh_empty, inputs=[source], kind='explanation') as writer:
            writer.write('/pointcam/saliency', POINTCLOUD2, 10**9, cloud)
            fresh_empty.mkdir()
    assert os.listdir(fresh_empty) == []
    assert not [p for p in tmp_path.iterdir() if '.partial-' in p.name]


def test_a_bag_given_twice_for_one_output_is_refused(tmp_path, pipeline, tiny_model):
    """#22.6 with --merge: the same bag (here also through a link) would be read twice."""
    source = _one_scan_bag(tmp_path / 'in')
    (tmp_path / 'alias').symlink_to(source)
    before = _snapshot(tmp_path)
    with pytest.raises(UsageError, match='given more than once'):
        explain_bag([source, tmp_path / 'alias'], tmp_path / 'out', pipeline, progress=False)
    assert _cli(tiny_model, source, source, '--merge', '-o', tmp_path / 'out') == 2
    assert _snapshot(tmp_path) == before


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from pointcam_ros.formats.bag_io import SafeBagWriter
writers = [SafeBagWriter(Path(a)).__enter__() for a in sys.argv[1:]]
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_stale_partials_are_found_by_exact_name(tmp_path, pipeline):
    """#22.5: ``run[1]`` is a name, not a glob pattern (alone, or as a fleet's killed worker)."""
    names = ['run[1]', 'run1', 'a*b', 'aXb', 'q?']
    killed = subprocess.run([sys.executable, '-c', _KILLED_WRITER,
                             *(str(tmp_path / n) for n in names)],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    pid = int(killed.stdout)

    def partials(name):
        return [p for p in tmp_path.iterdir() if p.name.startswith(f'.{name}.partial-')]
    assert all(len(partials(n)) == 1 for n in names)
    assert len(remove_stale_partials(tmp_path / 'run[1]')) == 1 and not partials('run[1]')
    assert len(partials('run1')) == 1  # not the other bag's
    assert len(remove_partials_of(tmp_path / 'a*b', pid, os.uname().nodename)) == 1
    assert not partials('a*b') and len(partials('aXb')) == 1
    explain_bag([_one_scan_bag(tmp_path / 'in')], tmp_path / 'q?', pipeline, progress=False)
    assert not partials('q?') and is_pointcam_output(tmp_path / 'q?')
    for name in ('run1', 'aXb'):
        assert len(remove_stale_partials(tmp_path / name)) == 1
    assert not [p for p in tmp_path.iterdir() if '.partial-' in p.name]


def test_clashing_output_topics_are_refused_before_any_work(tmp_path, pipeline, tiny_model):
    """#22.7: two inputs on one output namespace, or a copied input on an output topic."""
    clouds = _clouds(1)
    two = write_bag(tmp_path / 'two', StoragePlugin.MCAP, {
        '/lidar/front': [(10**9, clouds[0])], '/lidar_front': [(10**9, clouds[0])]})
    outputs = write_bag(tmp_path / 'outputs_only', StoragePlugin.MCAP,
                        {'/pointcam/saliency': [(10**9, clouds[0])]})
    before = _snapshot(tmp_path)
    with pytest.raises(UsageError, match="'/lidar/front' and '/lidar_front' would both publish"):
        explain_bag([two], tmp_path / 'out', pipeline, topics=['/lidar/front', '/lidar_front'],
                    progress=False)
    with pytest.raises(UsageError, match='--copy-inputs would copy /pointcam/saliency'):
        explain_bag([outputs], tmp_path / 'out', pipeline, topics=['/pointcam/saliency'],
                    copy_inputs=True, progress=False)
    assert _cli(tiny_model, two, '-o', tmp_path / 'out', '--topics', '/lidar/front',
                '/lidar_front') == 2
    assert _cli(tiny_model, outputs, '-o', tmp_path / 'out', '--topics',
                '/pointcam/saliency', '--copy-inputs') == 2
    assert _snapshot(tmp_path) == before
