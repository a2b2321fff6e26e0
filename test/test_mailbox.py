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
"""The newest-scan-wins mailbox between the node's callbacks and its worker."""

import threading
import time

from pointcam_ros.common.scan_mailbox import Mailbox


def test_newer_item_replaces_older_and_counts_as_dropped():
    box = Mailbox()
    assert box.put('a', 1) is False
    assert box.put('a', 2) is True
    assert box.put('a', 3) is True
    assert box.dropped('a') == 2 and box.dropped('b') == 0
    assert box.take(timeout=0) == ('a', 3)
    assert box.take(timeout=0) is None  # the replaced items are gone
    assert box.put('a', 4) is False  # a taken slot is free again: not a drop
    assert box.dropped('a') == 2


def test_keys_are_taken_in_arrival_order():
    box = Mailbox()
    box.put('front', 1)
    box.put('rear', 2)
    box.put('front', 3)  # replaces in place: front keeps its turn
    assert box.pending() == 2
    assert [box.take(timeout=0), box.take(timeout=0)] == [('front', 3), ('rear', 2)]


def test_take_waits_for_a_put_from_another_thread():
    box = Mailbox()
    got = []
    taker = threading.Thread(target=lambda: got.append(box.take(timeout=10)))
    taker.start()
    time.sleep(0.05)
    assert got == [] and taker.is_alive()  # still waiting
    box.put('a', 'scan')
    taker.join(timeout=5)
    assert got == [('a', 'scan')]


def test_close_wakes_a_waiting_taker():
    box = Mailbox()
    got = []
    taker = threading.Thread(target=lambda: got.append(box.take()))  # no timeout
    taker.start()
    time.sleep(0.05)
    assert taker.is_alive()
    box.close()
    taker.join(timeout=5)
    assert not taker.is_alive() and got == [None]
    assert box.closed
    assert box.put('a', 1) is True and box.take(timeout=0) is None  # dropped after close


def test_take_times_out_when_empty():
    box = Mailbox()
    started = time.monotonic()
    assert box.take(timeout=0.1) is None
    assert time.monotonic() - started >= 0.09
