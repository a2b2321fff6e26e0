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
Road-user labels counted by the size of the cluster they are shown on.

``bench/real_check.py`` (real scans) and ``bench/pipeline_quality.py`` (the
simulator) count, per band of cluster points, the road-user labels that are
right, those that name the wrong road-user class, and the false alarms
(labels on clusters that are not road users) of all such clusters
(``not_road_users``): how far a label is worth trusting at each size. The
bands start at ``min_label_points``' default (30, also the smallest road
user the issue's figures count) and at 60.
"""

#: Points at which a new band starts: under 30, 30-59, 60 and more.
SIZE_BANDS = (30, 60)
#: What each band counts.
COUNTS = ('right', 'wrong_class', 'false_alarms', 'not_road_users')


def size_band(points: int) -> str:
    """Return the name of the band of :data:`SIZE_BANDS` a cluster of ``points`` falls in."""
    low = 0
    for edge in SIZE_BANDS:
        if points < edge:
            return f'<{edge}' if low == 0 else f'{low}-{edge - 1}'
        low = edge
    return f'{low}+'


def empty_bands() -> dict[str, dict[str, int]]:
    """``{band: {count: 0}}`` for every band, smallest first, and every count of :data:`COUNTS`."""
    names = [size_band(edge - 1) for edge in SIZE_BANDS] + [size_band(SIZE_BANDS[-1])]
    return {name: dict.fromkeys(COUNTS, 0) for name in names}


def bands_line(bands: dict[str, dict[str, int]]) -> str:
    """One line of :func:`empty_bands`-shaped counts: ``<30: 2 right, 0 wrong class, ...``."""
    return '; '.join(f"{band}: {n['right']} right, {n['wrong_class']} wrong class, "
                     f"{n['false_alarms']} false alarms of {n['not_road_users']} clusters"
                     for band, n in bands.items())
