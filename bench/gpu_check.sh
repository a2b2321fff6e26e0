#!/usr/bin/env bash
# One short GPU session: CUDA tests and benchmarks, figures printed.
# Run on a machine with an NVIDIA GPU and PyTorch with CUDA already installed
# (the device machine has it); installs nothing.
#   bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
$PY -m pytest -q -p no:cacheprovider test/test_gradcam_cuda.py
$PY bench/bench_gradcam.py --device cuda --repeats 20
