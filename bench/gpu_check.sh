#!/usr/bin/env bash
# One short GPU session: the CUDA tests and benchmarks, figures printed.
# Needs an NVIDIA GPU and PyTorch with CUDA already installed; installs nothing.
# The pipeline/end-to-end parts run only where open3d, scipy (and rclpy) import.
#   bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD:$PWD/bench${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
$PY -m pytest -q -p no:cacheprovider test/test_gradcam_cuda.py
$PY bench/bench_gradcam.py --device cuda --repeats 20
if $PY -c "import open3d, scipy" 2>/dev/null; then
    $PY bench/bench_pipeline.py --device cuda --sensors vlp16 hdl64 os1_128 --scans 20
    $PY bench/bench_bag.py --device cuda --scans 50
fi
if $PY -c "import rclpy" 2>/dev/null; then
    $PY bench/bench_e2e.py --device cuda --sensors hdl64 --duration 60
fi
