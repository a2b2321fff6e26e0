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
Largest PointCloud2 that Fast DDS carries between two processes, per QoS.

A publisher process sends clouds of 1 to 64 MB (``--sizes``) on three
topics, each ``--repeat`` times, to a subscriber (this process):

* ``sensor``: reliable publisher (like pointcam_sim) -> best-effort
  subscriber with sensor-data QoS (like pointcam_node's input),
* ``best_effort``: best-effort publisher (a driver with sensor QoS) -> the same,
* ``reliable``: reliable -> reliable, depth 5 (pointcam_node's outputs to RViz
  or ``ros2 bag record``).

It prints, per size, how many arrived. Both processes get the same Fast DDS
profile: the shipped one (default), ``--profile PATH``, or ``--profile none``
for Fast DDS's built-in transports::

    .venv/bin/python bench/bench_dds_size.py
    .venv/bin/python bench/bench_dds_size.py --profile none --sizes 1 4 16
"""

import argparse
import array
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

from pointcam_ros.ros.dds import large_data_profile, PROFILE_VARIABLES
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    qos_profile_sensor_data, QoSDurabilityPolicy, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import PointCloud2, PointField

MIB = 1024 * 1024
POINT_STEP = 16
TOPICS = {  # name: (publisher QoS, subscriber QoS)
    'sensor': (QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
               qos_profile_sensor_data),
    'best_effort': (qos_profile_sensor_data, qos_profile_sensor_data),
    'reliable': (QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                            durability=QoSDurabilityPolicy.VOLATILE),
                 QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)),
}


def cloud_of(megabytes: float) -> PointCloud2:
    """Build an unorganized xyz+pad cloud of ``megabytes`` MiB (its width encodes the size)."""
    msg = PointCloud2()
    msg.height, msg.width = 1, int(megabytes * MIB) // POINT_STEP
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate('xyz')]
    msg.point_step, msg.row_step = POINT_STEP, msg.width * POINT_STEP
    data = array.array('B')
    data.frombytes(bytes(msg.row_step))
    msg.data = data
    return msg


def publish(sizes: list[float], repeat: int, wait: float) -> int:
    """Publish (publisher process) every size ``repeat`` times on every topic."""
    rclpy.init()
    node = Node('dds_size_publisher')
    pubs = {name: node.create_publisher(PointCloud2, f'dds_size/{name}', qos)
            for name, (qos, _) in TOPICS.items()}
    deadline = time.monotonic() + 60
    while any(p.get_subscription_count() == 0 for p in pubs.values()):
        if time.monotonic() > deadline:
            print('no subscriber matched', file=sys.stderr)
            return 1
        time.sleep(0.1)
    time.sleep(1.0)
    for size in sizes:
        msg = cloud_of(size)
        for name, pub in pubs.items():
            for k in range(repeat):
                msg.header.stamp.sec = k
                pub.publish(msg)
                time.sleep(wait + 0.04 * size)  # time to deliver before the next one
    time.sleep(2.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def main() -> int:
    """Run the publisher process against subscribers here; print what arrived."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--sizes', type=float, nargs='+',
                        default=[1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 63, 64])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--wait', type=float, default=0.3, help='s between messages (+size)')
    parser.add_argument('--profile', default='shipped',
                        help="'shipped', 'none' or the path of a Fast DDS XML profile")
    parser.add_argument('--publisher', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        return publish(args.sizes, args.repeat, args.wait)
    env = dict(os.environ)
    for name in PROFILE_VARIABLES:
        env.pop(name, None)
    choices = {'shipped': str(large_data_profile()), 'none': ''}
    profile = choices.get(args.profile, args.profile)
    if profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(Path(profile).resolve())
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.clear()
    os.environ.update(env)  # before rclpy.init: Fast DDS reads it then
    rclpy.init()
    node = Node('dds_size_subscriber')
    lock = threading.Lock()
    got: dict = {}

    def keep(name):
        def callback(msg):
            with lock:
                key = (name, msg.width)
                got[key] = got.get(key, 0) + 1
        return callback

    for name, (_, qos) in TOPICS.items():
        node.create_subscription(PointCloud2, f'dds_size/{name}', keep(name), qos)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    command = [sys.executable, __file__, '--publisher', '--repeat', str(args.repeat),
               '--wait', str(args.wait), '--sizes', *map(str, args.sizes)]
    started = time.monotonic()
    code = subprocess.run(command, env=env).returncode
    time.sleep(1.0)
    executor.shutdown()
    spinner.join(timeout=5)
    print(f'Fast DDS profile: {profile or "none (built-in transports)"}; '
          f'{args.repeat} messages per size and topic; publisher exit code {code}; '
          f'{time.monotonic() - started:.0f} s')
    print(f'{"MiB":>5} ' + ' '.join(f'{name:>12}' for name in TOPICS))
    largest = dict.fromkeys(TOPICS, 0.0)
    for size in args.sizes:
        width = int(size * MIB) // POINT_STEP
        row = []
        for name in TOPICS:
            count = got.get((name, width), 0)
            row.append(f'{count:>5d}/{args.repeat:<6d}')
            if count == args.repeat and largest[name] == max(
                    [s for s in args.sizes if s < size] + [0.0]):
                largest[name] = size
        print(f'{size:5g} ' + ' '.join(row))
    print('largest size with every message delivered (and all smaller ones): ' +
          ', '.join(f'{name} {largest[name]:g} MiB' for name in TOPICS))
    node.destroy_node()
    rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
