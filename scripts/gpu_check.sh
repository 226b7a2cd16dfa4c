#!/usr/bin/env bash
# One command to verify tinynet on a machine with an NVIDIA GPU and CuPy:
#   1. the whole test suite, with the real-CuPy tests running (none may be skipped
#      for want of a GPU), and
#   2. the benchmark on the GPU: tinynet on CuPy beside PyTorch CUDA.
#
#   scripts/gpu_check.sh                 # from anywhere; PYTHON=... to pick the interpreter
#   scripts/gpu_check.sh -x -k conv      # extra arguments go to pytest
#
# Writes gpu_check_tests.log and gpu_bench.json in the current directory.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import tinynet, sys; sys.exit(0 if tinynet.cuda_available() else 1)"; then
    echo "gpu_check.sh: no usable GPU: tinynet.cuda_available() is False (needs an NVIDIA GPU and CuPy: pip install 'tinynet[gpu]')" >&2
    exit 2
fi

echo "== tests on real CuPy =="
set +e
(cd "$ROOT" && "$PY" -m pytest -q -p no:cacheprovider -rs "$@") 2>&1 | tee gpu_check_tests.log
status=${PIPESTATUS[0]}
set -e
if grep -q "real-CuPy runs are skipped" gpu_check_tests.log; then
    echo "gpu_check.sh: some real-CuPy tests were skipped although a GPU is present (see gpu_check_tests.log)" >&2
    status=1
fi

echo "== benchmark: tinynet on CuPy vs PyTorch CUDA =="
"$PY" "$ROOT/scripts/bench.py" --device cuda --reps 5 --json gpu_bench.json || status=1
exit "$status"
