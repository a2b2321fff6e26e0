#!/usr/bin/env bash
# Set up everything pointcam_ros needs on a fresh Debian/Ubuntu machine
# without ROS: Debian libraries, a virtual environment in .venv, CPU torch,
# the ROS 2 wheels from PyPI and this package (editable).
#
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    runtime + test/lint tools
#
# Safe to run again: every step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${POINTCAM_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${POINTCAM_TORCH_SPEC:-torch==2.13.0}
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

log() { printf '[setup] %s\n' "$*" >&2; }

# open3d's wheel links against libusb-1.0 (and libgomp).
need_deb=()
for pkg in libusb-1.0-0 libgomp1; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_deb+=("$pkg")
done
if ((${#need_deb[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    log "installing Debian packages: ${need_deb[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_deb[@]}" >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# torch first and pinned: a looser spec would download a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    log "installing $TORCH_SPEC"
    "${PIP[@]}" install "$TORCH_SPEC"
fi

stamp="$VENV/.pointcam-setup-$dev"
reqs=(requirements.txt setup.py setup.cfg)
((dev)) && reqs+=(requirements-dev.txt)
if [[ ! -f "$stamp" ]] || [[ -n "$(find "${reqs[@]}" -newer "$stamp" 2>/dev/null)" ]]; then
    log "installing requirements"
    args=(-r requirements.txt)
    ((dev)) && args+=(-r requirements-dev.txt)
    "${PIP[@]}" install "${args[@]}"
    # compat mode: a .pth path entry, so a colcon install space on PYTHONPATH wins.
    "${PIP[@]}" install --no-deps --config-settings editable_mode=compat -e .
    touch "$stamp"
fi
log "ready: $VENV"
