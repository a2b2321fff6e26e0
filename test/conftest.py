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
"""Shared fixtures: an isolated DDS domain and a colcon install space of this repo."""

import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns('.venv', '.git', 'build', 'install', 'log', '__pycache__',
                               '*.egg-info', '.pytest_cache', '.hypothesis', 'out')


def pytest_configure(config):
    """Keep DDS traffic on this machine, away from other test runs and workers; no .hypothesis/."""
    _hypothesis_home_in_a_temp_folder(config)
    _one_torch_thread()
    os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
    worker = os.environ.get('PYTEST_XDIST_WORKER', '')  # 'gw0', 'gw1'... under pytest -n
    if worker.startswith('gw') and worker[2:].isdigit():
        # Workers inherit the controller's domain: each takes its own, so the nodes of
        # two test files running at once never see each other (ids 0-232 are valid).
        os.environ['ROS_DOMAIN_ID'] = str((int(os.environ['ROS_DOMAIN_ID']) + 1
                                           + int(worker[2:])) % 233)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')
    # As the README recommends for multi-MB scans: without it Fast DDS loses most
    # best-effort samples larger than its 512 KB shared-memory segments.
    from pointcam_ros.ros.dds import use_large_data_profile
    use_large_data_profile(os.environ)


def _one_torch_thread():
    """
    Run torch on one CPU thread here and in every child (CLIs, nodes), as the node does.

    torch's default (one thread per core) spins for the other core, which the suite's
    own child processes (simulator, node, recorder, workers) or other jobs keep busy:
    on 2 cores beside another job, pointcam_eval in test_training took 23-40 s with
    two threads and 7-9 s with one. Tests of the thread settings set their counts
    explicitly; OMP_NUM_THREADS set by the caller is kept.
    """
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    torch = sys.modules.get('torch')  # already imported: it has read the variable
    if torch is not None and os.environ['OMP_NUM_THREADS'].isdigit():
        torch.set_num_threads(max(1, int(os.environ['OMP_NUM_THREADS'])))


def _hypothesis_home_in_a_temp_folder(config):
    """Keep hypothesis's example database and caches out of the repo (it writes ./.hypothesis)."""
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return
    if os.environ.get('HYPOTHESIS_STORAGE_DIRECTORY'):
        return  # the caller chose a place, e.g. to keep failing examples between runs
    folder = tempfile.mkdtemp(prefix='pointcam-hypothesis-')
    set_hypothesis_home_dir(folder)
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def randomized_model(config, seed: int = 0, dtype=None):
    """Build a PointNet with random weights *and* BatchNorm statistics, in eval mode."""
    import torch
    from pointcam_ros.model.pointnet import PointNetClassifier
    torch.manual_seed(seed)
    model = PointNetClassifier(config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_(1.0, 0.3)
            module.bias.data.normal_(0.1, 0.3)
    for tnet in (model.input_tnet, model.feature_tnet):
        if tnet is not None:
            tnet.out.weight.data.normal_(0, 0.02)
    return model.to(dtype or torch.float32).eval()


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory) -> str:
    """Untrained small checkpoint (7 simulator classes): enough for all but accuracy."""
    import torch
    from pointcam_ros.model.checkpoint import save_checkpoint
    from pointcam_ros.model.pointnet import PointNetClassifier, PointNetConfig
    from pointcam_ros.sim.simulator import CLASS_NAMES
    torch.manual_seed(0)
    model = PointNetClassifier(PointNetConfig(
        num_classes=len(CLASS_NAMES), mlp1=(16,), mlp2=(32, 64), head=(32, 16),
        tnet_conv=(16, 32, 64), tnet_fc=(32, 16))).eval()
    path = tmp_path_factory.mktemp('model') / 'tiny.pt'
    save_checkpoint(path, model, CLASS_NAMES, 64, 'center')
    return str(path)


@pytest.fixture(scope='session')
def colcon_install(tmp_path_factory) -> Path:
    """Run a real `colcon build` of a copy of this repo; return the install space."""
    workspace = tmp_path_factory.mktemp('ws')
    shutil.copytree(ROOT, workspace / 'src' / 'pointcam_ros', ignore=_SKIP)
    colcon = Path(sys.executable).parent / 'colcon'
    result = subprocess.run([str(colcon), 'build', '--event-handlers', 'console_direct-'],
                            cwd=workspace, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return workspace / 'install'


def run_in_install(install: Path, command: str, timeout: float = 120,
                   **kwargs) -> subprocess.CompletedProcess:
    """Run a shell command after `source install/setup.bash`, this venv first on PATH."""
    venv_bin = Path(sys.executable).parent
    return subprocess.run(['bash', '-c', f'export PATH={venv_bin}:$PATH && '
                           f'source {install}/setup.bash && {command}'],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=kwargs.pop('cwd', install), **kwargs)


def repeat_in_threads(calls: list[Callable[[], object]], repeats: int) -> list[list]:
    """
    Run each of ``calls`` ``repeats`` times, each in a thread of its own, all at once.

    Returns each call's results in order; a call that raised has fewer than
    ``repeats`` (the thread ends on its exception).
    """
    results: list[list] = [[] for _ in calls]

    def work(i: int) -> None:
        for _ in range(repeats):
            results[i].append(calls[i]())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
