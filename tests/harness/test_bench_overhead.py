"""benchmarks/bench_overhead.py still runs end to end (its sides, the spin forward, the table).

The benchmark is where the overhead figures in docs/measurement.md come from; one that no longer
runs would leave them unreproducible. Three samples, one repetition: this checks that it works,
not what it measures.
"""
from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_the_overhead_benchmark_runs_every_side_with_a_spinning_forward():
    out = subprocess.run([sys.executable, "benchmarks/bench_overhead.py", "--forward-ms", "1", "--samples", "3",
                          "--reps", "1", "--wait", "spin"], cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "forward = spin 1 ms" in out.stdout
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\s+3 (bare|harness|telemetry)\s+([0-9.]+) ",
                                                        out.stdout, re.M)}
    assert set(rows) == {"bare", "harness", "telemetry"}, out.stdout
    assert all(float(v) >= 1.0 for v in rows.values())    # every interval holds at least the 1 ms forward
