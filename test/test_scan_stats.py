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

"""The node's ROS-free bookkeeping: counters, window, levels, bounded reasons."""

import json

import numpy as np
from pointcam_ros.common.scan_stats import (
    ERROR, MAX_REASON_KINDS, OK, reason_kind, ScanStats, TopicStats, WARN)
from pointcam_ros.formats.cloud_io import CloudFormatError
from pointcam_ros.perception.pipeline import ScanError
import pytest


def test_reject_reasons_are_counted_by_kind_never_by_text():
    """Random field names in 10,000 rejects make one key; any number of kinds stays bounded."""
    stats = TopicStats()
    rng = np.random.default_rng(0)
    for _ in range(10_000):
        name = ''.join(chr(c) for c in rng.integers(97, 123, 12))
        error = CloudFormatError(f"field '{name}' appears twice", kind='duplicate_field')
        stats.add_reason(reason_kind(error), str(error))
    assert stats.reasons == {'CloudFormatError: duplicate_field': 10_000}
    assert name in stats.last_reason
    stats.add_reason(reason_kind(ScanError('too big', 'too_many_points')), 'x' * 10_000)
    assert stats.reasons['ScanError: too_many_points'] == 1 and len(stats.last_reason) == 300
    for i in range(500):  # a worker error of a new exception class each time
        stats.add_reason(reason_kind(type(f'Error{i}', (RuntimeError,), {})('boom')), 'boom')
    assert len(stats.reasons) == MAX_REASON_KINDS + 1  # the rest under 'other'
    assert stats.reasons['other'] == 500 - (MAX_REASON_KINDS - 2)
    with pytest.raises(ValueError, match='unknown CloudFormatError kind'):
        CloudFormatError('text', kind='made_up')


def test_levels_follow_the_window_and_counters_stay_cumulative():
    stats = ScanStats(['points'], window=10.0, started=0.0)
    level, message, values = stats.status('points', 5.0)
    assert (level, values['seconds_since_last_scan']) == (OK, 'never')
    assert stats.status('points', 10.0)[:2] == (WARN, 'no scan received for 10 s')
    stats.received('points', 11.0, replaced=False)
    stats.count('points', 'processed', 11.1, latency_ms=50.0,
                stages={'decode': 1.0, 'pipeline': 45.0})
    level, message, values = stats.status('points', 12.0)
    assert (level, message) == (OK, '1 scans explained in the last 10 s')
    assert json.loads(values['stage_p50_ms']) == {'decode': 1.0, 'pipeline': 45.0}
    stats.count('points', 'rejected', 12.5, ScanError('bad', 'bad_shape'))
    assert stats.status('points', 13.0)[0] == WARN
    stats.count('points', 'error', 13.0, MemoryError('boom'))
    level, message, values = stats.status('points', 13.5)
    assert level == ERROR and values['last_reject_reason'] == 'MemoryError: boom'
    assert values['worker_errors'] == '1'
    # 11 s later the window holds nothing: no scan for 12.5 s is WARN again; counters stay.
    level, message, values = stats.status('points', 24.5)
    assert level == WARN and values['window_errors'] == '0' and values['errors'] == '1'
    assert values['processed'] == '1' and values['rejected'] == '1'
    stats.config_error = 'RuntimeError: no'
    assert stats.status('points', 25.0)[0] == ERROR
    with pytest.raises(ValueError, match='unknown outcome'):
        stats.count('points', 'lost', 25.0)


def test_memory_is_bounded_under_a_flood():
    """A million outcomes in a 10 s window keep at most 11 one-second buckets."""
    stats = ScanStats(['points'], window=10.0, started=0.0)
    for i in range(1_000_000):
        now = i * 1e-4  # 10 kHz for 100 s
        stats.received('points', now, replaced=True)
    topic = stats.topics['points']
    assert len(topic.buckets) <= 11 and len(topic.input_times) == 200
    counts = topic.window_counts(100.0, 10.0)
    assert counts['dropped'] == 100_000  # the last 10 whole seconds
