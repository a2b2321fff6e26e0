#!/usr/bin/env bash
# Set up (scripts/setup.sh --dev) and run the whole test suite: this is what CI runs.
# Extra arguments go to pytest, e.g.
#   scripts/test.sh -k cloud_io                        one topic
#   scripts/test.sh -m "not slow"                      without the shipped model's checks on
#                                                      freshly simulated data (~30 s)
#   scripts/test.sh -m "not (slow or ros or colcon)"   a quick local loop: no ROS node,
#                                                      DDS or colcon build
#   scripts/test.sh -m linter                          the ament linters only
# CI deselects nothing. Skipped tests are listed with their reason (no GPU, no ament
# tools...), the slowest 15 with their times; a test hung for 10 min fails (pytest-timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
# Test files run side by side, one worker per core (pytest-xdist; each worker on its own
# DDS domain, each file in one worker: its module fixtures are built once).
exec .venv/bin/python -m pytest test -n auto --dist loadfile --durations=15 "$@"
