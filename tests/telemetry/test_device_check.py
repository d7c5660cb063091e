"""The prepared GPU check runs end to end on the CPU (``DEVICE_CHECK_DEVICE=cpu``), and says why it refuses.

scripts/device-check.sh and benchmarks/bench_telemetry_cost.py exist for a lent GPU machine, where
device time is short: a script that first breaks there wastes the loan. Here every step runs with a
CPU device and tiny counts: this checks that it works and what it writes, not what it measures.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_the_telemetry_benchmark_runs_both_sides_and_writes_its_summary(tmp_path):
    out = subprocess.run([sys.executable, "benchmarks/bench_telemetry_cost.py", "--device", "cpu", "--samples", "3",
                          "--reps", "2", "--warmup", "1", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "forward p50 ratio, telemetry on / off, paired:" in out.stdout
    assert "GPU: none (device is cpu)" in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["ratio_on_off_forward_p50"]) == 2 and all(r > 0 for r in summary["ratio_on_off_forward_p50"])
    on, off = summary["sides"]["on"], summary["sides"]["off"]
    assert on[-1]["telemetry"]["gpu_state_reason"] == "device is cpu" and off[-1]["telemetry"] is None
    runs = {p: json.loads((tmp_path / p).read_text()) for p in ("run-telemetry-on.json", "run-telemetry-off.json")}
    assert runs["run-telemetry-on.json"]["settings"]["telemetry"] is True
    assert runs["run-telemetry-off.json"]["settings"]["telemetry"] is False


def test_the_telemetry_benchmark_refuses_a_malformed_option_in_one_line():
    out = subprocess.run([sys.executable, "benchmarks/bench_telemetry_cost.py", "--option", "image_height"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "expected KEY=VALUE" in out.stderr and "Traceback" not in out.stderr


def test_the_device_check_script_runs_every_step_on_the_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, DEVICE_CHECK_DEVICE="cpu", DEVICE_CHECK_SAMPLES="3",
               DEVICE_CHECK_REPS="1", OUT=str(tmp_path),
               DEVICE_CHECK_WHEELS=str(tmp_path / "no-wheels"))   # this interpreter has the driver's deps
    out = subprocess.run(["bash", "scripts/device-check.sh", "run"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=280)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = (tmp_path / "log.txt").read_text()
    for heading in ("== nvidia-smi, before", "== the GPU-marked tests", "default size", "camera-sized input",
                    "== nvidia-smi, after"):
        assert heading in log, heading
    # what comes back from the device tool: at most 8 files, at most 2 folders down
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.relative_to(tmp_path).parts) <= 3 for p in files), files
    for size in ("default", "camera"):
        assert json.loads((tmp_path / size / "summary.json").read_text())["args"]["device"] == "cpu"


@pytest.mark.skipif(_cuda(), reason="this machine has a CUDA GPU: the refusal is for machines without one")
def test_the_device_check_script_refuses_a_machine_without_a_gpu_in_one_line(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), DEVICE_CHECK_WHEELS=str(tmp_path / "no-wheels"))
    env.pop("DEVICE_CHECK_DEVICE", None)
    out = subprocess.run(["bash", "scripts/device-check.sh", "run"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("device-check: torch sees no CUDA GPU here")
    bad = subprocess.run(["bash", "scripts/device-check.sh", "bogus"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "usage:" in bad.stderr
