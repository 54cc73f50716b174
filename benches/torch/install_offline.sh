#!/usr/bin/env bash
# Installs, with no network, the wheels that fetch_wheels.sh put in WHEELDIR into TARGETDIR, for
#
#   PYTHONPATH=TARGETDIR python3 benches/torch/official_bench.py --official DIR ...
#
#   bash benches/torch/install_offline.sh WHEELDIR TARGETDIR
#
# A package is skipped when the Python that will run the bench ($PYTHON, default python3) already
# has it at a version the official code accepts; otherwise the wheel goes into TARGETDIR, which
# PYTHONPATH puts ahead of site-packages. transformers is always 4.56.0 exactly, so a machine with
# transformers 5.x gets 4.56.0, and with it a huggingface_hub < 1.0 and a tokenizers <= 0.23.0,
# which 4.56.0 checks for at import. torch, torchvision and nvidia-* are never touched (--no-deps;
# fetch_wheels.sh fetches none of them). At the end the imports are checked with TARGETDIR first
# on the path; a package whose import fails there is installed from WHEELDIR and checked again.
set -euo pipefail
WHEELS=${1:?usage: install_offline.sh WHEELDIR TARGETDIR}
TARGET=${2:?usage: install_offline.sh WHEELDIR TARGETDIR}
PY=${PYTHON:-python3}
WHEELS=$(cd "$WHEELS" && pwd)
mkdir -p "$TARGET"
TARGET=$(cd "$TARGET" && pwd)

# name|import name|acceptable versions (PEP 440; empty: any). Order: dependencies first.
SPECS='
typing_extensions|typing_extensions|>=4.5
packaging|packaging|>=20.0
filelock|filelock|
fsspec|fsspec|>=2023.5.0
tqdm|tqdm|>=4.27
pyyaml|yaml|>=5.1
regex|regex|!=2019.12.17
certifi|certifi|>=2017.4.17
idna|idna|>=2.5,<4
urllib3|urllib3|>=1.21.1,<3
charset_normalizer|charset_normalizer|>=2,<4
requests|requests|>=2.0
safetensors|safetensors|>=0.4.3
huggingface_hub|huggingface_hub|>=0.34.0,<1.0
tokenizers|tokenizers|>=0.22.0,<=0.23.0
transformers|transformers|==4.56.0
wcwidth|wcwidth|
ftfy|ftfy|
monai|monai|>=1.0
timm|timm.layers|>=0.9
open_clip_torch|open_clip|
'

# Which packages the bare Python (PYTHONPATH unset) lacks, or has at an unacceptable version.
NEEDED=$(env -u PYTHONPATH "$PY" - "$SPECS" <<'EOF'
import sys
from importlib import metadata
try:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import Version
for line in sys.argv[1].split("\n"):
    if not line.strip():
        continue
    name, _module, spec = line.split("|")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    ok = have is not None and (not spec or Version(have) in SpecifierSet(spec))
    print(f"{name:20s} {have or '-':14s} wants {spec or 'any':22s} {'keep' if ok else 'install'}",
          file=sys.stderr)
    if not ok:
        print(name)
EOF
)

install() { # install NAME...: from WHEELDIR only, no dependencies, replacing what TARGETDIR has
    [ $# -gt 0 ] || return 0
    echo "installing into $TARGET: $*" >&2
    PIP_FIND_LINKS= "$PY" -m pip install --quiet --disable-pip-version-check --no-index \
        --find-links "$WHEELS" --target "$TARGET" --no-deps --upgrade --no-compile "$@"
}
# shellcheck disable=SC2086
install $NEEDED

# Check every import with TARGETDIR first; repair what fails (one round).
check() {
    PYTHONPATH="$TARGET${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$SPECS" <<'EOF'
import importlib, sys
try:
    import torchvision  # noqa: F401
    needs_torchvision = set()
except ImportError:
    # timm and open_clip import torchvision; official_bench.py stubs it where it is absent.
    needs_torchvision = {"timm.layers", "open_clip"}
bad = []
for line in sys.argv[1].split("\n"):
    if not line.strip():
        continue
    name, module, _spec = line.split("|")
    if module in needs_torchvision:
        print(f"import {module}: not checked (no torchvision here; the bench stubs it)",
              file=sys.stderr)
        continue
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any failure means: reinstall it
        print(f"import {module} failed: {type(e).__name__}: {e}", file=sys.stderr)
        bad.append(name)
print(" ".join(bad))
EOF
}
# open_clip (open_clip_torch) needs torchvision; the bench itself does not import it.
BAD=$(check)
BAD=${BAD//open_clip_torch/}
if [ -n "${BAD// /}" ]; then
    # shellcheck disable=SC2086
    install $BAD
    BAD=$(check)
    BAD=${BAD//open_clip_torch/}
    if [ -n "${BAD// /}" ]; then
        echo "error: still not importable with PYTHONPATH=$TARGET: $BAD" >&2
        exit 1
    fi
fi
PYTHONPATH="$TARGET${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c '
import sys, torch, transformers
print("python", sys.version.split()[0], "| torch", torch.__version__,
      "| transformers", transformers.__version__, file=sys.stderr)
assert transformers.__version__ == "4.56.0", transformers.__version__
'
echo "ok: PYTHONPATH=$TARGET" >&2
