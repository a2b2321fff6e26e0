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
pointcam_bag throughput on simulated HDL-64E scans, and its overhead over the pipeline.

Writes an MCAP bag of --scans HDL-64E scans (Velodyne layout) to a temporary
folder, runs explain_bag over it and prints scans/s and the share of time
spent outside explain_cloud and its encode (formats/scan_io.py: decode, ScenePipeline.process,
saliency cloud), which do what the node does per scan (bag reading, deserialisation,
message building, serialisation, writing).

    .venv/bin/python bench/bench_bag.py [--device cuda] [--scans 50]
"""

import argparse
from pathlib import Path
import tempfile

from machine import describe
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.bag_io import rosbags_cloud, typestore
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.sim.clouds import scan_to_cloud
from pointcam_ros.sim.simulator import random_scene, scan, SENSORS
from pointcam_ros.tools.bag_tool import explain_bag
from rosbags.rosbag2 import StoragePlugin, Writer


def main():
    """Build the bag, explain it, print the figures."""
    parser = argparse.ArgumentParser(description='pointcam_bag throughput')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--scans', type=int, default=50)
    parser.add_argument('--sensor', default='hdl64')
    args = parser.parse_args()
    store = typestore()
    t = store.types
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / 'input'
        with Writer(source, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            conn = writer.add_connection('/velodyne_points', 'sensor_msgs/msg/PointCloud2',
                                         typestore=store)
            for i in range(args.scans):
                cloud = scan_to_cloud(scan(random_scene(6_000 + i), SENSORS[args.sensor], i))
                header = t['std_msgs/msg/Header'](
                    stamp=t['builtin_interfaces/msg/Time'](sec=i, nanosec=0), frame_id='lidar')
                msg = rosbags_cloud(store, cloud, header)
                writer.write(conn, i * 100_000_000,
                             store.serialize_cdr(msg, 'sensor_msgs/msg/PointCloud2'))
        pipeline = ScenePipeline(PipelineConfig(device=args.device))
        summary = explain_bag([source], Path(tmp) / 'output', pipeline, progress=False)
    overhead = 1 - summary.pipeline_seconds / summary.total_seconds
    print(f'device: {describe(args.device)}')
    print(f'{args.sensor}: {summary.scans} scans in {summary.total_seconds:.1f} s = '
          f'{summary.scans / summary.total_seconds:.2f} scans/s; pipeline '
          f'{1e3 * summary.pipeline_seconds / summary.scans:.1f} ms/scan; overhead outside '
          f'the pipeline (bag read, deserialise, build, serialise, write) {100 * overhead:.1f} %')


if __name__ == '__main__':
    main()
