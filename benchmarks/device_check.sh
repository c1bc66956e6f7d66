#!/usr/bin/env bash
# One-shot check of the GPU path (issue 18) on a machine with NVIDIA GPU(s) where only torch
# and triton need be installed; finishes in under 8 minutes (DEVICE_CHECK_BUDGET seconds for
# all stages, default 450, plus start-up).
#
#   benchmarks/device_check.sh [OUTDIR]          # default OUTDIR: device_check/
#   PYTHON=/opt/venv/bin/python benchmarks/device_check.sh /tmp/dc
#
# Stages, in order of importance (each capped, the later ones get what time is left):
#   env.txt          GPU(s), driver, python, torch, triton
#   kernel_tests.log the Triton kernels against the PyTorch path on the GPU: outputs and every
#                    gradient, orders 1-5, grids 3-100, uniform and adaptive grids, points beyond
#                    the grid, block tails, float64/bfloat16/float16, a KAN trained a few steps
#                    (python -m tests.kernels.triton_cases: no pytest needed)
#   bench_gpu.txt    benchmarks/bench_gpu.py --quick (+ bench_gpu.json, written after every case)
#   ddp_check.txt    benchmarks/ddp_check.py: 2 data-parallel workers on NCCL if two GPUs are
#                    visible, else one worker, saying so (+ ddp_check.json)
#   pytest.log       tests/kernels/test_triton_spline.py on the GPU, where pytest is installed
#   summary.txt      one line per stage, then issue 18's targets and the checks' verdicts
# Exit status: 0 when every stage passed, 1 when one failed or ran out of time, 2 when nothing
# could start (one line says why; OUTDIR is not created then).
set -u

die() { echo "device_check: $*" >&2; exit 2; }

[ $# -le 1 ] || die "usage: benchmarks/device_check.sh [OUTDIR] (default: device_check/)"
out=${1:-device_check}
py=${PYTHON:-python3}
budget=${DEVICE_CHECK_BUDGET:-450}
case $budget in '' | *[!0-9]*) die "DEVICE_CHECK_BUDGET=$budget is not a number of seconds";; esac
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null || echo file)" ]; then
    die "$out exists and is not an empty folder: give a new OUTDIR (nothing is overwritten)"
fi
command -v "$py" >/dev/null 2>&1 || die "no '$py' here: set PYTHON to a python with torch and triton"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET KANPLATFORM_KERNEL  # the real GPU, the automatic kernel choice
why=$(cd "$root" && "$py" - 2>&1 <<'EOF'
import importlib.util
import sys

missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
if missing:
    print(f"{' and '.join(missing)} not importable by {sys.executable}: install torch (CUDA "
          "build) and triton, or set PYTHON to a python that has them")
    sys.exit(1)
import torch

if not torch.cuda.is_available():
    print(f"no CUDA GPU visible to torch {torch.__version__} (torch.cuda.is_available() is "
          "False): run this on a GPU machine")
    sys.exit(1)
import kanplatform.nn  # noqa: F401  the checkout imports with torch alone
EOF
) || die "${why##*$'\n'}"
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
cd "$root" || exit 2

start=$(date +%s)
failed=0
summary="$out/summary.txt"

# stage NAME CAP_SECONDS LOG COMMAND...: run COMMAND into OUTDIR/LOG, capped at CAP_SECONDS
# and at what is left of the budget; one line into summary.txt
stage() {
    local name=$1 cap=$2 log=$3 left t0 rc verdict
    shift 3
    left=$((budget - ($(date +%s) - start)))
    [ "$left" -lt "$cap" ] && cap=$left
    if [ "$cap" -lt 15 ]; then
        printf '%-14s SKIPPED: out of time (DEVICE_CHECK_BUDGET=%s s)\n' "$name" "$budget" \
            | tee -a "$summary"
        failed=1
        return
    fi
    echo "device_check: $name (at most ${cap} s) -> $out/$log"
    t0=$(date +%s)
    timeout -k 10 "$cap" "$@" >"$out/$log" 2>&1
    rc=$?
    case $rc in
        0) verdict=ok ;;
        124 | 137) verdict="TIMED OUT after ${cap} s (what it wrote is kept)"; failed=1 ;;
        *) verdict="FAILED (exit $rc)"; failed=1 ;;
    esac
    printf '%-14s %-44s %4d s  %s\n' "$name" "$verdict" "$(($(date +%s) - t0))" "$log" \
        | tee -a "$summary"
}

env_info() {
    date -u +'%Y-%m-%dT%H:%M:%SZ'
    command -v nvidia-smi >/dev/null 2>&1 && timeout 20 nvidia-smi
    timeout 60 "$py" - <<'EOF'
import platform

import torch
import triton

print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}),"
      f" triton {triton.__version__}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, "
          f"{p.total_memory / 2**30:.0f} GiB")
EOF
    git -C "$root" log -1 --format='checkout %H %s' 2>/dev/null || true
}

env_info >"$out/env.txt" 2>&1
printf '%-14s %-44s %4d s  %s\n' env "done" "$(($(date +%s) - start))" env.txt | tee -a "$summary"
stage kernel_tests 170 kernel_tests.log "$py" -m tests.kernels.triton_cases
stage bench_gpu 190 bench_gpu.txt "$py" benchmarks/bench_gpu.py --quick --json "$out/bench_gpu.json"
stage ddp_check 70 ddp_check.txt "$py" benchmarks/ddp_check.py --json "$out/ddp_check.json"
if "$py" -c 'import pytest' >/dev/null 2>&1; then
    stage pytest 120 pytest.log "$py" -m pytest -q -p no:cacheprovider \
        tests/kernels/test_triton_spline.py
else
    printf '%-14s skipped: pytest is not installed (kernel_tests ran the same cases)\n' pytest \
        | tee -a "$summary"
fi

{
    echo
    echo "issue 18 targets (bench_gpu) and checks (kernel_tests, ddp_check):"
    grep -hE '^(PASS|FAIL|n/a): ' "$out/bench_gpu.txt" "$out/ddp_check.txt" 2>/dev/null
    grep -h -E '^[0-9]+ passed, [0-9]+ failed' "$out/kernel_tests.log" 2>/dev/null
    grep -h -E '^only [0-9]+ GPU visible' "$out/ddp_check.txt" 2>/dev/null
    echo "total $(($(date +%s) - start)) s; figures: $out/bench_gpu.txt (table), *.json"
} | tee -a "$summary"
exit "$failed"
