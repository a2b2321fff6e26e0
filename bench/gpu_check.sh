#!/usr/bin/env bash
# One short GPU session: the CUDA tests and benchmarks, figures printed.
# Needs an NVIDIA GPU and PyTorch with CUDA already installed; installs nothing.
# The pipeline/end-to-end parts run only where open3d, scipy (and rclpy) import;
# the training sweep only where packed data sets exist (bench/faithfulness_sweep.py pack).
#   bash bench/gpu_check.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-out/gpu_check}
mkdir -p "$OUTDIR"
export PYTHONPATH=$PWD:$PWD/bench${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
SWEEP_DATA=${SWEEP_DATA:-.gpu_data}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if [[ -f $SWEEP_DATA/train.npz ]]; then  # longest part first, in the background
    $PY bench/faithfulness_sweep.py run "$SWEEP_DATA" --device cuda --jobs 8 \
        --threads 1 --out /tmp/pointcam_sweep > "$OUTDIR/sweep.txt" 2>&1 &
    SWEEP=$!
fi
$PY -m pytest -q -p no:cacheprovider test/test_gradcam_cuda.py
$PY bench/bench_gradcam.py --device cuda --repeats 20
$PY bench/bench_gradcam.py --device cuda --repeats 20 --shipped
if $PY -c "import open3d, scipy" 2>/dev/null; then
    $PY bench/bench_pipeline.py --device cuda --sensors vlp16 hdl64 os1_128 --scans 20
    $PY bench/bench_bag.py --device cuda --scans 50
fi
if $PY -c "import rclpy" 2>/dev/null; then
    $PY bench/bench_e2e.py --device cuda --sensors hdl64 --duration 60
fi
if [[ -n ${SWEEP:-} ]]; then
    wait $SWEEP
    cat "$OUTDIR/sweep.txt"
    cp /tmp/pointcam_sweep/sweep.jsonl "$OUTDIR/" 2>/dev/null
    (cd /tmp/pointcam_sweep && tar czf - --exclude='*.state.pt' ./*.pt) > "$OUTDIR/sweep_models.tgz"
fi
