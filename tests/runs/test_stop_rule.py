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


def _bench(*extra: str, sleep_s: str):
    return run_cli("bench", "--models", "crashref", "--warmup", "1", "--min-samples", "10", "--min-duration", "0",
                   "--device", "cpu", "--no-telemetry", *extra, env={"ONLINEMAP_TEST_CRASHREF_SLEEP_S": sleep_s})


def test_ci_target_stops_once_the_median_interval_is_tight(om_home):
    # a 10 ms sleep varies by well under +-50 %: the rule stops at its first check, long before the
    # 39 measurable samples run out
    proc = _bench("--ci-target", "50", sleep_s="0.01")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    samples, fwd = record["summary"]["samples"], record["summary"]["latency_ms"]["forward"]
    assert samples["stop_reason"] == "ci_target" and 10 <= samples["measured"] < 39
    assert fwd["p50_ci"][0] <= fwd["p50"] <= fwd["p50_ci"][1] and fwd["p50_ci_rel_pct"] <= 50
    assert record["summary"]["warnings"] == []


def test_max_duration_ends_a_run_whose_interval_stays_wide_and_says_so(om_home):
    proc = _bench("--ci-target", "0.00001", "--max-duration", "0.3", sleep_s="0.02")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    assert record["summary"]["samples"]["stop_reason"] == "max_duration"
    assert record["summary"]["samples"]["measured"] < 39
    [warning] = record["summary"]["warnings"]
    assert "--max-duration 0.3 s passed" in warning and "--max-duration 0.3 s passed" in proc.stderr


def test_a_bad_ci_target_is_one_line_and_exit_2(om_home):
    proc = run_cli("bench", "--models", "crashref", "--ci-target", "nan", "--device", "cpu")
    assert proc.returncode == 2 and "not a finite number of percent" in proc.stderr
    assert not (om_home / "results").exists() or not any((om_home / "results").iterdir())


def test_predictions_are_validated_while_the_model_runs_not_re_read_after(om_home, monkeypatch):
    """The runner feeds each prediction line to the check as it arrives (issue 16); re-reading
    predictions.jsonl after the worker exited is gone, so a re-read that fails changes nothing."""
    from onlinemap import api
    from onlinemap.runs import summary

    def no_re_read(*a, **k):
        raise AssertionError("predictions.jsonl re-read after the run")

    monkeypatch.setattr(summary, "_validate_predictions", no_re_read)
    outcome = api.test("crashref", samples=6, warmup=1, device="cpu", echo=False, telemetry=False)
    assert outcome.status == "ok"
    assert outcome.record.summary["predictions"] == {"valid": 7, "invalid": 0, "first_error": None}
