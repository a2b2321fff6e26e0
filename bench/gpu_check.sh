#!/usr/bin/env bash
# One short run on the lent GPU machine: the CUDA tests and every GPU figure, printed.
#
# There: Python 3.12 with torch (CUDA), numpy, scipy, pyyaml, pytest; no open3d, no
# ROS, no network. Prepare here, once, and carry both folders:
#   bash bench/fetch_gpu_wheels.sh            # ROS 2 wheels for cp312 -> .whl/ (~44 MB)
#   .venv/bin/python bench/record_scans.py    # simulated scans -> bench/data/scans.npz (~17 MB)
# Then one device call (about 4 minutes, 230 s on an H200, plus 1-2 to start):
#   run(command='bash bench/gpu_check.sh "$OUT"', carry=['.whl', 'bench/data'], timeout_s=600)
# Test it here first, the same steps on the CPU at small sizes (about 2 minutes):
#   PYTHON=.venv/bin/python bash bench/gpu_check.sh --cpu /tmp/gpu_check
#
# Steps: install the ROS wheels into a prefix (the wheels' shared libraries live in
# pip's data scheme, which --target drops), the CUDA tests (test/test_*_cuda.py), the
# Grad-CAM engine bench (default and shipped architectures), the pipeline stage bench
# (and its per-step profile) and the DDS end-to-end bench on the recorded scans. Each step has its own time limit
# (565 s in all at most, the install's 60 included, plus 10 s to kill a stuck step);
# a failed step is reported and the next one runs. Everything is also written to
# OUTDIR/gpu_check.log. Exit status: 0 when every step passed. With SWEEP_DATA naming a
# folder of packed data sets (bench/faithfulness_sweep.py pack), the training sweep runs last
# (give it a call of its own: it needs up to 240 s more).
#   bash bench/gpu_check.sh [--cpu|--dry-run] [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
if [[ ${1:-} == --cpu || ${1:-} == --dry-run ]]; then
    DEVICE=cpu
    shift
fi
OUTDIR=${1:-out/gpu_check}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
SCANS=${SCANS:-bench/data/scans.npz}
WHEELS=${WHEELS:-.whl}
ROS_PREFIX=${ROS_PREFIX:-/tmp/pointcam_ros_prefix}
export PYTHONPATH=$PWD:$PWD/bench${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export POINTCAM_BENCH_LOG=${POINTCAM_BENCH_LOG:-$OUTDIR/node.log}  # the node's own output
START=$SECONDS
FAILED=()

step() {  # step LIMIT_S NAME COMMAND...: run one step under a time limit, record failure
    local limit=$1 name=$2
    shift 2
    echo
    echo "=== [$((SECONDS - START)) s] $name"
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    if ((rc != 0)); then
        echo "=== $name FAILED (exit $rc$( ((rc == 124)) && echo ", over ${limit} s"))"
        FAILED+=("$name")
    fi
}

install_ros() {  # ROS 2 from the carried wheels, unless rclpy imports already
    if $PY -c 'import rclpy' 2>/dev/null; then
        echo "rclpy already importable"
        return 0
    fi
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "no wheels in $WHEELS: run bench/fetch_gpu_wheels.sh here and carry $WHEELS"
        return 1
    fi
    timeout 60 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --root-user-action=ignore --prefix "$ROS_PREFIX" "$WHEELS"/*.whl || return 1
    local site
    site=$(echo "$ROS_PREFIX"/lib/python3*/site-packages)
    echo "export PYTHONPATH=\$PYTHONPATH:$site" > "$ROS_PREFIX/env.sh"
    echo "export LD_LIBRARY_PATH=$ROS_PREFIX/lib:$(ls -d "$site"/ros_*.libs | paste -sd:)"\
"\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" >> "$ROS_PREFIX/env.sh"
    # shellcheck disable=SC1091
    source "$ROS_PREFIX/env.sh"
    $PY -c 'import rclpy, sensor_msgs.msg; print("rclpy", rclpy.__file__)'
}

main() {
echo "gpu_check on $DEVICE, $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null)"
if [[ $DEVICE == cuda ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
$PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__,
      'cuda', torch.cuda.is_available())"
[[ -f $SCANS ]] || echo "no $SCANS: run bench/record_scans.py here and carry bench/data"

echo
echo "=== [$((SECONDS - START)) s] install ROS 2 wheels"
install_ros || { echo "=== install FAILED"; FAILED+=('install ROS 2 wheels'); }

if [[ $DEVICE == cuda ]]; then
    # Only the CUDA test files: others may import open3d, absent there.
    step 90 'CUDA tests' $PY -m pytest -q -p no:cacheprovider -rs test/test_*_cuda.py
    step 60 'Grad-CAM engine, default architecture' \
        $PY bench/bench_gradcam.py --device cuda --repeats 10
    step 40 'Grad-CAM engine, shipped architecture' \
        $PY bench/bench_gradcam.py --device cuda --repeats 10 --shipped --points 512
    step 40 'pipeline stages, CUDA' $PY bench/bench_pipeline.py --device cuda \
        --scans-file "$SCANS" --scans 20 --sensors hdl64 hdl64_street os1_128
    step 45 'pipeline steps, CUDA' $PY bench/profile_pipeline.py --device cuda \
        --scans-file "$SCANS" --scans 4 --sensors hdl64_street --top 15
    step 50 "pipeline stages, the GPU machine's CPU (same scans)" $PY bench/bench_pipeline.py \
        --device cpu --scans-file "$SCANS" --scans 3 --sensors hdl64 hdl64_street os1_128
    step 60 'DDS end to end, HDL-64E at 20 Hz' $PY bench/bench_e2e.py --device cuda \
        --scans-file "$SCANS" --duration 20 --sensors hdl64 --rate 20
    step 60 'DDS end to end, HDL-64E street at 20 Hz' $PY bench/bench_e2e.py --device cuda \
        --scans-file "$SCANS" --duration 20 --sensors hdl64_street --rate 20
    step 60 'DDS end to end, OS1-128 at 10 Hz' $PY bench/bench_e2e.py --device cuda \
        --scans-file "$SCANS" --duration 20 --sensors os1_128
else  # the same steps at small sizes, to test this script on a machine without a GPU
    step 240 'CUDA tests (skipped without a GPU)' $PY -m pytest -q -p no:cacheprovider \
        test/test_*_cuda.py
    step 150 'Grad-CAM engine' $PY bench/bench_gradcam.py --device cpu --repeats 1 \
        --batches 1 8 --points 128 --naive-max-batch 8
    step 150 'pipeline stages' $PY bench/bench_pipeline.py --device cpu \
        --scans-file "$SCANS" --scans 2 --sensors hdl64
    step 150 'pipeline steps (torch backend)' $PY bench/profile_pipeline.py --device cpu \
        --scans-file "$SCANS" --scans 2 --sensors hdl64 --top 5
    step 150 'DDS end to end' $PY bench/bench_e2e.py --device cpu --scans-file "$SCANS" \
        --duration 3 --sensors hdl64_street --variants 2 --rate 5
fi

if [[ -n ${SWEEP_DATA:-} && -f ${SWEEP_DATA:-}/train.npz && $DEVICE == cuda ]]; then
    step 240 'faithfulness sweep' $PY bench/faithfulness_sweep.py run "$SWEEP_DATA" \
        --device cuda --jobs 8 --threads 1 --out /tmp/pointcam_sweep
    cp /tmp/pointcam_sweep/sweep.jsonl "$OUTDIR/" 2>/dev/null
fi

echo
echo "=== [$((SECONDS - START)) s] done; failed steps: ${FAILED[*]:-none}"
((${#FAILED[@]} == 0))
}

main 2>&1 | tee "$OUTDIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
