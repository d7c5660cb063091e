#!/usr/bin/env bash
# Smoke-test every installed model (or those named): one line each (ok / failed + reason, latency p50,
# peak memory); exits 1 if any failed. Safe from cron: absolute paths, no tty needed.
#
#   ./quick_test_models.sh                 every installed model
#   ./quick_test_models.sh MapTR reference these models (a named model that is not installed fails)
#   env: ONLINEMAP_HOME, ONLINEMAP_VENV (default $ONLINEMAP_HOME/venv), QUICK_TEST_SAMPLES (default 5)
# Works from any folder, e.g. `cd /workspace && ./onlinemap/quick_test_models.sh`.
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
REPO="$(cd "$(dirname "$0")" && pwd -P)"   # -P: the real path, as Python reports it
# HOME unset (cron, `env -i`): the account's home; the home rule itself is onlinemap/paths.py's (one rule)
[ -n "${HOME:-}" ] || { HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"; export HOME; }
if [ -n "${ONLINEMAP_VENV:-}" ]; then VENV="$ONLINEMAP_VENV"
else
  HOME_DIR="$(python3 -I "$REPO/onlinemap/paths.py" home)" || exit 2
  VENV="$HOME_DIR/venv"
fi
if [ ! -x "$VENV/bin/onlinemap" ]; then
  echo "quick_test_models.sh: no driver venv at $VENV; run $REPO/runpod_setup.sh first" >&2
  exit 3
fi
# the console script, not `python -m`: from the folder holding the clone, `-m` would import the clone
# folder (named onlinemap) as an empty namespace package
exec "$VENV/bin/onlinemap" setup quick-test --samples "${QUICK_TEST_SAMPLES:-5}" "$@" </dev/null
