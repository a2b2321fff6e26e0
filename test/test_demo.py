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

from pathlib import Path
import subprocess
import sys

from pointcam_ros.formats.bag_io import typestore
import pytest
from rosbags.highlevel import AnyReader

pytestmark = pytest.mark.ros


def test_demo_records_a_bag_a_snapshot_and_a_summary(tmp_path):
    exe = str(Path(sys.executable).parent / 'pointcam_demo')
    result = subprocess.run([exe, '--duration', '12', '--out', str(tmp_path), '--device',
                             'cpu'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert 'saliency clouds out:' in out and 'end-to-end latency' in out
    assert 'labels vs simulator ground truth' in out
    bags = [p for p in tmp_path.iterdir() if p.name.startswith('demo_') and p.is_dir()]
    assert len(bags) == 1 and list(bags[0].glob('*.mcap'))
    counts = {}
    with AnyReader(bags, default_typestore=typestore()) as reader:
        for connection in reader.connections:
            counts[connection.topic] = connection.msgcount
    assert counts.get('points', 0) > 0 and counts.get('pointcam/saliency', 0) > 0
    assert counts.get('pointcam/labels', 0) > 0 and counts.get('pointcam_sim/ground_truth', 0)
    png = (tmp_path / 'demo_snapshot.png').read_bytes()
    assert png[:4] == b'\x89PNG' and len(png) > 20_000
