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

"""bench/record_scans.py: the scans it packs come back unchanged; it overwrites only its own."""

import importlib.util
from pathlib import Path

import numpy as np
from pointcam_ros.formats.cloud_io import read_cloud
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
import pytest

_SPEC = importlib.util.spec_from_file_location(
    'record_scans', Path(__file__).resolve().parents[1] / 'bench' / 'record_scans.py')
record_scans = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(record_scans)


def test_recorded_scans_read_back_as_the_simulated_clouds(tmp_path):
    out = tmp_path / 'scans.npz'
    assert record_scans.main(['-o', str(out), '--sensors', 'vlp16', '--scans', '2',
                              '--street', '2']) == 0
    loaded = record_scans.load_scans(out)
    assert sorted(loaded) == ['hdl64_street', 'vlp16']
    rate, clouds = loaded['vlp16']
    assert rate == SENSORS['vlp16'].rate_hz and len(clouds) == 2
    expected = scan_to_cloud(scan(random_scene(5_001), SENSORS['vlp16'], 1))
    np.testing.assert_array_equal(read_cloud(clouds[1]).xyz, read_cloud(expected).xyz)
    street = scan_to_cloud(scan(random_scene(5_000, kind='street'), SENSORS['hdl64'], 0))
    np.testing.assert_array_equal(read_cloud(loaded['hdl64_street'][1][0]).xyz,
                                  read_cloud(street).xyz)
    # Its own file is replaced by a new recording.
    assert record_scans.main(['-o', str(out), '--sensors', 'vlp16', '--scans', '3',
                              '--street', '0']) == 0
    assert sorted(record_scans.load_scans(out)) == ['vlp16']


def test_a_file_it_did_not_write_is_left_alone(tmp_path):
    mine = tmp_path / 'mine.npz'
    np.savez(mine, points=np.arange(6.0))
    before = mine.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        record_scans.main(['-o', str(mine), '--sensors', 'vlp16', '--scans', '2'])
    assert exit_info.value.code == 2 and mine.read_bytes() == before
    text = tmp_path / 'notes.txt'
    text.write_text('keep me')
    with pytest.raises(SystemExit):
        record_scans.main(['-o', str(text), '--sensors', 'vlp16', '--scans', '2'])
    assert text.read_text() == 'keep me'
