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
Time PointCloud2 decoding and saliency-cloud encoding on a 262,144-point scan.

The input is an Ouster OS1-128 2048x10 scan in the driver's 48-byte layout
(organized 128 x 2048, 1/8 of the points NaN). Prints the median of
repeated runs for pointcam_ros and for pointcloud2.read_points.

    .venv/bin/python bench/bench_cloud_io.py
"""

import argparse
import time

from machine import describe
import numpy as np
from pointcam_ros.formats._pc2_backend import BACKEND_NAME, read_points
from pointcam_ros.formats.cloud_io import NO_OBJECT, pack_cloud, read_cloud, saliency_cloud
from pointcam_ros.formats.sensor_layouts import OUSTER_ORIGINAL


def _median_ms(func, repeats):
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main():
    """Run the benchmark and print one line per operation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--repeats', type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    height, width = 128, 2048
    xyz = (rng.normal(size=(height * width, 3)) * 20).astype(np.float32)
    xyz[::8] = np.nan
    cloud = pack_cloud({'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2],
                        'intensity': rng.random(height * width).astype(np.float32)},
                       OUSTER_ORIGINAL.fields, OUSTER_ORIGINAL.point_step, height=height)
    points = read_cloud(cloud)
    num = points.xyz.shape[0]
    saliency = rng.random(num).astype(np.float32)
    labels = np.full(num, NO_OBJECT, np.int32)

    print(f'machine: {describe()}, numpy {np.__version__}')
    print(f'cloud: {height}x{width} = {height * width} points, point_step '
          f'{cloud.point_step}, {num} valid')
    rows = [
        ('pointcam read_cloud (xyz, NaN skipped, index map)',
         lambda: read_cloud(cloud)),
        (f'{BACKEND_NAME}.read_points(x,y,z, skip_nans=True)',
         lambda: read_points(cloud, field_names=['x', 'y', 'z'], skip_nans=True)),
        (f'{BACKEND_NAME}.read_points + stack to (N,3) float32',
         lambda: _stack(read_points(cloud, field_names=['x', 'y', 'z'], skip_nans=True))),
        ('pointcam saliency_cloud (262k-point output)',
         lambda: saliency_cloud(points.xyz, saliency, labels, labels)),
    ]
    for name, func in rows:
        print(f'{name:<58s} {_median_ms(func, args.repeats):7.2f} ms')


def _stack(structured):
    return np.stack([structured['x'], structured['y'], structured['z']], axis=1)


if __name__ == '__main__':
    main()
