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
Record simulated scans once, for benchmarks on machines without open3d.

The lent GPU machine has torch, numpy and scipy but no open3d, so it cannot
run the simulator. This script (run here, where open3d is installed) packs
simulated scans in their sensor's driver layout, exactly as
``pointcam_ros.sim.clouds.scan_to_cloud`` does, and stores the PointCloud2
bodies in one compressed ``.npz``; :func:`load_scans` (numpy and
pointcam_ros.formats only) gives them back as ``PackedCloud`` objects.
bench_pipeline.py and bench_e2e.py take the file with ``--scans-file``.
An existing ``--output`` is replaced only when it is a scans file of this
script; anything else there is left as it is and the run is refused.

    .venv/bin/python bench/record_scans.py [-o bench/data/scans.npz]
        [--sensors hdl64 os1_128] [--scans 3 2] [--street 2]

Layout of the file: ``meta`` is a JSON string (format version, and per
entry: sensor, scene kind, rate_hz, height, width, point_step, row_step,
is_bigendian, is_dense, fields, scene seeds); ``<entry>_<i>`` is scan i's
data as uint8. Entries are named for their sensor (open scenes), plus
``hdl64_street`` for the street scenes. Scene seeds are 5000 + i, the
seeds bench_pipeline.py uses when it simulates. bench/data/ is ignored by
git. The default (3 HDL-64E open + 2 HDL-64E street + 2 OS1-128 scans,
about 16.6 MiB) leaves room for the ROS wheels (about 44 MiB) and the
working tree (about 3 MiB) within the 64 MiB that one call to the lent GPU
machine may carry.
"""

import argparse
import json
from pathlib import Path
from typing import Sequence
import zipfile

import numpy as np
from pointcam_ros.common.atomic import atomic_path
from pointcam_ros.formats.cloud_io import FieldSpec, PackedCloud

FORMAT = 'pointcam-scans-1'
DEFAULT_PATH = Path(__file__).resolve().parent / 'data' / 'scans.npz'


def record(path: Path, sensors: Sequence[str], counts: Sequence[int],
           first_seed: int = 5_000, street: int = 0) -> dict:
    """
    Simulate ``counts[k]`` open scenes of ``sensors[k]`` and write them to ``path``.

    With ``street`` > 0, also that many HDL-64E street scenes, stored as the
    entry ``hdl64_street``. Return the file's meta.
    """
    from pointcam_ros.sim.clouds import scan_to_cloud  # needs open3d
    from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
    arrays = {}
    meta = {'format': FORMAT, 'sensors': {}}
    entries = [(name, name, 'open', count) for name, count in zip(sensors, counts)]
    if street > 0:
        entries.append(('hdl64_street', 'hdl64', 'street', street))
    for entry, name, kind, count in entries:
        sensor = SENSORS[name]
        seeds = [first_seed + i for i in range(count)]
        for i, seed in enumerate(seeds):
            cloud = scan_to_cloud(scan(random_scene(seed, kind=kind), sensor, i))
            arrays[f'{entry}_{i}'] = np.frombuffer(cloud.data, np.uint8)
        meta['sensors'][entry] = {
            'sensor': name, 'kind': kind,
            'rate_hz': sensor.rate_hz, 'height': cloud.height, 'width': cloud.width,
            'point_step': cloud.point_step, 'row_step': cloud.row_step,
            'is_bigendian': bool(cloud.is_bigendian), 'is_dense': bool(cloud.is_dense),
            'fields': [list(f) for f in cloud.fields], 'seeds': seeds}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as out:
            np.savez_compressed(out, meta=np.array(json.dumps(meta)), **arrays)
    return meta


def load_scans(path: Path) -> dict[str, tuple[float, list[PackedCloud]]]:
    """Read a file of :func:`record`: sensor name -> (rate in Hz, its packed clouds)."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data['meta']))
        if meta.get('format') != FORMAT:
            raise ValueError(f'{path} is not a {FORMAT} file: record it with '
                             'bench/record_scans.py')
        out = {}
        for name, info in meta['sensors'].items():
            clouds = [PackedCloud(
                height=info['height'], width=info['width'],
                fields=[FieldSpec(*f) for f in info['fields']],
                is_bigendian=info['is_bigendian'], point_step=info['point_step'],
                row_step=info['row_step'], data=data[f'{name}_{i}'].tobytes(),
                is_dense=info['is_dense']) for i in range(len(info['seeds']))]
            out[name] = (float(info['rate_hz']), clouds)
    return out


def is_scans_file(path: Path) -> bool:
    """Return whether ``path`` is a file this script wrote (its ``meta`` names FORMAT)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data['meta'])).get('format') == FORMAT
    except (OSError, ValueError, KeyError, AttributeError, zipfile.BadZipFile):
        return False


def main(argv=None) -> int:
    """Record the scans and print what was written."""
    parser = argparse.ArgumentParser(description='record simulated scans to an .npz')
    parser.add_argument('-o', '--output', type=Path, default=DEFAULT_PATH)
    parser.add_argument('--sensors', nargs='+', default=['hdl64', 'os1_128'])
    parser.add_argument('--scans', type=int, nargs='+', default=[3, 2],
                        help='scans per sensor (one number for all, or one per sensor)')
    parser.add_argument('--street', type=int, default=2,
                        help='HDL-64E street scenes, entry hdl64_street (default: %(default)s)')
    args = parser.parse_args(argv)
    counts = args.scans * len(args.sensors) if len(args.scans) == 1 else args.scans
    if len(counts) != len(args.sensors) or min(counts) < 2:
        parser.error('give one --scans count >= 2, or one per sensor')
    if args.street == 1 or args.street < 0:
        parser.error('give --street 0, or at least 2 (the benches skip the first scan)')
    if args.output.exists() and not is_scans_file(args.output):
        parser.error(f'{args.output} exists and is not a scans file of this script: '
                     'it is left as it is; choose another --output')
    meta = record(args.output, args.sensors, counts, street=args.street)
    size = args.output.stat().st_size / 2 ** 20
    for name, info in meta['sensors'].items():
        print(f"{name} ({info['kind']}): {len(info['seeds'])} scans of "
              f"{info['height']} x {info['width']} points, {info['point_step']} bytes each")
    print(f'wrote {args.output} ({size:.1f} MiB)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
