#!/usr/bin/env bash
# Set up (scripts/setup.sh --dev) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k cloud_io
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
exec .venv/bin/python -m pytest test "$@"
