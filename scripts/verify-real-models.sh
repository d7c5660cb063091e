#!/usr/bin/env bash
# The verification lane (docs/testing.md "The verification lane"): run each model's REAL upstream code
# on CPU (random-init weights built from its real config, synthetic nuScenes data, the real harness
# worker) and write verification/record.json. Usage: scripts/verify-real-models.sh [MODEL...] [--no-record]
# Needs ../shared/upstream (else GitHub) and PyPI; makes .venv (as run-tests.sh) and one cached
# .venv-verify-<model>-<hash>/ per model.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ONLINEMAP_TEST_VENV:-.venv}
if [ ! -x "$VENV/bin/onlinemap" ]; then
  ./scripts/run-tests.sh --version >/dev/null   # creates and fills .venv, as the test suite does
fi
exec "$VENV/bin/python" -m verification.lane "$@"
