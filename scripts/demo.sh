#!/usr/bin/env bash
# Set everything up (scripts/setup.sh), then run the demo: the simulated LiDAR
# and pointcam_node as two processes, recorded to a rosbag2 MCAP bag for 20 s
# from the node's first saliency cloud (start-up, ~10 s, comes on top), with a
# PNG snapshot (top view + close-ups) and a summary in demo_output/.
# Extra arguments go to pointcam_demo, e.g. scripts/demo.sh --sensor hdl64
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/pointcam_demo --out demo_output "$@"
