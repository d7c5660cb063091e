#!/usr/bin/env bash
# Run the whole test suite from a clean clone: makes .venv (once), installs onlinemap with its
# test extras and a pinned torch, then runs pytest. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${ONLINEMAP_TEST_VENV:-.venv}
# torch is pinned: an unpinned requirement can pull several GB of CUDA wheels.
TORCH_SPEC=${ONLINEMAP_TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.onlinemap-test-deps"
want="$(cat setup.py scripts/run-tests.sh | sha256sum | cut -c1-16) $TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing onlinemap[test] and $TORCH_SPEC into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test,rattler,notebook]" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -c "import onlinemap, torch, nuscenes, pytest" # fail loudly if an install did not take
  echo "$want" > "$stamp"
fi
exec "$VENV/bin/python" -m pytest "$@"
