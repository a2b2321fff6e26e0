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
"Newest item wins" mailbox between a producer (a subscription callback) and a worker thread.

Each key (an input topic) holds at most one item: a newer one replaces an
older one the worker has not taken yet, and the replaced item is counted as
dropped. The worker takes keys in the order they first got an item since the
last take (round-robin over topics). ROS-free, so it is unit-tested without DDS.
"""

from collections import OrderedDict
import threading
import time
from typing import Generic, Hashable, Optional, TypeVar

T = TypeVar('T')


class Mailbox(Generic[T]):
    """Thread-safe one-slot-per-key mailbox; see the module docstring."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slots: 'OrderedDict[Hashable, T]' = OrderedDict()
        self._dropped: dict[Hashable, int] = {}
        self._closed = False

    def put(self, key: Hashable, item: T) -> bool:
        """
        Store ``item`` as the newest for ``key`` and wake a waiting taker.

        Returns True when it replaced an item not yet taken (that one counts
        as dropped). Items put after :meth:`close` are dropped too.
        """
        with self._cond:
            replaced = key in self._slots or self._closed
            if replaced:
                self._dropped[key] = self._dropped.get(key, 0) + 1
            if not self._closed:
                self._slots[key] = item
                self._cond.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[tuple[Hashable, T]]:
        """
        Remove and return the oldest-waiting ``(key, item)``; block until one arrives.

        Returns None when the mailbox is closed or ``timeout`` seconds passed
        (None = wait forever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._slots and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if self._closed:
                return None
            return self._slots.popitem(last=False)

    def dropped(self, key: Hashable) -> int:
        """Count the items of ``key`` replaced before they were taken."""
        with self._cond:
            return self._dropped.get(key, 0)

    def pending(self) -> int:
        """Count the keys holding an item."""
        with self._cond:
            return len(self._slots)

    def close(self) -> None:
        """Wake every waiting taker; later takes return None at once."""
        with self._cond:
            self._closed = True
            self._slots.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Tell whether :meth:`close` was called."""
        with self._cond:
            return self._closed
