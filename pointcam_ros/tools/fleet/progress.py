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


"""Progress bars of a fleet run: one for the bags, one per running bag (its scans)."""

from pointcam_ros.tools.fleet.plan import BagResult
from tqdm import tqdm


class ProgressDisplay:
    """An overall bar (bags) and one bar per running bag (scans)."""

    def __init__(self, bags: int, enabled: bool):
        self.enabled = enabled
        self.overall = tqdm(total=bags, unit='bag', desc='bags', position=0, disable=not enabled)
        self.bars: dict[int, tqdm] = {}
        self.scans = 0

    def progress(self, index: int, name: str, slot: int, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(index)
        if bar is None:
            bar = self.bars[index] = tqdm(total=total, unit='scan', desc=name,
                                          position=slot + 1, leave=False)
        bar.update(done - bar.n)

    def finished(self, index: int, result: BagResult, failed: int) -> None:
        bar = self.bars.pop(index, None)
        if bar is not None:
            bar.close()
        self.scans += result.scans
        self.overall.set_postfix(scans=self.scans, failed=failed, refresh=False)
        self.overall.update(1)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.overall.close()
