#!/usr/bin/env bash
# Run the fast tests against the OLDEST numpy that setup.cfg allows (numpy>=1.23).
#
#   scripts/check_numpy_floor.sh              # numpy 1.23.* (1.26.* on Python >= 3.12)
#   NUMPY='1.26.*' scripts/check_numpy_floor.sh
#
# numpy 1.x differs from 2.x in ways tinynet must survive: value-based scalar
# promotion instead of NEP 50, missing/renamed functions, copy= semantics.
# The venv ($TMPDIR/tinynet-numpy-floor-venv) is reused when its numpy
# already matches; CI can call this after the main run.  Measured on the 2-core
# CI-like machine: ~1 min to install (pip cache warm), ~1 min to test.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ -z "${NUMPY:-}" ]; then
  # numpy 1.23 has no wheels for Python 3.12+; 1.26 is the oldest that does.
  if "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then NUMPY='1.26.*'; else NUMPY='1.23.*'; fi
fi
VENV=${VENV:-${TMPDIR:-/tmp}/tinynet-numpy-floor-venv}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "numpy==$NUMPY" -e . pytest hypothesis pytest-xdist
"$VENV/bin/python" - <<PY
import fnmatch, numpy
assert fnmatch.fnmatch(numpy.__version__, "$NUMPY"), f"numpy {numpy.__version__} is not $NUMPY"
print(f"numpy floor check with numpy {numpy.__version__}")
PY

export MPLBACKEND=Agg
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -n "${JOBS:-2}" -m "not slow and not lesson" \
  tests/test_tensor.py tests/ops tests/nn tests/test_optim.py tests/test_gradcheck.py \
  tests/testing tests/test_init.py tests/test_checkpoint.py tests/data tests/test_train.py \
  tests/test_pytorch_habits.py tests/diagnose
