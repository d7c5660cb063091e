#!/usr/bin/env bash
# The verification lane (docs/testing.md "The verification lane"): run each model's REAL upstream code
# on CPU (random-init weights built from its real config, synthetic nuScenes data, the real harness
# worker) and write verification/record.json.
# Usage: scripts/verify-real-models.sh [--stack modern|paper|all] [MODEL...] [--no-record]
#   modern: verification/models/<M>.toml (Python 3.11); paper: <M>.paper.toml (Python 3.8, the packs'
#   environment.yml pins); all (the default): both, modern first.
# Needs ../shared/upstream (else GitHub) and PyPI; makes .venv (as run-tests.sh) and one cached
# .venv-verify-<model>[-paper]-<hash>/ per model and stack (the paper ones hardlinked from uv's cache).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ONLINEMAP_TEST_VENV:-.venv}
if [ ! -x "$VENV/bin/onlinemap" ]; then
  ./scripts/run-tests.sh --version >/dev/null   # creates and fills .venv, as the test suite does
fi
exec "$VENV/bin/python" -m verification.lane "$@"
