#!/usr/bin/env bash
# onlinemap one-command setup: driver venv, data, and a smoke test of the built-in reference model.
#
# Everything goes under ONLINEMAP_HOME (/workspace/onlinemap on a RunPod pod: the volume that
# survives a stop; ~/.onlinemap elsewhere). Re-running skips what is already in place.
# Bash does only what must happen before Python exists; the rest is `onlinemap …` commands.
#
#   ./runpod_setup.sh                 # set up and smoke-test the reference model
#   ./runpod_setup.sh --dataroot /workspace/nuscenes
#
# Per-model conda envs (MapTR, PETR, StreamPETR, TopoMLP, VAD) are listed at the end with the
# command that installs each (`onlinemap models` shows the same).
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
DATAROOT="${NUSCENES_ROOT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dataroot) DATAROOT="$2"; shift 2 ;;
    --dataroot=*) DATAROOT="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "runpod_setup.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${ONLINEMAP_HOME:-}" ]; then HOME_DIR="$ONLINEMAP_HOME"
elif [ -d /workspace ]; then HOME_DIR=/workspace/onlinemap
else HOME_DIR="$HOME/.onlinemap"; fi
export ONLINEMAP_HOME="$HOME_DIR"
mkdir -p "$HOME_DIR/logs"
LOG="$HOME_DIR/logs/setup-$(date -u +%Y%m%d-%H%M%S).log"
step() { printf '\n== %s\n' "$*"; }
fail() { echo "setup failed: $1" >&2; echo "log: $LOG" >&2; tail -n 20 "$LOG" >&2 || true; exit "${2:-1}"; }

step "onlinemap home: $HOME_DIR"
[ -d /workspace ] || echo "   (no /workspace here: not a RunPod pod, using $HOME_DIR)"

step "python (>= 3.9 for the driver)"
PY=""
for cand in "${PYTHON:-}" python3.12 python3.11 python3.10 python3.9 python3; do
  [ -n "$cand" ] || continue
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
    PY="$(command -v "$cand")"; break
  fi
done
[ -n "$PY" ] || fail "no Python >= 3.9 found; install one (apt-get install python3 python3-venv) and re-run" 3
echo "   $PY ($("$PY" --version 2>&1))"

VENV="$HOME_DIR/venv"
# torch pinned: unpinned pip picks whatever is newest; 2.13.0 has CPU and CUDA builds on PyPI.
TORCH_SPEC="${ONLINEMAP_TORCH_SPEC:-torch==2.13.0}"
step "driver venv: $VENV"
if [ -x "$VENV/bin/onlinemap" ] && "$VENV/bin/python" -c "import onlinemap, torch, nuscenes" 2>/dev/null \
   && [ "$("$VENV/bin/python" -c 'import onlinemap, os; print(os.path.dirname(os.path.dirname(onlinemap.__file__)))')" = "$REPO" ]; then
  echo "   ready (skipped)"
else
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || fail "cannot create a venv (apt-get install python3-venv)" 3
  echo "   installing $TORCH_SPEC and onlinemap (a few minutes the first time)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check "$TORCH_SPEC" >>"$LOG" 2>&1 || fail "pip install $TORCH_SPEC failed"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$REPO[torch]" >>"$LOG" 2>&1 || fail "pip install -e $REPO failed"
  "$VENV/bin/python" -c "import onlinemap, torch, nuscenes" >>"$LOG" 2>&1 || fail "the driver venv does not import onlinemap/torch/nuscenes"
  echo "   ok"
fi
OM="$VENV/bin/onlinemap"

step "data"
if [ -n "$DATAROOT" ]; then
  export NUSCENES_ROOT="$DATAROOT"
  echo "   using $DATAROOT"
else
  SYNTH="$HOME_DIR/data/nuscenes-synth"
  if [ -f "$SYNTH/SYNTHETIC.json" ]; then echo "   synthetic dataset ready at $SYNTH (skipped)"
  else "$OM" data synth "$SYNTH" || fail "could not write the synthetic dataset"; fi
  echo "   (no --dataroot/NUSCENES_ROOT: the synthetic dataset is used; it exercises the pipeline, not accuracy)"
fi

step "smoke test: onlinemap test --model reference"
"$OM" test --model reference || fail "the reference smoke test failed (see above)" $?

step "models"
"$OM" models || true
cat <<TXT

Done. To use onlinemap in this shell:
    source $VENV/bin/activate
    onlinemap test --model reference
    onlinemap bench --models reference --samples 20
    onlinemap results
TXT
