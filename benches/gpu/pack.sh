#!/usr/bin/env bash
# Prepares ./gpu-run for benches/gpu/run_on_device.sh: the release CUDA binary, the CUDA golden
# and end-to-end test binaries (stripped, xz-compressed), the wheels the official PyTorch code
# needs beside torch, and a checkout of the official code.
#
#   bash benches/gpu/pack.sh /path/to/official-MedCLIPSeg [WHEELDIR]
set -euo pipefail
OFFICIAL=${1:?path to a checkout of HealthX-Lab/MedCLIPSeg}
WHEELS=${2:-}
PACK=gpu-run
FEATURES=(--no-default-features --features medclipseg/cuda,medclipseg-model/cuda)

cargo build --release -p medclipseg -p medclipseg-model "${FEATURES[@]}" \
    --bin medclipseg --test golden_cuda --test gpu
mkdir -p "$PACK"
newest() { ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -1; }
for pair in "medclipseg:target/release/medclipseg" "golden_cuda:$(newest golden_cuda)" \
    "gpu:$(newest gpu)"; do
    name=${pair%%:*}
    strip -o "$PACK/$name" "${pair#*:}"
    xz -T2 -9 -f "$PACK/$name"
done
rm -rf "$PACK/official"
cp -a "$OFFICIAL" "$PACK/official"
rm -rf "$PACK/official/.git"
if [ -n "$WHEELS" ]; then
    rm -rf "$PACK/wheels"
    cp -a "$WHEELS" "$PACK/wheels"
else
    bash benches/torch/fetch_wheels.sh "$PACK/wheels"
fi
du -sh "$PACK" "$PACK"/*
