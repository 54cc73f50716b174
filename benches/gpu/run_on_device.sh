#!/usr/bin/env bash
# One run on a GPU machine without a Rust toolchain or network: CUDA golden parity (precise and
# TF32), `medclipseg bench` (full-size model: one pass, MC-30, training step, device pool) in both
# precisions and both noise sources, the CUDA end-to-end tests, and the official PyTorch code
# timed on the same GPU. Prepared by benches/gpu/pack.sh into ./gpu-run; results go to $OUT.
#
#   OUT=/tmp/out bash benches/gpu/run_on_device.sh
#
# Every step has its own time limit and writes its own log, so that a slow or failing step
# leaves the others' results.
set -u
OUT=${OUT:?set OUT to the results folder}
ROOT=$(pwd)
PACK=$ROOT/gpu-run
BIN=$(mktemp -d)
STEPS=$OUT/steps.txt
mkdir -p "$OUT"

step() { # step NAME SECONDS COMMAND...: runs one step, logs to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$STEPS"
}

for exe in medclipseg golden_cuda gpu medclipseg-fusion; do
    [ -f "$PACK/$exe.xz" ] && xz -dc "$PACK/$exe.xz" >"$BIN/$exe" && chmod +x "$BIN/$exe"
done

# NVRTC and the driver: wherever this machine keeps them (pip's nvidia-* wheels, a CUDA toolkit).
LIBS=$(timeout 30 find /usr /opt /root /home \( -name 'libnvrtc.so*' -o -name 'libnvrtc-builtins.so*' \) 2>/dev/null |
    xargs -r -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH=${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    python3 -c 'import torch, sys; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
    nproc
} >"$OUT/machine.txt" 2>&1

export MEDCLIPSEG_GOLDEN_DIR=$ROOT/testdata/golden/tiny
M=$BIN/medclipseg
FULL=(--device cuda:0 --model-config unimedclip-vit-b16 --runs 5)

# 1. Our speed, the default (precise f32, device noise), then TF32 and host noise.
step bench_precise 150 "$M" bench "${FULL[@]}" --json "$OUT/bench_precise.json"
# 2. PyTorch, the official code, on the same GPU.
step torch_install 90 bash benches/torch/install_offline.sh "$PACK/wheels" /tmp/pydeps
step torch_cuda 240 env PYTHONPATH=/tmp/pydeps python3 benches/torch/official_bench.py \
    --official "$PACK/official" --device cuda --runs 5 --json "$OUT/torch_cuda.json"
# 3. Parity with the CPU golden: precise must pass; TF32 reports its error.
step golden_precise 120 "$BIN/golden_cuda" --nocapture --test-threads 1
step golden_tf32 120 env CUBEK_MATMUL_ALLOW_TF32=1 MEDCLIPSEG_GOLDEN_REPORT_ONLY=1 \
    "$BIN/golden_cuda" --nocapture --test-threads 1
# 4. Everything end to end on CUDA: demo --quick, train twice, eval, predict, bench, errors.
step e2e_cuda 240 env MEDCLIPSEG_BIN="$M" "$BIN/gpu" --test-threads 1
step bench_tf32 150 "$M" bench --precision tf32 "${FULL[@]}" --json "$OUT/bench_tf32.json"
# 5. Burn's fusion + autotune (`--features cuda-fusion`), when packed: the warm-up column holds
#    the autotuning; the step's seconds are the whole process, start-up included.
if [ -x "$BIN/medclipseg-fusion" ]; then
    step bench_fusion 200 "$BIN/medclipseg-fusion" bench "${FULL[@]}" --json "$OUT/bench_fusion.json"
fi
step bench_host_noise 150 "$M" bench --noise-source host "${FULL[@]}" \
    --json "$OUT/bench_host_noise.json"
