#!/usr/bin/env bash
# Smoke-test every installed model (or those named): one line each (ok / failed + reason, latency p50,
# peak memory); exits 1 if any failed. Safe from cron: absolute paths, no tty needed.
#
#   ./quick_test_models.sh                 every installed model
#   ./quick_test_models.sh MapTR reference these models (a named model that is not installed fails)
#   env: ONLINEMAP_HOME, ONLINEMAP_VENV (default $ONLINEMAP_HOME/venv), QUICK_TEST_SAMPLES (default 5)
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
REPO="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${ONLINEMAP_HOME:-}" ]; then HOME_DIR="$ONLINEMAP_HOME"
elif [ -d /workspace ]; then HOME_DIR=/workspace/onlinemap
else HOME_DIR="${HOME:-/root}/.onlinemap"; fi
export ONLINEMAP_HOME="$HOME_DIR"
VENV="${ONLINEMAP_VENV:-$HOME_DIR/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "quick_test_models.sh: no driver venv at $VENV; run $REPO/runpod_setup.sh first" >&2
  exit 3
fi
exec "$VENV/bin/python" -m onlinemap setup quick-test --samples "${QUICK_TEST_SAMPLES:-5}" "$@" </dev/null
