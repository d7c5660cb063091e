"""An open-ended run that runs out of samples before its stop rule is met says so (run.json and the summary)."""
from __future__ import annotations

import json

from tests.conftest import only_run_dir, run_cli


def test_a_dataset_that_runs_out_before_min_samples_is_a_warning_not_a_silent_ok(om_home):
    # the synthetic dataset has 40 samples; --min-samples 100 cannot be met
    proc = run_cli("bench", "--models", "crashref", "--warmup", "2", "--min-samples", "100", "--min-duration", "0",
                   "--device", "cpu", "--no-telemetry")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    assert record["status"] == "ok" and record["summary"]["samples"]["stop_reason"] == "exhausted"
    [warning] = record["summary"]["warnings"]
    assert "ran out after 38 of --min-samples 100" in warning
    assert "ran out after 38" in proc.stderr


def test_a_run_that_meets_its_stop_rule_has_no_warning(om_home):
    proc = run_cli("test", "--model", "crashref", "-n", "3", "--warmup", "0", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["warnings"] == []
    proc = run_cli("bench", "--models", "crashref", "--warmup", "0", "--min-samples", "3", "--min-duration", "0",
                   "--device", "cpu", "--no-telemetry", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["runs"][0]["summary"]["warnings"] == []
