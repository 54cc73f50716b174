#!/usr/bin/env bash
# CPU, side by side: the official PyTorch code (official_bench.py) and our `model_timing`
# binaries on the same workloads, interleaved workload by workload so that both see the same
# machine load, at the given thread counts. Prints one markdown table per thread count with
# min / median seconds, peak RSS and the ratio of our median to PyTorch's.
#
#   bash benches/torch/cpu_side_by_side.sh OFFICIAL_DIR [THREADS...]
#
# Environment: PYTHON (python3 with torch and the official code's packages, see README.md),
# BINARIES (space-separated model_timing builds to compare, default
# target/release/examples/model_timing; label = file name), RUNS (timed runs, default 5;
# MC and train use RUNS_LONG, default 2), WORKLOADS (default "forward mc30 train").
set -euo pipefail
OFFICIAL=${1:?usage: cpu_side_by_side.sh OFFICIAL_DIR [THREADS...]}
shift
THREADS=("${@:-2}")
PY=${PYTHON:-python3}
BINARIES=(${BINARIES:-target/release/examples/model_timing})
RUNS=${RUNS:-5}
RUNS_LONG=${RUNS_LONG:-2}
WORKLOADS=(${WORKLOADS:-forward mc30 train})
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

runs_for() { [ "$1" = forward ] && echo "$RUNS" || echo "$RUNS_LONG"; }
torch_name() { [ "$1" = mc30 ] && echo mc || echo "$1"; }
rss_gb() { awk '/Maximum resident set size/ {printf "%.2f", $NF / 1048576}' "$1"; }

# PyTorch: one process per workload; prints "min median rss_gb".
torch_run() {
    local workload=$1 threads=$2 runs
    runs=$(runs_for "$workload")
    "$PY" "$HERE/official_bench.py" --official "$OFFICIAL" --device cpu --threads "$threads" \
        --workloads "$(torch_name "$workload")" --runs "$runs" --json "$TMP/t.json" \
        >"$TMP/t.log" 2>&1 || { tail -5 "$TMP/t.log" >&2; return 1; }
    "$PY" - "$TMP/t.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
(w,) = r["workloads"].values()
mem = w.get("memory", {})
rss = mem.get("peak_rss") or 0
print(f"{w['min']:.3f} {w['median']:.3f} {rss / 2**30:.2f}")
EOF
}

# Ours: prints "min median rss_gb".
rust_run() {
    local bin=$1 workload=$2 threads=$3 runs
    runs=$(runs_for "$workload")
    RAYON_NUM_THREADS=$threads /usr/bin/time -v "$bin" "$workload" "$runs" >"$TMP/r.log" 2>"$TMP/r.time"
    awk -v rss="$(rss_gb "$TMP/r.time")" '/min .* median/ {print $3, $6, rss}' "$TMP/r.log"
}

for threads in "${THREADS[@]}"; do
    echo
    echo "### $threads thread(s), $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    header="| workload | PyTorch min / median, RSS |"
    sep="| --- | --- |"
    for bin in "${BINARIES[@]}"; do
        header+=" $(basename "$bin") min / median, RSS | ratio |"
        sep+=" --- | --- |"
    done
    echo "$header"
    echo "$sep"
    for workload in "${WORKLOADS[@]}"; do
        read -r tmin tmed trss < <(torch_run "$workload" "$threads")
        row="| $workload | $tmin / $tmed s, $trss GiB |"
        for bin in "${BINARIES[@]}"; do
            read -r rmin rmed rrss < <(rust_run "$bin" "$workload" "$threads")
            ratio=$(awk -v a="$rmed" -v b="$tmed" 'BEGIN {printf "%.2f", a / b}')
            row+=" $rmin / $rmed s, $rrss GiB | ${ratio}x |"
        done
        echo "$row"
    done
done
