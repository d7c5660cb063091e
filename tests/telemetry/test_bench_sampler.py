"""benchmarks/bench_sampler.py runs, and every sampler it measures really ticked.

Its in-script constant NVML once lacked the calls a tick now makes (clock event reasons, energy):
the sampler thread died on its first tick and the row printed a cost of ~0 as if measured.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_row_ticks():
    out = subprocess.run([sys.executable, "benchmarks/bench_sampler.py", "--duration", "0.3",
                          "--host-only-period", "0.05", "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r["config"]: r for r in json.loads(out.stdout)}
    for name in ("cpu (host tree only)", "const-nvml (no driver cost)"):
        assert rows[name]["samples"] >= 3 and rows[name]["sampler_cpu_s"] > 0, rows[name]
    assert rows["const-nvml (no driver cost)"]["samples"] > rows["cpu (host tree only)"]["samples"]
