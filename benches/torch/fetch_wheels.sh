#!/usr/bin/env bash
# Downloads from PyPI, into WHEELDIR, the wheels that the official MedCLIPSeg code (and
# benches/torch/official_bench.py) needs beside an existing PyTorch, for an offline machine:
#
#   bash benches/torch/fetch_wheels.sh WHEELDIR
#
# Never torch, torchvision, triton or nvidia-*: those must already be on the target machine.
# Pure-Python wheels are fetched once; the compiled ones (tokenizers, safetensors: abi3; regex,
# pyyaml: one per CPython) for CPython 3.10-3.13 on manylinux x86_64. Every version is pinned:
# transformers is 4.56.0 exactly (official requirements.txt; with 5.x BertLayer returns a bare
# tensor and the official `x_txt = x_txt[0]` silently takes batch element 0), and the others are
# versions that 4.56.0 accepts, from the same months. install_offline.sh installs them.
set -euo pipefail
DEST=${1:?usage: fetch_wheels.sh WHEELDIR}
PY=${PYTHON:-python3}

# Pure-Python (py3-none-any).
PURE=(
    transformers==4.56.0
    huggingface_hub==0.35.3
    monai==1.5.1
    ftfy==6.3.1
    wcwidth==0.2.13
    open_clip_torch==3.2.0
    timm==1.0.20
    tqdm==4.67.1
    requests==2.32.5
    charset_normalizer==3.4.3
    idna==3.10
    urllib3==2.5.0
    certifi==2025.8.3
    packaging==25.0
    filelock==3.19.1
    fsspec==2025.9.0
    typing_extensions==4.15.0
)
# Compiled.
BINARY=(
    tokenizers==0.22.1
    safetensors==0.6.2
    regex==2025.9.18
    pyyaml==6.0.3
)
PLATFORMS=()
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64 \
    manylinux_2_24_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64; do
    PLATFORMS+=(--platform "$p")
done

mkdir -p "$DEST"
# --no-index off, --find-links off: PyPI only (a local find-links folder must not leak in).
PIP=("$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all:
    --no-cache-dir -d "$DEST")
echo "fetching ${#PURE[@]} pure-Python wheels" >&2
PIP_FIND_LINKS= "${PIP[@]}" --platform any --implementation py --python-version 3.10 --abi none \
    "${PURE[@]}"
for v in 3.10 3.11 3.12 3.13; do
    echo "fetching compiled wheels for CPython $v" >&2
    PIP_FIND_LINKS= "${PIP[@]}" --implementation cp --python-version "$v" "${PLATFORMS[@]}" \
        "${BINARY[@]}"
done

# Never a torch build in here.
if ls "$DEST" | grep -Eiq '^(torch|torchvision|torchaudio|triton|nvidia)[-_]'; then
    echo "error: a torch / nvidia wheel ended up in $DEST:" >&2
    ls "$DEST" | grep -Ei '^(torch|torchvision|torchaudio|triton|nvidia)[-_]' >&2
    exit 1
fi
ls -1 "$DEST" >&2
du -sh "$DEST" >&2
