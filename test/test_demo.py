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
"""The README's demo: simulator and node as processes, recorded to a real MCAP bag."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
from pointcam_ros.common.config import output_prefix
from pointcam_ros.formats.bag_io import typestore
from pointcam_ros.ros.demo import (
    class_accuracy, LABELS, POINTS, Recording, SALIENCY, summary, TOPICS)
from pointcam_ros.tools.render import largest_objects, render_snapshot, snapshot_numbers
import pytest
from rosbags.highlevel import AnyReader

pytestmark = pytest.mark.ros


def test_demo_topics_are_absolute_and_match_pointcam_bag():
    assert all(topic.startswith('/') for topic in TOPICS)
    assert SALIENCY == '/' + output_prefix('points', False) + '/saliency' == '/pointcam/saliency'
    assert LABELS == '/pointcam/labels' and POINTS == '/points'


def test_summary_reports_what_was_received_and_over_how_long():
    rec = Recording()
    rec.counts.update({POINTS: 101, SALIENCY: 99, LABELS: 99})
    rec.stamps[POINTS] = [10_000_000_000, 20_100_000_000]
    rec.received[SALIENCY] = [100.0, 110.2]
    rec.diagnostics = {'received': '101', 'processed': '99', 'dropped': '2',
                       'device': 'cpu', 'model_family': 'dgcnn'}
    rec.latencies_ms = [50.0, 60.0, 70.0]
    text = summary(rec, 12.3, final_diagnostics=True, drain_s=1.6)
    assert 'recorded 12.3 s wall from the first saliency cloud' in text
    assert 'then 1.6 s to stop the simulator and let the node finish' in text
    assert 'scans in (sim -> recorder): 101, stamps spanning 10.1 s' in text
    assert 'saliency clouds out (node -> recorder): 99, received over 10.2 s' in text
    assert 'node reported (final, after its last scan; counts since it started, start-up ' \
           'included): received 101, processed 99' in text
    assert 'device cpu, model family dgcnn,' in text
    lagging = summary(rec, 12.3, final_diagnostics=False)
    assert 'node reported (last report, may lag behind the counts above;' in lagging


def test_label_accuracy_counts_unknown_as_a_miss_and_reports_it_apart():
    rec = Recording()
    truth = [(np.array([10.0, 0.0, 0.0]), 'car'), (np.array([0.0, 8.0, 0.0]), 'pedestrian')]
    rec.truth = {1: truth, 2: truth}
    rec.labels = {1: [(np.array([10.3, 0.2, 0.8]), 'car'), (np.array([0.2, 8.1, 0.9]),
                                                            'unknown')],
                  2: [(np.array([9.8, -0.1, 0.8]), 'truck'), (np.array([0.1, 7.9, 0.9]),
                                                              'pedestrian'),
                      (np.array([30.0, 30.0, 0.0]), 'car')]}  # near nothing: not counted
    accuracy = class_accuracy(rec)
    assert accuracy == {'car': [1, 2, 0], 'pedestrian': [1, 2, 1]}
    text = summary(rec, 1.0, final_diagnostics=True)
    assert 'labels vs simulator ground truth: 2/4 = 0.500' in text
    assert 'labels that name a class: 2/3 = 0.667 right; "unknown": 1/4 = 0.250' in text


def test_snapshot_shows_the_largest_objects_with_their_labels(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {0: 50, 1: 400, 2: 20, 3: 300, 4: 10, 5: 90, 6: 200, 7: 5}
    xyz, ids, labels = [rng.normal(size=(2000, 3)) * 20], [np.full(2000, -1)], {}
    for oid, n in sizes.items():
        center = np.array([3.0 * oid - 10, 5.0, 0.8])
        xyz.append(center + rng.normal(size=(n, 3)) * [1.5, 0.8, 0.5])
        ids.append(np.full(n, oid))
        labels[oid] = (center, 'unknown (car 0.41)' if oid == 3 else f'car 0.9{oid}')
    xyz = np.concatenate(xyz).astype(np.float32)
    ids = np.concatenate(ids).astype(np.int32)
    saliency = rng.random(len(xyz)).astype(np.float32)
    assert largest_objects(ids, 4) == [1, 3, 6, 5]
    png = tmp_path / 'snap.png'
    chosen = render_snapshot(xyz, saliency, ids, labels, png, title='t', closeups=6)
    assert chosen == [1, 3, 6, 5, 0, 2]
    data = png.read_bytes()
    assert data[:4] == b'\x89PNG' and len(data) > 50_000


def test_demo_records_a_bag_a_snapshot_and_a_summary(tmp_path):
    exe = str(Path(sys.executable).parent / 'pointcam_demo')
    # Counted from the first saliency cloud: some 30 scans at the simulator's 10 Hz.
    result = subprocess.run([exe, '--duration', '3', '--out', str(tmp_path), '--device',
                             'cpu'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert 'saliency clouds out (node -> recorder):' in out and 'end-to-end latency' in out
    assert 'labels vs simulator ground truth' in out and 'node reported (final' in out
    assert 'labels that name a class: ' in out and '"unknown": ' in out
    bags = [p for p in tmp_path.iterdir() if p.name.startswith('demo_') and p.is_dir()]
    assert len(bags) == 1 and list(bags[0].glob('*.mcap'))
    counts = {}
    with AnyReader(bags, default_typestore=typestore()) as reader:
        for connection in reader.connections:
            counts[connection.topic] = connection.msgcount
    assert counts.get('/points', 0) > 0 and counts.get('/pointcam/saliency', 0) > 0
    assert counts.get('/pointcam/labels', 0) > 0 and counts.get('/pointcam_sim/ground_truth', 0)
    # The summary counts exactly what went into the bag.
    assert f"saliency clouds out (node -> recorder): {counts['/pointcam/saliency']}," in out
    assert f"scans in (sim -> recorder): {counts['/points']}," in out
    png = (tmp_path / 'demo_snapshot.png').read_bytes()
    assert png[:4] == b'\x89PNG' and len(png) > 20_000


def test_demo_that_cannot_start_says_why_and_exits_1(tmp_path):
    exe = str(Path(sys.executable).parent / 'pointcam_demo')
    result = subprocess.run([exe, '--duration', '5', '--out', str(tmp_path), '--device',
                             'cuda:99'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'no saliency cloud within' in result.stderr
    assert 'pointcam_node exited with 1' in result.stderr
    assert 'Traceback' not in result.stderr and 'terminate called' not in result.stderr


def _default_sigint() -> None:
    # A test run started in the background (CI) inherits SIGINT ignored, and Python keeps
    # ignoring it; a terminal's Ctrl-C reaches a process whose SIGINT is the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_ends_the_demo_early_and_keeps_the_recording(tmp_path):
    """Ctrl-C while recording: children stopped, summary printed, bag kept, no traceback."""
    exe = str(Path(sys.executable).parent / 'pointcam_demo')
    process = subprocess.Popen([exe, '--duration', '600', '--out', str(tmp_path), '--device',
                                'cpu'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=_default_sigint, start_new_session=True)
    try:
        for line in process.stdout:  # until the recording starts
            if 'recording 600 s' in line:
                break
        time.sleep(1.0)  # after the first saliency cloud: the bag holds scans already
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # never leave the demo's simulator and node behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, out + err
    assert 'interrupted after' in err and 'Traceback' not in err, err
    assert 'saliency clouds out (node -> recorder):' in out
    bags = [p for p in tmp_path.iterdir() if p.name.startswith('demo_') and p.is_dir()]
    assert len(bags) == 1 and list(bags[0].glob('*.mcap'))


def test_snapshot_marks_are_unique_numbers_close_ups_first_then_nearest():
    """The top view carries short marks (the key beside it the texts), so none pile up."""
    labels = {7: (np.array([30.0, 0.0, 0.0]), 'car 0.9'), 3: (np.array([2.0, 1.0, 0.0]), 'tree'),
              5: (np.array([-10.0, 0.0, 0.0]), 'pole'), 9: (np.array([1.0, 0.0, 0.0]), 'car')}
    names = snapshot_numbers(labels, chosen=[7, 5])
    assert names == {7: '#1', 5: '#2', 9: '3', 3: '4'}
    assert len(set(names.values())) == len(labels)


def test_offline_demo_score_names_the_objects_that_hold_the_misses():
    script = Path(__file__).resolve().parents[1] / 'bench' / 'demo_labels.py'
    out = subprocess.run([sys.executable, str(script), '--seconds', '2', '--every', '5',
                          '--by-object', '3'], capture_output=True, text=True, timeout=300,
                         check=True).stdout
    lines = out.splitlines()
    right, total = (int(v) for v in lines[0].split('labels right ')[1].split(' =')[0].split('/'))
    header = next(i for i, line in enumerate(lines) if line.startswith('objects with the most'))
    listed, wrong = (int(v) for v in lines[header].split('(')[1].split(';')[0]
                     .replace('of the', '').split())
    assert wrong == total - right >= 0
    counts = [int(line.split(': ')[1].split(' wrong')[0]) for line in lines[header + 1:]]
    assert len(counts) <= 3 and sum(counts) == listed <= wrong
    assert (len(counts) > 0) == (wrong > 0)
    assert counts == sorted(counts, reverse=True)
    assert all(n <= 4 for n in counts)  # 2 s at 10 Hz, one scan in 5: 4 scored scans
    for line in lines[header + 1:]:  # only wrong labels are counted
        truth = line.split('(')[1].split(',')[0]
        assert line.split(' wrong, last ')[1].split(',')[0] != truth
