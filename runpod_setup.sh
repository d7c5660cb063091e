#!/usr/bin/env bash
# onlinemap one-command setup: driver venv, then every setup stage (`onlinemap setup run`).
#
# Everything goes under ONLINEMAP_HOME (/workspace/onlinemap-home on a RunPod pod: the volume that
# survives a stop, next to the clone, never inside it; ~/.onlinemap elsewhere). Re-running skips every stage whose check passes, and an
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
#        ONLINEMAP_VOLUME (the pod volume, default /workspace), PYTHON (interpreter to build the venv from)
# Runs from any folder (`cd /workspace && ./onlinemap/runpod_setup.sh` too) and with HOME unset.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
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

REPO="$(cd "$(dirname "$0")" && pwd -P)"   # -P: the real path, as Python reports it
step() { printf '\n== %s\n' "$*"; }
LOG=""
fail() {
  echo "setup failed: $1" >&2
  if [ -n "$LOG" ] && [ -f "$LOG" ]; then echo "last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2 || true; fi
  echo "retry: $0 (the driver venv stage reruns; later stages are skipped when their checks pass)" >&2
  exit "${2:-1}"
}

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

# HOME unset or empty (cron, `env -i`, some containers): the account's home, which pip and micromamba need too
if [ -z "${HOME:-}" ]; then
  HOME="$("$PY" -I -c 'import os, pwd; print(pwd.getpwuid(os.getuid()).pw_dir)' 2>/dev/null || true)"
  [ -n "$HOME" ] || fail "HOME is unset and this user has no home directory; export HOME=/root (or ONLINEMAP_HOME) and re-run" 2
  export HOME
fi
# one rule for the home, in Python (onlinemap/paths.py, standard library only; -I: cwd never shadows it)
HOME_DIR="$("$PY" -I "$REPO/onlinemap/paths.py" home)" || exit 2
export ONLINEMAP_HOME="$HOME_DIR"
VENV="${ONLINEMAP_VENV:-$HOME_DIR/venv}"
LOG="$HOME_DIR/logs/setup/venv.log"
if [ "$DRY_RUN" = 0 ]; then mkdir -p "$HOME_DIR/logs/setup"; fi

step "onlinemap home: $HOME_DIR"
VOLUME="${ONLINEMAP_VOLUME:-/workspace}"
[ -d "$VOLUME" ] || echo "   (no $VOLUME here: not a RunPod pod, using $HOME_DIR)"
old_data=()
for d in venv results repos weights pkgs bin setup logs data; do [ -e "$REPO/$d" ] && old_data+=("$REPO/$d"); done
if [ "${#old_data[@]}" -gt 0 ]; then
  echo "   note: the clone holds data of an older onlinemap (its home used to default to the clone's path):"
  echo "   ${old_data[*]}; move results with: mv $REPO/results $HOME_DIR/ (the rest is rebuilt; then delete it)"
fi

# torch pinned: unpinned pip picks whatever is newest and pulls GBs of CUDA wheels.
TORCH_SPEC="${ONLINEMAP_TORCH_SPEC:-torch==2.13.0}"
# The check runs from / with -I (no cwd, no PYTHONPATH on sys.path): `cd /workspace` holds a folder
# `onlinemap` (the clone) that Python would otherwise import as an empty namespace package.
venv_ready() {   # onlinemap (from this checkout, version set), torch and nuscenes import: one interpreter start
  [ -x "$VENV/bin/onlinemap" ] && [ "$(cd / && "$VENV/bin/python" -I -c 'import os, onlinemap, torch, nuscenes
print(os.path.dirname(os.path.dirname(onlinemap.__file__)), onlinemap.__version__)' 2>/dev/null | cut -d" " -f1)" = "$REPO" ]
}
step "driver venv: $VENV"
if venv_ready; then
  echo "   ready (skipped)"
elif [ "$DRY_RUN" = 1 ]; then
  echo "   would run: $PY -m venv $VENV; pip install $TORCH_SPEC; pip install -e ${REPO}[torch,notebook] (editable_mode=compat)"
else
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || fail "cannot create a venv (apt-get install python3-venv)" 3
  echo "   installing $TORCH_SPEC and onlinemap (a few minutes the first time; log $LOG)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check "$TORCH_SPEC" >>"$LOG" 2>&1 || fail "pip install $TORCH_SPEC failed"
  # compat editable mode: a .pth puts the clone on sys.path, so `import onlinemap` finds the real package even
  # where the cwd holds the clone folder (a Jupyter kernel in /workspace); the default mode's import hook
  # loses to that namespace folder. It needs pip >= 21.3 (config settings); the notebook extra gives a kernel.
  "$VENV/bin/python" -m pip install --disable-pip-version-check "pip>=23.1" >>"$LOG" 2>&1 || fail "pip upgrade failed"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --config-settings editable_mode=compat \
    -e "${REPO}[torch,notebook]" >>"$LOG" 2>&1 || fail "pip install -e $REPO failed"
  venv_ready || fail "the driver venv does not import onlinemap (from $REPO), torch and nuscenes"
  echo "   ok"
fi

if venv_ready; then
  OM=("$VENV/bin/onlinemap")
elif [ "$DRY_RUN" = 1 ] && (cd / && PYTHONPATH="$REPO" "$PY" -c "import onlinemap.cli, click, psutil") 2>/dev/null; then
  OM=(env "PYTHONPATH=$REPO" "$PY" -m onlinemap)       # dry run before the venv exists: plan with this Python
elif [ "$DRY_RUN" = 1 ]; then
  echo "   (dry run: the stages' plan needs the driver venv; run without --dry-run to create it)"
  exit 0
else
  fail "the driver venv at $VENV is not usable (see above)"
fi

# RunPod serves Jupyter on /workspace: register this venv as a kernel (the kernelspec lives under ~/.local,
# which a pod stop wipes, so this runs every time; `ipykernel install` replaces its own spec)
step "Jupyter kernel for the driver venv: onlinemap-driver"
if [ "$DRY_RUN" = 1 ]; then
  echo "   would run: $VENV/bin/python -m ipykernel install --user --name onlinemap-driver"
elif (cd / && "$VENV/bin/python" -I -c "import ipykernel, ipywidgets") 2>/dev/null; then
  (cd / && "$VENV/bin/python" -I -m ipykernel install --user --name onlinemap-driver \
    --display-name "onlinemap (driver venv)") >>"$LOG" 2>&1 && echo "   ok" \
    || echo "   warning: ipykernel install failed (see $LOG); notebooks can still use this venv's python"
else
  echo "   skipped: ipykernel/ipywidgets are not in $VENV (pip install -e '${REPO}[notebook]')"
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
In Jupyter: pick the kernel "onlinemap (driver venv)"; see docs/notebooks/quickstart.ipynb
TXT
