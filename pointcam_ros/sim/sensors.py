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


"""Beam geometry and noise of the spinning LiDARs the simulator imitates."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SensorPreset:
    """
    Beam geometry and measurement noise of a spinning LiDAR.

    ``vertical_deg`` (beams,) elevation of each beam, top to bottom as the
    organized cloud's rows; ``columns`` azimuth steps per revolution at
    ``rate_hz``; ``max_range`` in metres (for a white target; dark ones
    drop out sooner); ``range_noise`` 1-sigma range error (m, datasheet);
    ``divergence`` beam divergence (rad), which makes mixed pixels at edges.
    """

    name: str
    vertical_deg: tuple[float, ...]
    columns: int
    rate_hz: float
    max_range: float
    layout: str  # 'velodyne' or 'ouster' (see sensor_layouts)
    range_noise: float = 0.02
    divergence: float = 0.002

    @property
    def beams(self) -> int:
        """Return the number of lasers (rows of the organized cloud)."""
        return len(self.vertical_deg)


def _linspace(top: float, bottom: float, num: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(top, bottom, num))


# HDL-64E S2: upper block +2.0..-8.33 deg (1/3 deg), lower block -8.83..-24.33 (1/2 deg).
_HDL64 = _linspace(2.0, -8.33, 32) + _linspace(-8.83, -24.33, 32)

#: Presets by name. Range noise: VLP-16 ~3 cm, HDL-32E/64E ~2 cm, OS1 1-5 cm (3 cm here).
SENSORS: dict[str, SensorPreset] = {p.name: p for p in (
    SensorPreset('vlp16', _linspace(15.0, -15.0, 16), 1800, 10.0, 100.0, 'velodyne',
                 0.03, 0.003),
    SensorPreset('hdl32', _linspace(10.67, -30.67, 32), 2170, 10.0, 100.0, 'velodyne',
                 0.02, 0.002),
    SensorPreset('hdl64', _HDL64, 2083, 10.0, 120.0, 'velodyne', 0.02, 0.002),
    SensorPreset('os1_64', _linspace(22.5, -22.5, 64), 1024, 10.0, 120.0, 'ouster',
                 0.03, 0.003),
    SensorPreset('os1_128', _linspace(22.5, -22.5, 128), 2048, 10.0, 120.0, 'ouster',
                 0.03, 0.003),
)}
