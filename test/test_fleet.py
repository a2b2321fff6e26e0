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

"""Many bags per call: local worker processes and a real local Ray cluster, with faults."""

import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import (
    is_pointcam_output, PARTIAL_MARKER, recorded_sources, source_fingerprint)
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.tools.bag_cli import main
from pointcam_ros.tools.bag_tool import explain_bag, UsageError
from pointcam_ros.tools.fleet import (
    explain_bags, FleetError, FleetOptions, LayoutError, LocalBackend, RayBackend,
    SUMMARY_NAME)
import pytest
from rosbags.rosbag2 import StoragePlugin
from test_bag_tool import _clouds, _read, _recording, _snapshot, _tree_digest, write_bag

QUIET = FleetOptions(progress=False)


@pytest.fixture(scope='module')
def config(tiny_model):
    # Fixed torch threads: CPU kernels sum in another order with another thread count,
    # which moves saliency values by ~1e-6 (bit-identical output needs the same count).
    return PipelineConfig(model_path=tiny_model, device='cpu', cpu_threads=1)


def _explain_serially(bags, out, config):
    """Explain ``bags`` one after the other in this process into ``out/<name>``."""
    import torch
    threads = torch.get_num_threads()
    try:
        pipeline = ScenePipeline(config)  # sets torch's (process-wide) thread count
        for bag in bags:
            explain_bag([bag], out / bag.name, pipeline, progress=False)
    finally:
        torch.set_num_threads(threads)


def _bag(path, scans, seed=0):
    clouds = _clouds(3)
    return write_bag(path, StoragePlugin.MCAP,
                     {'/velodyne_points': [(i * 10**8, clouds[(i + seed) % 3])
                                           for i in range(1, scans + 1)]})


@pytest.fixture(scope='module')
def drives(tmp_path_factory):
    """Write a folder of 4 small VLP-16 bags (and a file that is not a bag)."""
    folder = tmp_path_factory.mktemp('drives')
    for k in range(4):
        _bag(folder / f'drive{k}', 4 + k, seed=k)
    (folder / 'README.txt').write_text('not a bag')
    return folder


@pytest.fixture(scope='module')
def serial(drives, config, tmp_path_factory):
    """Explain every drive one after the other in this process: the reference."""
    out = tmp_path_factory.mktemp('serial')
    _explain_serially(sorted(drives.glob('drive*')), out, config)
    return out


@pytest.fixture(scope='module')
def ray_session(tmp_path_factory):
    """Start one local Ray cluster for the whole module (start-up costs seconds)."""
    ray = pytest.importorskip('ray')
    # Ray's sessions, logs and sockets go to a test temp folder, not /tmp/ray, which it
    # never removes. Its socket paths (folder + ~60 characters) must fit in 107 bytes.
    folder = tmp_path_factory.mktemp('ray')
    if len(str(folder)) > 40:
        folder = Path(tempfile.mkdtemp(prefix='ray'))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _temp_dir=str(folder))
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=['jobs2', 'ray'])
def backend(request):
    if request.param == 'ray':
        request.getfixturevalue('ray_session')
        return RayBackend(workers=2)
    return LocalBackend(jobs=2)


def _messages(path):
    """Return {topic: [(stamp, CDR bytes)]} of a bag."""
    return {topic: [(t, bytes(raw)) for t, _, raw in items]
            for topic, items in _read(path).items()}


def _summary(out):
    return json.loads((out / SUMMARY_NAME).read_text())


def test_outputs_equal_the_serial_run_message_for_message(tmp_path, drives, serial, config,
                                                          backend):
    inputs_before = _tree_digest(drives)
    summary = explain_bags([drives], tmp_path / 'out', config, QUIET, backend)
    assert summary.count('done') == 4 and summary.scans == 4 + 5 + 6 + 7
    for k in range(4):
        assert _messages(tmp_path / 'out' / f'drive{k}') == \
            _messages(serial / f'drive{k}'), f'drive{k} differs from the serial run'
        assert is_pointcam_output(tmp_path / 'out' / f'drive{k}')
    assert _tree_digest(drives) == inputs_before  # inputs untouched
    rows = _summary(tmp_path / 'out')['bags']
    assert [Path(r['source']).name for r in rows] == [f'drive{k}' for k in range(4)]
    assert [r['scans'] for r in rows] == [4, 5, 6, 7]
    assert all(r['status'] == 'done' and r['attempts'] == 1 for r in rows)
    # Two workers shared the four bags: each loaded the model once, not once per bag.
    assert len({r['worker'] for r in rows}) <= 2
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == \
        ['drive0', 'drive1', 'drive2', 'drive3', SUMMARY_NAME]


def test_a_corrupt_bag_is_reported_and_the_others_complete(tmp_path, drives, config,
                                                           backend):
    good = _bag(tmp_path / 'good', 3)
    data = next(good.glob('*.mcap')).read_bytes()
    cut = tmp_path / 'cut'
    cut.mkdir()
    (cut / 'metadata.yaml').write_text((good / 'metadata.yaml').read_text())
    (cut / next(good.glob('*.mcap')).name).write_bytes(data[:len(data) // 2])
    inputs = [drives / 'drive0', cut, tmp_path / 'missing', drives / 'README.txt', good]
    summary = explain_bags(inputs, tmp_path / 'out', config, QUIET, backend)
    rows = {Path(r['source']).name: r for r in _summary(tmp_path / 'out')['bags']}
    assert summary.count('done') == 2 and summary.count('failed') == 3
    assert rows['drive0']['status'] == rows['good']['status'] == 'done'
    assert rows['cut']['status'] == 'failed' and 'truncated or corrupt' in rows['cut']['error']
    assert 'does not exist' in rows['missing']['error']
    assert 'is not a rosbag' in rows['README.txt']['error']
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == \
        ['drive0', 'good', SUMMARY_NAME]  # nothing for the failed bags, no partials


def _kill_workers(out, plan, stop):
    """Kill the worker writing ``out/<name>`` on its first ``plan[name]`` attempts."""
    seen = set()
    while not stop.is_set():
        for partial in out.glob('.*.partial-*'):
            name = partial.name[1:].split('.partial-')[0]
            try:
                pid = json.loads((partial / PARTIAL_MARKER).read_text())['pid']
            except (OSError, ValueError, KeyError):
                continue  # being written
            if plan.get(name, 0) > 0 and pid not in seen:
                seen.add(pid)
                plan[name] -= 1
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def test_a_killed_worker_has_its_bag_retried_once(tmp_path, drives, serial, config,
                                                  backend):
    unlucky = _bag(tmp_path / 'unlucky', 40)  # killed once: retried and done
    doomed = _bag(tmp_path / 'doomed', 40)  # killed on both attempts: failed
    (tmp_path / 'reference').mkdir()
    _explain_serially([unlucky], tmp_path / 'reference', config)
    out = tmp_path / 'out'
    out.mkdir()
    stop = threading.Event()
    killer = threading.Thread(target=_kill_workers,
                              args=(out, {'unlucky': 1, 'doomed': 2}, stop))
    killer.start()
    try:
        summary = explain_bags([unlucky, doomed, drives / 'drive1'], out, config, QUIET,
                               backend)
    finally:
        stop.set()
        killer.join()
    rows = {Path(r['source']).name: r for r in _summary(out)['bags']}
    assert rows['unlucky']['status'] == 'done' and rows['unlucky']['attempts'] == 2
    assert _messages(out / 'unlucky') == _messages(tmp_path / 'reference' / 'unlucky')
    assert rows['doomed']['status'] == 'failed' and rows['doomed']['attempts'] == 2
    assert 'died' in rows['doomed']['error'] or 'killed' in rows['doomed']['error']
    assert rows['drive1']['status'] == 'done'
    assert _messages(out / 'drive1') == _messages(serial / 'drive1')
    assert summary.count('failed') == 1
    assert not (out / 'doomed').exists()
    assert not list(out.glob('.*'))  # no partial output left


def test_resume_does_no_work_and_reexplaining_is_byte_identical(tmp_path, drives, config,
                                                                backend):
    inputs = [drives / 'drive0', drives / 'drive2']
    explain_bags(inputs, tmp_path / 'out', config, QUIET, backend)
    first = {k: _messages(tmp_path / 'out' / k) for k in ('drive0', 'drive2')}
    files = _tree_digest(tmp_path / 'out')
    files.pop(SUMMARY_NAME)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / 'out').rglob('*.mcap')}
    again = explain_bags(inputs, tmp_path / 'out', config,
                         FleetOptions(resume=True, progress=False), backend)
    assert again.count('skipped') == 2 and again.workers == 0 and again.scans == 0
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    # Without --resume (or --overwrite) existing outputs stop the run before any work.
    with pytest.raises(FileExistsError, match='--resume'):
        explain_bags(inputs, tmp_path / 'out', config, QUIET, backend)
    redo = explain_bags(inputs, tmp_path / 'out', config,
                        FleetOptions(overwrite=True, progress=False), backend)
    assert redo.count('done') == 2
    assert {k: _messages(tmp_path / 'out' / k) for k in first} == first
    after = _tree_digest(tmp_path / 'out')
    after.pop(SUMMARY_NAME)
    assert after.keys() == files.keys()


def test_layout_errors_stop_the_run_before_any_work(tmp_path, drives, config):
    other = tmp_path / 'other' / 'drive0'
    other.parent.mkdir()
    _bag(other, 1)
    with pytest.raises(FleetError, match='would both be written to'):
        explain_bags([drives / 'drive0', other], tmp_path / 'out', config, QUIET)
    assert not (tmp_path / 'out').exists()
    with pytest.raises(ValueError, match='input bag'):
        explain_bags([drives], drives, config, QUIET)  # outputs onto the inputs
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / SUMMARY_NAME).write_text('{"mine": true}')
    with pytest.raises(FleetError, match='not written by pointcam_bag'):
        explain_bags([drives / 'drive0'], tmp_path / 'mine', config, QUIET)
    assert (tmp_path / 'mine' / SUMMARY_NAME).read_text() == '{"mine": true}'
    assert sorted(p.name for p in (tmp_path / 'mine').iterdir()) == [SUMMARY_NAME]


def _pointcam_bag(*args, env=None, timeout=300):
    code = 'import sys; from pointcam_ros.tools.bag_cli import main; sys.exit(main())'
    return subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_command_line_several_bags_jobs_and_resume(tmp_path, drives, serial, tiny_model):
    common = ['--model', tiny_model, '--device', 'cpu', '--cpu-threads', '1', '--quiet']
    result = _pointcam_bag(drives / 'drive0', drives / 'drive3', drives / 'README.txt',
                           '-o', tmp_path / 'out', '--jobs', '2', *common)
    assert result.returncode == 1, result.stderr  # one input is not a bag
    assert '3 bags: 2 done, 0 skipped, 1 failed' in result.stdout
    assert 'README.txt is not a rosbag' in result.stdout
    assert 'Traceback' not in result.stderr
    assert _messages(tmp_path / 'out' / 'drive3') == _messages(serial / 'drive3')
    resumed = _pointcam_bag(drives / 'drive0', drives / 'drive3', '-o', tmp_path / 'out',
                            '--resume', *common)
    assert resumed.returncode == 0, resumed.stderr
    assert '2 bags: 0 done, 2 skipped, 0 failed' in resumed.stdout
    each = _pointcam_bag(drives / 'drive1', '-o', tmp_path / 'each', '--each', *common)
    assert each.returncode == 0, each.stderr
    assert sorted(p.name for p in (tmp_path / 'each').iterdir()) == ['drive1', SUMMARY_NAME]
    single = _pointcam_bag(drives / 'drive1', '-o', tmp_path / 'single', '--jobs', '2',
                           *common)
    assert single.returncode == 2 and 'give several bags, a folder of bags, or --each' \
        in single.stderr
    assert not (tmp_path / 'single').exists()


def test_without_ray_the_error_says_how_to_install_it(tmp_path, drives, tiny_model):
    code = ('import sys\n'
            'class Block:\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            "        if name.split('.')[0] == 'ray':\n"
            "            raise ImportError('no ray here')\n"
            'sys.meta_path.insert(0, Block())\n'
            'from pointcam_ros.tools.bag_cli import main\n'
            'sys.exit(main(sys.argv[1:]))\n')
    result = subprocess.run([sys.executable, '-c', code, str(drives), '-o',
                             str(tmp_path / 'out'), '--model', tiny_model, '--quiet', '--ray'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "pip install 'ray[default]'" in result.stderr
    assert "pip install 'pointcam_ros[fleet]'" in result.stderr
    assert 'Traceback' not in result.stderr


def test_interrupted_run_keeps_finished_bags_and_leaves_no_partial(tmp_path, tiny_model):
    bags = [_bag(tmp_path / 'in' / f'long{k}', 300) for k in range(2)]
    out = tmp_path / 'out'
    code = 'import sys; from pointcam_ros.tools.bag_cli import main; sys.exit(main())'
    proc = subprocess.Popen([sys.executable, '-c', code, *map(str, bags), '-o', str(out),
                             '--model', tiny_model, '--device', 'cpu', '--jobs', '2',
                             '--quiet'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob('.*.partial-*/*/*.mcap'))) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, 'the workers never started writing'
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert 'Traceback' not in err and '--resume' in err
    assert sorted(p.name for p in out.iterdir()) == [SUMMARY_NAME]  # no partial, no bag
    assert {r['status'] for r in _summary(out)['bags']} == {'interrupted'}


def test_a_worker_that_cannot_load_the_model_stops_the_run(tmp_path, drives, config):
    bad = config.replace(model_path=str(tmp_path / 'missing.pt'))
    with pytest.raises(FleetError, match='cannot build the pipeline'):
        explain_bags([drives / 'drive0', drives / 'drive1'], tmp_path / 'out', bad, QUIET,
                     LocalBackend(2))
    assert {r['status'] for r in _summary(tmp_path / 'out')['bags']} == {'not run'}
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [SUMMARY_NAME]


def test_ray_gpus_per_task_means_cuda_and_needs_gpus(ray_session, config):
    gpu = RayBackend(gpus_per_task=0.5)
    assert gpu.prepare(config.replace(device='auto'), 2).device == 'cuda'
    with pytest.raises(FleetError, match='drop one'):
        gpu.prepare(config, 2)  # device cpu
    if not ray_session.cluster_resources().get('GPU'):
        with pytest.raises(FleetError, match='fewer than --gpus-per-task'):
            gpu.workers_for(4)
    cpu = RayBackend()
    assert cpu.prepare(config.replace(device='auto', cpu_threads=0), 2).device == 'cpu'
    assert cpu.prepare(config.replace(cpu_threads=0), 2).cpu_threads == 1
    assert cpu.workers_for(4) == 2 and cpu.workers_for(1) == 1  # num_cpus=2, 1 CPU per task


def test_a_folder_of_bags_lists_its_bags_only(tmp_path, drives, config):
    from pointcam_ros.formats.bag_io import bags_in, is_bag
    from pointcam_ros.tools.fleet import find_bags
    folder = tmp_path / 'mixed'
    folder.mkdir()
    _bag(folder / 'b_drive', 1)
    _bag(folder / '.hidden', 1)
    (folder / 'a_old.bag').write_bytes(b'#ROSBAG V2.0\n')  # a ROS 1 bag, by its name
    (folder / 'notes.txt').write_text('x')
    (folder / 'no_metadata').mkdir()
    explain_bags([drives / 'drive0'], folder / 'explained_once', config, QUIET)
    (folder / 'explained_once' / 'drive0').rename(folder / 'c_explained')  # a pointcam output
    _recording(folder / 'd_recording')  # the demo's: marked, but a recording, so an input
    assert [p.name for p in bags_in(folder)] == ['a_old.bag', 'b_drive', 'd_recording']
    assert is_bag(folder / 'c_explained') and bags_in(folder / 'b_drive') == []
    assert find_bags([folder, drives / 'drive1', tmp_path / 'missing']) == [
        folder / 'a_old.bag', folder / 'b_drive', folder / 'd_recording', drives / 'drive1',
        tmp_path / 'missing']


# --- issue #22: the data-loss guards of a fleet run ------------------------------------------


def test_resume_redoes_an_output_explained_from_another_input(tmp_path, config):
    """#22.4: ``day2/run1`` is not skipped because ``day1/run1`` was explained before."""
    day1 = _bag(tmp_path / 'day1' / 'run1', 2, seed=0)
    day2 = _bag(tmp_path / 'day2' / 'run1', 3, seed=1)
    out = tmp_path / 'explained'
    resume = FleetOptions(resume=True, progress=False)
    out.mkdir()
    _recording(out / 'run1')  # a recording is neither skipped nor replaced (#22.1)
    before = _snapshot(tmp_path)
    with pytest.raises(FileExistsError, match='is a recording'):
        explain_bags([day1], out, config, FleetOptions(resume=True, overwrite=True,
                                                       progress=False))
    assert _snapshot(tmp_path) == before
    (out / 'run1' / 'metadata.yaml').unlink()
    next((out / 'run1').glob('*.mcap')).unlink()
    (out / 'run1').rmdir()
    assert explain_bags([day1], out, config, QUIET).count('done') == 1
    redone = explain_bags([tmp_path / 'day2'], out, config, resume)
    assert redone.count('done') == 1 and redone.count('skipped') == 0
    row = _summary(out)['bags'][0]
    assert row['status'] == 'done' and 'redone' in row['note'] and 'day1' in row['note']
    assert _summary(out)['bags_redone'] == 1 and 'redone' in redone.describe()
    assert len(_read(out / 'run1')['/pointcam/saliency']) == 3  # day2's three scans
    assert recorded_sources(out / 'run1') == source_fingerprint([day2])
    assert explain_bags([tmp_path / 'day2'], out, config, resume).count('skipped') == 1
    # The same path, but the recording changed since: redone too.
    metadata = day2 / 'metadata.yaml'
    os.utime(metadata, ns=(metadata.stat().st_atime_ns, metadata.stat().st_mtime_ns + 10**9))
    changed = explain_bags([day2], out, config, resume)
    assert changed.count('done') == 1 and 'input changed' in changed.bags[0].note


def test_duplicate_inputs_and_reserved_names_stop_the_run_before_any_work(
        tmp_path, config, tiny_model, capsys):
    """#22.6: a bag reached twice, or named like a file of the run, is a usage error."""
    drive = _bag(tmp_path / 'a' / 'drive', 1)
    (tmp_path / 'alias').symlink_to(drive)
    named = _bag(tmp_path / 'b' / SUMMARY_NAME, 1)
    hidden = _bag(tmp_path / 'c' / '.hidden', 1)
    out = tmp_path / 'out'
    before = _snapshot(tmp_path)
    for inputs, message in [
            ([tmp_path / 'a', drive], 'given twice'),
            ([drive, tmp_path / 'alias'], 'given twice'),
            ([named, drive], 'summary'),
            ([hidden, drive], 'reserved for temporary files')]:
        with pytest.raises(LayoutError, match=message):
            explain_bags(inputs, out, config, QUIET)
        assert main([*map(str, inputs), '-o', str(out), '--model', tiny_model, '--device',
                     'cpu', '--quiet']) == 2
        assert 'usage:' in capsys.readouterr().err
        assert _snapshot(tmp_path) == before  # no output folder, nothing explained
    # Clashing topics (#22.7) are found before any work too.
    for options, message in [
            (FleetOptions(topics=('/lidar/front', '/lidar_front'), progress=False),
             'would both publish'),
            (FleetOptions(topics=('/pointcam/saliency',), copy_inputs=True, progress=False),
             '--copy-inputs would copy')]:
        with pytest.raises(UsageError, match=message):
            explain_bags([drive], out, config, options)
        assert _snapshot(tmp_path) == before


def test_jobs_below_one_is_a_usage_error(tmp_path, capsys):
    for jobs in ('0', '-2', 'two'):
        with pytest.raises(SystemExit) as stopped:
            main([str(tmp_path / 'a'), str(tmp_path / 'b'), '-o', str(tmp_path / 'out'),
                  '--jobs', jobs])
        assert stopped.value.code == 2
        assert 'argument --jobs: must be' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
