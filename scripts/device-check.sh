#!/usr/bin/env bash
# The GPU checks that cannot run on a machine without one, as one prepared call (issue 16).
#
#   scripts/device-check.sh wheels      here, where PyPI is reachable: download into .wheels-device/
#                                       the driver's dependencies that the GPU image lacks (its
#                                       python3 is 3.12 with torch, click, psutil, nvidia-ml-py,
#                                       pandas, numpy; not jsonschema, fastjsonschema, msgspec)
#   scripts/device-check.sh run [DIR]   on the GPU machine: install those wheels into a scratch
#                                       folder, then (1) nvidia-smi's own reading of the GPU's state,
#                                       (2) the GPU-marked tests, (3) benchmarks/bench_telemetry_cost.py
#                                       at the reference model's default size and at a camera-sized
#                                       input; everything is written to DIR (default: $OUT, the device
#                                       tool's folder that comes back, else /tmp/onlinemap-device-check)
#
# Through the device tool: `run` with command "bash scripts/device-check.sh run", carry
# [".wheels-device"], timeout_s 560 (it takes ~5 minutes on an H200, measured by nobody yet: the
# figure is an estimate from the CPU run's per-side cost). docs/measurement.md, section 4, says
# what each output means. PYTHON=... picks another interpreter (default python3);
# DEVICE_CHECK_DEVICE (default cuda:0; cpu runs the same steps without a GPU, as the suite does),
# DEVICE_CHECK_SAMPLES (200) and DEVICE_CHECK_REPS (5) change what the benchmark runs, and
# DEVICE_CHECK_WHEELS (.wheels-device) where the wheels are.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${DEVICE_CHECK_WHEELS:-.wheels-device}
PY=${PYTHON:-python3}
DEVICE=${DEVICE_CHECK_DEVICE:-cuda:0}
SAMPLES=${DEVICE_CHECK_SAMPLES:-200}
REPS=${DEVICE_CHECK_REPS:-5}
# what the driver needs beyond the GPU image (versions checked here with Python 3.12 and numpy 2)
DEVICE_WHEELS=(jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
               rpds-py==0.30.0 fastjsonschema==2.22.3 msgspec==0.20.0)

die() { echo "device-check: $*" >&2; exit 2; }

wheels() {
    grep -qxF "/$WHEELS/" .git/info/exclude 2>/dev/null || echo "/$WHEELS/" >> .git/info/exclude
    rm -rf "$WHEELS"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" "${DEVICE_WHEELS[@]}" || die "pip download failed (is PyPI reachable from here?)"
    local got=("$WHEELS"/*.whl)
    echo "device-check: ${#got[@]} wheels in $WHEELS ($(du -sh "$WHEELS" | cut -f1)); carry it"
}

run() {
    local out=${1:-${OUT:-/tmp/onlinemap-device-check}}
    mkdir -p "$out"
    if [ -d "$WHEELS" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/onlinemap-site "$WHEELS"/*.whl \
            || die "installing $WHEELS failed (its wheels are for CPython 3.12; $PY is $("$PY" -V 2>&1))"
        export PYTHONPATH=/tmp/onlinemap-site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    "$PY" -c "import click, psutil, pynvml, numpy, jsonschema, fastjsonschema, msgspec, yaml, tqdm, torch" \
        || die "a module the driver needs is missing (above); run 'scripts/device-check.sh wheels' where PyPI is reachable and carry $WHEELS"
    local timer=wall
    if [ "$DEVICE" != cpu ]; then
        "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
            || die "torch sees no CUDA GPU here (DEVICE_CHECK_DEVICE=cpu runs the same steps on the CPU)"
        timer=cuda-events
    fi
    local rc=0 log="$out/log.txt"
    : > "$log"
    {
        echo "== nvidia-smi, before"
        # long-standing field names only (an unknown one fails the whole query); the event
        # (throttle) reasons from -q, whose heading changed name across drivers
        nvidia-smi --query-gpu=name,uuid,driver_version,clocks.sm,clocks.mem,clocks.applications.graphics,clocks.applications.memory,power.draw,power.limit,temperature.gpu,persistence_mode,compute_mode,mig.mode.current,ecc.mode.current --format=csv || true
        nvidia-smi -q -d PERFORMANCE || true
    } 2>&1 | tee -a "$log"
    echo "== the GPU-marked tests" | tee -a "$log"
    "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/cli/test_gpu.py 2>&1 | tee -a "$log" || rc=1
    echo "== telemetry on/off, the reference model's default size" | tee -a "$log"
    "$PY" benchmarks/bench_telemetry_cost.py --device "$DEVICE" --timer $timer --samples "$SAMPLES" --reps "$REPS" \
        --out "$out/default" 2>&1 | tee -a "$log" || rc=1
    echo "== telemetry on/off, a camera-sized input (6 x 448 x 800, width 64)" | tee -a "$log"
    "$PY" benchmarks/bench_telemetry_cost.py --device "$DEVICE" --timer $timer --samples "$SAMPLES" --reps "$REPS" \
        --option image_height=448 --option image_width=800 --option width=64 \
        --out "$out/camera" 2>&1 | tee -a "$log" || rc=1
    {
        echo "== nvidia-smi, after"
        nvidia-smi --query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv || true
        nvidia-smi -q -d PERFORMANCE || true
    } 2>&1 | tee -a "$log"
    echo "device-check: done (exit $rc); $out holds log.txt and, per size, summary.json + one run.json per side"
    return $rc
}

case "${1:-}" in
    wheels) wheels ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/device-check.sh wheels | run [DIR]" >&2; exit 2 ;;
esac
