#!/usr/bin/env bash
# onlinemap one-command setup: driver venv, then every setup stage (`onlinemap setup run`).
#
# Everything goes under ONLINEMAP_HOME (/workspace/onlinemap on a RunPod pod: the volume that
# survives a stop; ~/.onlinemap elsewhere). Re-running skips every stage whose check passes, and an
# interrupted run continues where it stopped. Bash does only what must happen before Python exists
# (find Python >= 3.9, the driver venv, torch + onlinemap); the stages are `onlinemap setup …`.
#
#   ./runpod_setup.sh                          every model this GPU supports (reference only without a GPU)
#   ./runpod_setup.sh --models MapTR,PETR      these models
#   ./runpod_setup.sh --dataroot /workspace/nuscenes   real nuScenes (default: $NUSCENES_ROOT, else synthetic)
#   ./runpod_setup.sh --dry-run                print the plan and what each stage would do; change nothing
#   options: --skip-weights  --jobs N (models in parallel)  --with-cron  --with-kernels  --yes
#            --allow-unverified (micromamba URL without a pinned sha256)
#   env: ONLINEMAP_HOME, ONLINEMAP_VENV (driver venv, default $ONLINEMAP_HOME/venv), ONLINEMAP_TORCH_SPEC,
#        PYTHON (interpreter to build the venv from)
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
DATAROOT="${NUSCENES_ROOT:-}"
DRY_RUN=0
SETUP_ARGS=()
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "runpod_setup.sh: $1 needs a value (see --help)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dataroot) need_value "$@"; DATAROOT="$2"; shift 2 ;;
    --dataroot=*) DATAROOT="${1#*=}"; shift ;;
    --models|--jobs) need_value "$@"; SETUP_ARGS+=("$1" "$2"); shift 2 ;;
    --models=*|--jobs=*) SETUP_ARGS+=("$1"); shift ;;
    --dry-run) DRY_RUN=1; SETUP_ARGS+=("$1"); shift ;;
    --skip-weights|--with-cron|--with-kernels|--yes|-y|--allow-unverified) SETUP_ARGS+=("$1"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "runpod_setup.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$DATAROOT" ] && SETUP_ARGS+=(--dataroot "$DATAROOT")

REPO="$(cd "$(dirname "$0")" && pwd)"
if [ -n "${ONLINEMAP_HOME:-}" ]; then HOME_DIR="$ONLINEMAP_HOME"
elif [ -d /workspace ]; then HOME_DIR=/workspace/onlinemap
else HOME_DIR="$HOME/.onlinemap"; fi
export ONLINEMAP_HOME="$HOME_DIR"
VENV="${ONLINEMAP_VENV:-$HOME_DIR/venv}"
LOG="$HOME_DIR/logs/setup/venv.log"
if [ "$DRY_RUN" = 0 ]; then mkdir -p "$HOME_DIR/logs/setup"; fi
step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "setup failed: $1" >&2
  if [ -f "$LOG" ]; then echo "last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2 || true; fi
  echo "retry: $0 (the driver venv stage reruns; later stages are skipped when their checks pass)" >&2
  exit "${2:-1}"
}

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

# torch pinned: unpinned pip picks whatever is newest and pulls GBs of CUDA wheels.
TORCH_SPEC="${ONLINEMAP_TORCH_SPEC:-torch==2.13.0}"
venv_ready() {   # onlinemap (from this checkout), torch and nuscenes import: one interpreter start
  [ -x "$VENV/bin/onlinemap" ] && [ "$("$VENV/bin/python" -c 'import os, onlinemap, torch, nuscenes
print(os.path.dirname(os.path.dirname(onlinemap.__file__)))' 2>/dev/null)" = "$REPO" ]
}
step "driver venv: $VENV"
if venv_ready; then
  echo "   ready (skipped)"
elif [ "$DRY_RUN" = 1 ]; then
  echo "   would run: $PY -m venv $VENV; pip install $TORCH_SPEC; pip install -e ${REPO}[torch]"
else
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || fail "cannot create a venv (apt-get install python3-venv)" 3
  echo "   installing $TORCH_SPEC and onlinemap (a few minutes the first time; log $LOG)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check "$TORCH_SPEC" >>"$LOG" 2>&1 || fail "pip install $TORCH_SPEC failed"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -e "${REPO}[torch]" >>"$LOG" 2>&1 || fail "pip install -e $REPO failed"
  "$VENV/bin/python" -c "import onlinemap, torch, nuscenes" >>"$LOG" 2>&1 || fail "the driver venv does not import onlinemap/torch/nuscenes"
  echo "   ok"
fi

if venv_ready; then
  OM=("$VENV/bin/onlinemap")
elif [ "$DRY_RUN" = 1 ] && PYTHONPATH="$REPO" "$PY" -c "import onlinemap.cli, click, psutil" 2>/dev/null; then
  OM=(env "PYTHONPATH=$REPO" "$PY" -m onlinemap)       # dry run before the venv exists: plan with this Python
else
  echo "   (dry run: the stages' plan needs the driver venv; run without --dry-run to create it)"
  exit 0
fi

step "setup stages: onlinemap setup run ${SETUP_ARGS[*]}"
rc=0
"${OM[@]}" setup run "${SETUP_ARGS[@]}" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "setup: some stages failed (above: each failure's log tail and the command that retries it); rerun $0 to resume" >&2
  exit "$rc"
fi
[ "$DRY_RUN" = 1 ] && exit 0

step "models"
"${OM[@]}" models || true
cat <<TXT

Done. To use onlinemap in this shell:
    source $VENV/bin/activate
    onlinemap test --model reference
    onlinemap bench --models reference --samples 20
    onlinemap results
    onlinemap doctor             # replays every setup check; the command that fixes each failure
TXT
