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

"""pointcam_node as a real process, driven over DDS by a real rclpy test node."""

import array
import dataclasses
import itertools
import json
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from pointcam_ros.common.config import node_params
from pointcam_ros.common.results import SceneResult
from pointcam_ros.formats.cloud_io import CLOUD_ERROR_KINDS, FieldSpec, FLOAT32, pack_cloud
from pointcam_ros.formats.cloud_io import PackedCloud, read_cloud, saliency_cloud
from pointcam_ros.formats.scan_io import explain_cloud
from pointcam_ros.formats.sensor_layouts import LIVOX_CUSTOM, OUSTER_ORIGINAL
from pointcam_ros.ros.node import PointcamNode
from pointcam_ros.ros.ros_msgs import message_buffer, to_ros_cloud
from pointcam_ros.ros.sim_node import SIM_PARAMS
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import CLASS_NAMES, random_scene, scan, SENSORS
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter as RclpyParameter
from ros_harness import ensure_rclpy, Harness, start_process, stop_process
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
OK, WARN, ERROR = 0, 1, 2
_STAMPS = itertools.count(1000)


def _header(frame='lidar_test'):
    header = Header()
    header.stamp.sec = next(_STAMPS)
    header.stamp.nanosec = 4242
    header.frame_id = frame
    return header


@pytest.fixture(scope='module')
def sim():
    scene = random_scene(2_000_101)
    return scan(scene, SENSORS['hdl32'], 3)


@pytest.fixture(scope='module')
def node_process():
    ensure_rclpy()
    # max_range:=60 is an integer on the command line: accepted for a float parameter.
    process = start_process('pointcam_node', '-p', 'device:=cpu', '-p', 'max_range:=60',
                            '-p', 'diagnostics_window:=3.0')
    yield process
    code, output = stop_process(process)
    assert code == 0, f'pointcam_node did not shut down cleanly on SIGTERM:\n{output}'


@pytest.fixture(scope='module')
def shared_harness(node_process):
    """One test node for the module: discovering a new one costs seconds of DDS per test."""
    h = Harness()
    h.listen_outputs()
    h.listen_diagnostics()
    assert h.wait_for_subscriber(), 'pointcam_node never subscribed to points'
    yield h
    h.close()


@pytest.fixture
def harness(shared_harness):
    """Return the module's test node with nothing received yet, as a new one."""
    shared_harness.clear()
    assert shared_harness.wait_for_subscriber(), 'pointcam_node no longer subscribes to points'
    return shared_harness


def _send_until_answered(h, msg, timeout=40.0):
    """Publish until the saliency cloud with msg's stamp arrives; return it."""
    stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)

    def answered():
        return any((m.header.stamp.sec, m.header.stamp.nanosec) == stamp for m in h.saliency)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h.points_pub.publish(msg)
        if h.wait_for(answered, timeout=3.0):
            with h.lock:
                return next(m for m in h.saliency
                            if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp)
    raise AssertionError(f'no saliency cloud for stamp {stamp}')


def _rejected(h):
    """Cumulative rejected count from the node's newest diagnostics (waits for one)."""
    assert h.wait_for(lambda: h.last_diagnostics() is not None, timeout=10)
    return int(h.last_diagnostics()['rejected'])


def _labels_for(h, stamp):
    assert h.wait_for(lambda: any(m.markers and m.markers[0].header.stamp.sec == stamp.sec
                                  for m in h.labels), timeout=10)
    with h.lock:
        return next(m for m in h.labels
                    if m.markers and m.markers[0].header.stamp.sec == stamp.sec)


def test_sim_scan_in_velodyne_layout(harness, sim):
    msg = to_ros_cloud(scan_to_cloud(sim), _header())
    out = _send_until_answered(harness, msg)
    assert out.header.frame_id == 'lidar_test' and out.header.stamp.nanosec == 4242
    valid = np.isfinite(sim.xyz.reshape(-1, 3)).all(axis=1)
    result = read_cloud(out, ['intensity', 'label', 'object_id'])
    assert result.xyz.shape[0] == valid.sum()  # one output point per valid input point
    np.testing.assert_array_equal(result.xyz, sim.xyz.reshape(-1, 3)[valid])
    saliency = result.extras['intensity']
    assert saliency.min() >= 0 and saliency.max() <= 1 and saliency.max() > 0
    # Labels agree with the simulator's ground truth for clear objects.
    truth = sim.class_id.reshape(-1)[valid]
    object_id, label = result.extras['object_id'], result.extras['label']
    agree, clear = 0, 0
    for k in np.unique(object_id[object_id >= 0]):
        members = object_id == k
        gt = np.bincount(truth[members][truth[members] >= 0], minlength=len(CLASS_NAMES))
        centroid = result.xyz[members].mean(axis=0)
        if members.sum() >= 100 and np.hypot(*centroid[:2]) <= 25 and \
                gt.max() >= 0.9 * members.sum():
            clear += 1
            agree += int(label[members][0]) == int(gt.argmax())
    assert clear >= 4
    assert agree / clear >= 0.8, f'{agree}/{clear} clear objects labelled as ground truth'
    markers = _labels_for(harness, msg.header.stamp)
    assert markers.markers[0].action == 3  # DELETEALL first
    texts = [m.text for m in markers.markers if m.type == 9]
    assert len(texts) == len(np.unique(object_id[object_id >= 0]))
    assert all(t.split()[0] in (*CLASS_NAMES, 'unknown') for t in texts), texts


@pytest.mark.parametrize('layout', [OUSTER_ORIGINAL, LIVOX_CUSTOM], ids=lambda x: x.name)
def test_real_driver_layouts(harness, sim, layout):
    # Every second column keeps the message near 1.5 MB: best-effort DDS loses large
    # fragmented samples under load, and the layout, not the size, is under test here.
    xyz = sim.xyz[:, ::2].reshape(-1, 3)
    height = sim.sensor.beams
    if layout is LIVOX_CUSTOM:  # unorganized, no NaN
        xyz = xyz[np.isfinite(xyz).all(axis=1)]
        height = 1
    packed = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2]}, layout.fields,
                        layout.point_step, height=height)
    msg = to_ros_cloud(packed, _header())
    out = _send_until_answered(harness, msg)
    assert out.width == np.isfinite(xyz).all(axis=1).sum()


def test_malformed_messages_do_not_stop_good_ones(harness, sim):
    good = scan_to_cloud(sim)
    truncated = dataclasses.replace(good, data=good.data[:1000])
    no_z = dataclasses.replace(good, fields=[f for f in good.fields if f.name != 'z'])

    def rejected():
        return int(harness.last_diagnostics()['rejected'])

    for bad, reason in ((truncated, 'shorter than row_step'), (no_z, 'no field z')):
        before = _rejected(harness)  # waits for the node's diagnostics
        deadline = time.monotonic() + 30
        # A bad scan replaced by a newer one before the worker takes it is dropped, not
        # rejected: resend until the node has rejected it, then send a good one.
        while time.monotonic() < deadline:
            harness.points_pub.publish(to_ros_cloud(bad, _header()))
            if harness.wait_for(lambda: rejected() > before, timeout=2.0):
                break
        assert rejected() > before
        assert reason in harness.last_diagnostics()['last_reject_reason']
        _send_until_answered(harness, to_ros_cloud(good, _header()))
    # The diagnostics that follow the good scans (once a period) count them.
    assert harness.wait_for(lambda: int(harness.last_diagnostics()['processed']) >= 2,
                            timeout=10), harness.last_diagnostics()
    diag = harness.last_diagnostics()
    assert int(diag['processed']) >= 2 and diag['device'] == 'cpu'
    assert diag['model_family'] == 'pointnet'  # the shipped model


def _call(node, service_type, name, request):
    client = node.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(request)
    deadline = time.monotonic() + 10
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    node.destroy_client(client)
    assert future.done(), f'{name} did not answer'
    return future.result()


def _set_parameters(node, **values):
    request = SetParameters.Request()
    for name, value in values.items():
        if isinstance(value, str):
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        elif isinstance(value, float):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        request.parameters.append(Parameter(name=name, value=pv))
    return _call(node, SetParameters, '/pointcam/set_parameters', request).results


def _get_parameter(node, name):
    response = _call(node, GetParameters, '/pointcam/get_parameters',
                     GetParameters.Request(names=[name]))
    return response.values[0]


def test_integer_given_for_a_float_parameter_is_accepted(harness):
    value = _get_parameter(harness.node, 'max_range')  # started with max_range:=60
    assert value.type == ParameterType.PARAMETER_DOUBLE and value.double_value == 60.0
    assert _set_parameters(harness.node, max_range=70)[0].successful  # at run time too
    value = _get_parameter(harness.node, 'max_range')
    assert value.type == ParameterType.PARAMETER_DOUBLE and value.double_value == 70.0
    assert _set_parameters(harness.node, max_range=60.0)[0].successful


def test_empty_parameter_name_is_refused(harness):
    results = _set_parameters(harness.node, **{'': 'x'})
    assert not results[0].successful and 'empty parameter name' in results[0].reason


def test_parameter_changes_apply_at_the_next_scan(harness, sim):
    results = _set_parameters(harness.node, target_class='pedestrian')
    assert results[0].successful
    msg = to_ros_cloud(scan_to_cloud(sim), _header())
    _send_until_answered(harness, msg)
    texts = [m.text for m in _labels_for(harness, msg.header.stamp).markers if m.type == 9]
    assert texts and all(t.startswith(('pedestrian', 'unknown (pedestrian'))
                         or '(why pedestrian?)' in t for t in texts)
    rejected = _set_parameters(harness.node, target_class='bus')
    assert not rejected[0].successful and 'bus' in rejected[0].reason
    bad_method = _set_parameters(harness.node, method='lime')
    assert not bad_method[0].successful and 'method: must be one of' in bad_method[0].reason
    # The schema's range (the same for pointcam_bag and the Python API), in the descriptor.
    low = _set_parameters(harness.node, ground_threshold=0.001)
    assert not low[0].successful and 'ground_threshold' in low[0].reason
    assert '0.01' in low[0].reason
    assert _set_parameters(harness.node, target_class='', max_input_points=1000)[0].successful
    before = _rejected(harness)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # best-effort DDS may lose one: resend
        harness.points_pub.publish(to_ros_cloud(scan_to_cloud(sim), _header()))
        if harness.wait_for(lambda: _rejected(harness) > before,
                            timeout=3.0):
            break
    else:
        raise AssertionError('huge scan was not rejected')
    diagnostics = harness.last_diagnostics()
    assert 'max_input_points' in diagnostics['last_reject_reason']
    # Counted before decoding: the cloud's width x height, not its finite points.
    assert 'CloudFormatError: too_many_points' in diagnostics['reject_reasons']
    assert _set_parameters(harness.node, max_input_points=2_000_000)[0].successful


def test_model_is_skipped_without_subscribers(node_process, sim):
    ensure_rclpy()
    quiet = start_process('pointcam_node', '-r', '__ns:=/quiet', '-p', 'device:=cpu')
    h = Harness(namespace='/quiet')
    try:
        h.listen_diagnostics()
        assert h.wait_for_subscriber()
        for _ in range(5):
            h.points_pub.publish(to_ros_cloud(scan_to_cloud(sim), _header()))
            time.sleep(0.3)
        name = '/quiet/pointcam: points'
        assert h.wait_for(lambda: (h.last_diagnostics(name) or {}).get(
            'skipped_no_subscribers', '0') != '0', timeout=10)
        assert int(h.last_diagnostics(name)['processed']) == 0
    finally:
        h.close()
        code, output = stop_process(quiet)
    assert code == 0, output
    # The console says why nothing happens, once (five scans arrived).
    told = [line for line in output.splitlines() if 'scans arrive on /quiet/points' in line]
    assert len(told) == 1 and 'nothing subscribes to /quiet/pointcam/saliency' in told[0], output
    assert 'first scan on' not in output, output


def test_several_input_topics_get_their_own_outputs(node_process, sim):
    ensure_rclpy()
    multi = start_process('pointcam_node', '-r', '__ns:=/multi', '-p', 'device:=cpu',
                          '-p', "input_topics:=['lidar/front', 'rear']")
    front = Harness(namespace='/multi', input_topic='lidar/front')
    rear = Harness(namespace='/multi', input_topic='rear')
    try:
        front.listen_outputs('pointcam/lidar_front')
        rear.listen_outputs('pointcam/rear')
        assert front.wait_for_subscriber() and rear.wait_for_subscriber()
        cloud = scan_to_cloud(sim)
        _send_until_answered(front, to_ros_cloud(cloud, _header()))
        _send_until_answered(rear, to_ros_cloud(cloud, _header()))
        assert front.wait_for(lambda: front.labels) and rear.wait_for(lambda: rear.labels)
    finally:
        front.close()
        rear.close()
        code, output = stop_process(multi)
    assert code == 0, output
    for topic in ('/multi/lidar/front', '/multi/rear'):  # told once per topic, not per scan
        told = [line for line in output.splitlines() if f'first scan on {topic} explained'
                in line]
        assert len(told) == 1 and 'objects in' in told[0], output


@pytest.mark.parametrize('override, parameter', [
    ('min_range:=-3.0', 'min_range'),  # out of range
    ('device:=banana', 'device'),
    ('method:=lime', 'method'),
    ('seed:=abc', 'seed'),  # wrong type
    ('min_range:=170.0', 'max_range'),  # cross-field rule
    ('target_class:=bus', 'target_class'),  # not a class of the model
    # Two inputs, one output namespace: two sensors would interleave on one topic.
    ("input_topics:=['/lidar/front', '/lidar_front']", 'input_topics'),
    ("input_topics:=['points', 'points']", 'input_topics'),
    # rclpy's own refusal, whose message draws a caret under the name on more lines.
    ("input_topics:=['bad topic!']", 'InvalidTopicNameException'),
])
def test_bad_startup_parameter_fails_in_one_clean_line(override, parameter):
    process = start_process('pointcam_node', '-p', override, '-r', '__ns:=/bad')
    code, output = stop_process(process, timeout=60, terminate=False)
    assert code == 1, output
    assert 'Traceback' not in output
    lines = [line for line in output.splitlines() if 'cannot start:' in line]
    assert len(lines) == 1, output
    assert re.search(f'cannot start: {parameter}: \\S', lines[0]), lines[0]
    assert not any(set(line.strip()) == {'^'} for line in output.splitlines()), output


@pytest.mark.parametrize('executable, specs', [('pointcam_node', node_params()),
                                               ('pointcam_sim', SIM_PARAMS)])
def test_help_lists_the_parameters_and_starts_nothing(executable, specs):
    result = subprocess.run([str(Path(sys.executable).parent / executable), '--help'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for spec in specs:
        assert re.search(rf'^  {re.escape(spec.name)} \(default ', result.stdout, re.M), spec
    assert '[INFO]' not in result.stdout + result.stderr  # no node was created


def test_missing_model_fails_clearly():
    process = start_process('pointcam_node', '-p', 'model_path:=/nonexistent/model.pt',
                            '-r', '__ns:=/bad2')
    code, output = stop_process(process, timeout=60, terminate=False)
    assert code == 1 and 'does not exist' in output


@pytest.mark.colcon
def test_node_from_the_colcon_install_space(colcon_install, node_process, sim):
    ensure_rclpy()
    process = start_process('pointcam_node', '-r', '__ns:=/installed', '-p', 'device:=cpu',
                            install=colcon_install)
    h = Harness(namespace='/installed')
    try:
        h.listen_outputs()
        assert h.wait_for_subscriber(timeout=60), 'installed node never subscribed'
        out = _send_until_answered(h, to_ros_cloud(scan_to_cloud(sim), _header()))
        assert out.width == np.isfinite(sim.xyz.reshape(-1, 3)).all(axis=1).sum()
    finally:
        h.close()
        code, output = stop_process(process)
    assert code == 0, output


def _wait_level(h, level, name='/pointcam: points', timeout=20.0):
    """Wait until the newest status ``name`` has ``level``; return it (or fail)."""
    ok = h.wait_for(lambda: (h.last_status(name) or (None,))[0] == level, timeout=timeout)
    assert ok, f'{name} never reached level {level}: {h.last_status(name)}'
    return h.last_status(name)


def test_diagnostics_follow_the_recent_window(harness, sim):
    good = scan_to_cloud(sim)
    bad = dataclasses.replace(good, data=good.data[:1000])
    _send_until_answered(harness, to_ros_cloud(good, _header()))
    before = _rejected(harness)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        harness.points_pub.publish(to_ros_cloud(bad, _header()))
        if harness.wait_for(lambda: _rejected(harness) > before,
                            timeout=2.0):
            break
    # The first WARN may be for dropped scans only (bad ones replaced by newer ones): wait
    # for the status that counts the rejected scan in its window.
    assert harness.wait_for(lambda: (harness.last_status() or (None,))[0] == WARN and int(
        harness.last_status()[2]['window_rejected']) > 0, timeout=20), harness.last_status()
    _, message, _ = harness.last_status()
    assert re.search(r'[1-9]\d* rejected in the last 3 s', message), message
    # Good scans flow again: back to OK once the bad one left the 3 s window.
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and harness.last_status()[0] != OK:
        _send_until_answered(harness, to_ros_cloud(good, _header()))
        time.sleep(0.3)
    level, message, values = harness.last_status()
    assert level == OK, message
    assert 'scans explained in the last 3 s' in message
    assert int(values['rejected']) > before  # counters stay cumulative
    assert int(values['window_rejected']) == 0
    stages = json.loads(values['stage_p50_ms'])  # test stamps are not of this clock
    assert set(stages) == {'mailbox', 'decode', 'pipeline', 'build', 'publish', 'labels'}, \
        stages
    assert stages['pipeline'] > 0 and min(stages.values()) >= 0
    assert float(values['latency_p50_ms']) >= stages['pipeline']


def test_empty_cloud_gets_an_empty_saliency_cloud(harness):
    msg = PointCloud2(header=_header(), height=1, width=0, point_step=12, row_step=0,
                      fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32,
                                         count=1) for i, n in enumerate('xyz')])
    out = _send_until_answered(harness, msg, timeout=15.0)
    assert out.width * out.height == 0 and len(out.data) == 0


def test_worker_survives_failures_and_diagnostics_show_them(sim):
    """Failures injected into a real in-process node: ERROR, then OK, scans answered."""
    ensure_rclpy()
    node = PointcamNode(namespace='/inproc', parameter_overrides=[
        RclpyParameter('device', value='cpu'), RclpyParameter('diagnostics_window', value=2.0),
        RclpyParameter('diagnostics_period', value=0.5)])
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    h = Harness(namespace='/inproc')
    name = '/inproc/pointcam: points'
    cloud = scan_to_cloud(sim)
    try:
        h.listen_outputs()
        h.listen_diagnostics()
        assert h.wait_for_subscriber()
        _send_until_answered(h, to_ros_cloud(cloud, _header()))
        _wait_level(h, OK, name)

        def broken_reconfigure(config):
            raise RuntimeError('injected reconfigure failure')

        node.pipeline.reconfigure = broken_reconfigure
        assert node.set_parameters([RclpyParameter('method', value='hirescam')])[0].successful
        _send_until_answered(h, to_ros_cloud(cloud, _header()))  # still served, old config
        _, message, values = _wait_level(h, ERROR, name)
        assert 'parameters not applied' in message and 'injected' in message
        assert values['method'] == 'gradcam' and int(values['worker_errors']) >= 1
        del node.pipeline.reconfigure  # the real one again
        assert node.set_parameters([RclpyParameter('method', value='xgradcam')])[0].successful
        _send_until_answered(h, to_ros_cloud(cloud, _header()))
        _, _, values = _wait_level(h, OK, name)
        assert values['method'] == 'xgradcam'

        def broken_process(points):
            raise MemoryError('injected processing failure')

        node.pipeline.process = broken_process
        h.points_pub.publish(to_ros_cloud(cloud, _header()))
        _, message, values = _wait_level(h, ERROR, name)
        assert 'scans failed' in message and 'injected' in values['last_reject_reason']
        del node.pipeline.process
        assert node._worker.is_alive()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and h.last_status(name)[0] != OK:
            _send_until_answered(h, to_ros_cloud(cloud, _header()))
            time.sleep(0.3)
        assert h.last_status(name)[0] == OK and int(h.last_status(name)[2]['errors']) >= 1
    finally:
        h.close()
        node.stop()
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()


def test_storm_short(tmp_path):
    """A short hostile storm (bench/bench_storm.py runs the long one)."""
    ensure_rclpy()
    sys.path.insert(0, str(ROOT / 'bench'))
    try:
        from bench_storm import run_storm
    finally:
        sys.path.remove(str(ROOT / 'bench'))
    out = run_storm(messages=200, rate=100.0, namespace='/storm_short',
                    log_path=tmp_path / 'node.log')
    assert out['alive'] and out['exit_code'] == 0, out['log']
    assert out['tracebacks_in_log'] == 0
    assert out['answered_after_storm'] == 5
    kinds = json.loads(out['diagnostics']['reject_reasons'])
    allowed = {f'CloudFormatError: {kind}' for kind in CLOUD_ERROR_KINDS} | {
        'ScanError: bad_shape', 'ScanError: too_many_points'}
    assert kinds and set(kinds) <= allowed, kinds  # by kind, never by a field's name
    assert out['valid_answered'] >= 1
    diag = out['diagnostics']
    assert int(diag['rejected']) >= 20 and int(diag['errors']) == 0, diag


def test_wrong_input_topic_is_obvious_in_the_console():
    """
    Remapped to a topic nobody publishes: the mistake shows in the console.

    The resolved names are logged, then a warning names the topic and the
    PointCloud2 publishers the node can see; an unknown parameter names --help.
    """
    ensure_rclpy()
    process = start_process('pointcam_node', '-r', '__ns:=/wrong', '-r',
                            'points:=/wrong/velodyne_points', '-p', 'device:=cpu',
                            '-p', 'diagnostics_window:=1.0', '-p', 'diagnostics_period:=0.5',
                            '-p', 'no_such_parameter:=3')
    h = Harness(namespace='/wrong')  # publishes on /wrong/points, where the driver is
    try:
        h.listen_diagnostics()
        name = '/wrong/pointcam: points'
        assert h.wait_for(lambda: (h.last_status(name) or (None,))[0] == WARN, timeout=60)
        level, message, values = h.last_status(name)
        assert 'no scan received' in message and values['input_topic'] == \
            '/wrong/velodyne_points' and values['seconds_since_last_scan'] == 'never'
        time.sleep(2.5)  # the console warning follows the diagnostics, once a window
    finally:
        h.close()
        code, output = stop_process(process)
    assert code == 0, output
    assert '/wrong/velodyne_points -> /wrong/pointcam/saliency, /wrong/pointcam/labels' \
        in output, output
    warning = [line for line in output.splitlines() if 'no scan on /wrong/velodyne_points'
               in line]
    assert warning, output
    # Once the test's publisher is discovered, the warning names it (not the node's output).
    assert any('/wrong/points (1 publisher)' in line for line in warning), warning
    assert not any('/wrong/pointcam/saliency' in line.split('publishers:')[1]
                   for line in warning), warning
    assert 'see pointcam_node --help' in output and "'no_such_parameter'" in output


PUBLISHING = 'scans'  # for ``after``: once the simulator's first scan has arrived


@pytest.mark.parametrize('executable, signum, after, ignored', [
    ('pointcam_sim', signal.SIGINT, 0.5, False),  # still importing torch and open3d
    ('pointcam_sim', signal.SIGINT, 3.0, False),  # building the scene
    ('pointcam_sim', signal.SIGINT, PUBLISHING, False),  # casting and publishing scans
    # SIGINT inherited ignored (nohup, a background start): rclpy's handler shuts the
    # context down under the publishing timer callback (RCLError before the fix).
    ('pointcam_sim', signal.SIGINT, PUBLISHING, True),
    ('pointcam_sim', signal.SIGTERM, PUBLISHING, False),
    ('pointcam_node', signal.SIGINT, 0.0, False)])
def test_ctrl_c_and_sigterm_exit_cleanly(executable, signum, after, ignored, sim):
    """
    Stopped at any moment: exit 0 or 130, no traceback, no RCLError, no 'cannot start'.

    A simulator is stopped ``after`` seconds, or (PUBLISHING) as soon as its first scan
    arrived: it then casts and publishes scans back to back, whatever the machine's speed.
    """
    ensure_rclpy()
    namespace = f'/stop_{executable}_{next(_STAMPS)}'
    # An OS1-128 scan takes long to cast and publish: the signal lands inside the timer
    # callback, which then publishes on a context that rclpy's handler already shut down.
    extra = ('-p', 'sensor:=os1_128') if executable == 'pointcam_sim' \
        else ('-p', 'device:=cpu')
    process = start_process(executable, '-r', f'__ns:={namespace}', *extra,
                            sigint_ignored=ignored)
    h = Harness(namespace=namespace,
                input_topic='points' if executable == 'pointcam_node' else 'unused')
    try:
        if after == PUBLISHING:
            scans = h.listen(PointCloud2, 'points')
            assert h.wait_for(lambda: scans, timeout=60), 'pointcam_sim published no scan'
        elif executable == 'pointcam_sim':
            time.sleep(after)
        else:
            h.listen_outputs()
            assert h.wait_for_subscriber(timeout=60)
            for _ in range(3):  # Ctrl-C lands while the worker publishes, or just after
                h.points_pub.publish(to_ros_cloud(scan_to_cloud(sim), _header()))
            time.sleep(0.2)
        process.send_signal(signum)
        code, output = stop_process(process, terminate=False)
    finally:
        h.close()
        if process.poll() is None:
            process.kill()
    assert code in (0, 130), output
    assert 'Traceback' not in output and 'RCLError' not in output, output
    assert 'cannot start' not in output, output


def test_the_node_saliency_message_is_the_packed_cloud_byte_for_byte():
    """The one-copy message of the hot path is the packed cloud's message, field by field."""
    rng = np.random.default_rng(3)
    num = 1_001
    xyz = rng.normal(size=(num, 3)).astype(np.float32)
    saliency = rng.random(num).astype(np.float32)
    labels, ids = rng.integers(-2, 7, num), rng.integers(-1, 40, num)
    header = _header()

    def process(points: np.ndarray) -> SceneResult:
        return SceneResult(saliency[:len(points)], labels[:len(points)], ids[:len(points)])

    fields = [FieldSpec(n, 4 * i, FLOAT32) for i, n in enumerate('xyz')]

    def fast(points: np.ndarray) -> PointCloud2:
        cloud = (pack_cloud({'x': points[:, 0], 'y': points[:, 1], 'z': points[:, 2]},
                            fields, 12) if len(points)
                 else PackedCloud(1, 0, fields, False, 12, 0, b'', True))
        scan = explain_cloud(cloud, process, buffer=message_buffer)
        assert isinstance(scan.cloud.data, array.array)  # handed over, not copied
        return to_ros_cloud(scan.cloud, header)

    reference = to_ros_cloud(saliency_cloud(xyz, saliency, labels, ids), header)
    message = fast(xyz)
    # (Serialised bytes are no test: CDR's alignment padding is not zeroed.)
    for name in ('header', 'height', 'width', 'fields', 'is_bigendian', 'point_step',
                 'row_step', 'is_dense'):
        assert getattr(message, name) == getattr(reference, name), name
    assert bytes(message.data) == bytes(reference.data) and len(message.data) == 24 * num
    empty = fast(xyz[:0])
    assert empty.width == 0 and len(empty.data) == 0
    with pytest.raises(ValueError, match='buffer holds'):
        saliency_cloud(xyz, saliency, labels, ids, buffer=message_buffer(24 * num - 24))
