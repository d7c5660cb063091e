"""compare: run selection, one flat row per run, comparison_summary.json and CSV, eval + results columns."""
from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import run_cli


def test_compare_latest_writes_one_entry_per_model(home_env, tmp_path):
    from onlinemap import api
    from onlinemap.report.compare import ROW_KEYS

    result = api.compare(latest=True, models="all", out=tmp_path / "cmp")
    summary = json.loads((tmp_path / "cmp" / "comparison_summary.json").read_text())
    assert summary["schema_version"] == 1
    runs = summary["runs"]
    assert sorted(r["model"] for r in runs) == ["crashref", "reference"]
    for run in runs:
        assert list(run) == ROW_KEYS
        assert run["status"] == "ok" and run["measured"] == 3
        assert run["p50_ms"] is not None and run["p90_ms"] >= run["p50_ms"] and run["fps"] > 0
        # CPU runs: the GPU numbers are null with a reason, never 0; host RSS is measured
        assert run["torch_max_allocated_mb"] is None and run["torch_max_allocated_reason"]
        assert run["nvml_device_delta_peak_mb"] is None and "cpu" in run["nvml_device_delta_peak_reason"]
        assert run["host_rss_peak_mb"] > 0 and run["host_rss_peak_reason"] is None
        assert run["has_metrics"] and run["eval_samples"] == 4 and run["det_NDS"] is not None
        assert run["env_kind"] == "host" and run["gpu"] is None
    ref = next(r for r in runs if r["model"] == "reference")
    assert ref["map_mAP"] is not None and ref["plan_L2_3s"] is None   # no plan output: n/a, not 0
    crash = next(r for r in runs if r["model"] == "crashref")
    assert crash["map_mAP"] is None
    parsed = list(csv.DictReader(io.StringIO((tmp_path / "cmp" / "comparison.csv").read_text())))
    assert [r["run_id"] for r in parsed] == [r["run_id"] for r in runs] == [r["run_id"] for r in result["rows"]]
    assert parsed[0]["torch_max_allocated_mb"] == ""   # null -> empty cell


def test_select_runs_by_prefix_model_and_errors(home_env):
    from onlinemap.errors import ResultsError, UsageError
    from onlinemap.report.compare import select_runs

    crash = home_env["crash"]
    assert select_runs([crash.name[:-2]]) == [crash]
    assert select_runs(models="CrashRef") == [crash]          # --models alone, case-insensitive
    assert select_runs(latest=True, models="crashref,nosuch") == [crash]   # unknown model: warned, skipped
    assert [d.name.split("-")[2] for d in select_runs(latest=True)] == ["crashref", "reference"]
    with pytest.raises(UsageError):
        select_runs()
    with pytest.raises(UsageError):
        select_runs([crash.name], latest=True)
    with pytest.raises(ResultsError):
        select_runs(latest=True, models="nosuch")


def test_cli_compare_csv_json_and_default_out(home_env):
    reports = home_env["home"] / "reports"
    before = sorted(reports.iterdir()) if reports.exists() else []
    proc = run_cli("compare", "--latest", "--models", "all", "--csv", check=True)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert sorted(r["model"] for r in rows) == ["crashref", "reference"]
    assert "wrote" not in proc.stderr                                # printing never writes
    assert (sorted(reports.iterdir()) if reports.exists() else []) == before
    proc = run_cli("compare", home_env["crash"].name, "--json", check=True)
    assert [r["model"] for r in json.loads(proc.stdout)] == ["crashref"]
    proc = run_cli("compare", home_env["crash"].name, home_env["ref"].name, check=True)
    assert "n/a (device is cpu)" in proc.stdout and "NDS" in proc.stdout and "host RSS" in proc.stdout


def test_cli_eval_and_results_columns(home_env):
    proc = run_cli("eval", home_env["ref"].name[:-1], "--json", check=True)
    [row] = json.loads(proc.stdout)
    assert row["model"] == "reference" and row["error"] is None
    assert row["det_NDS"] == row["metrics"]["detection"]["NDS"] and row["map_mAP"] is not None
    proc = run_cli("eval", "--latest", check=True)
    assert "det mAP" in proc.stdout and "crashref" in proc.stdout and "reference" in proc.stdout
    proc = run_cli("results", check=True)
    header = proc.stdout.splitlines()[0]
    assert "mAP" in header and "NDS" in header and "map mAP" in header

    from onlinemap import api

    rows = {r["run_id"]: r for r in api.list_runs()}
    assert rows[home_env["ref"].name]["det_NDS"] is not None
    assert rows[home_env["crash"].name]["map_mAP"] is None


def test_eval_reports_a_run_that_cannot_be_evaluated(home_env, tmp_path):
    """A run with no predictions: the others are still evaluated, the exit code says it failed."""
    import shutil

    broken = home_env["home"] / "results" / (home_env["crash"].name[:-6] + "zzzzzz")
    shutil.copytree(home_env["crash"], broken)
    (broken / "predictions.jsonl").write_text("")
    (broken / "metrics.json").unlink()
    record = json.loads((broken / "run.json").read_text())
    record["run_id"] = broken.name
    (broken / "run.json").write_text(json.dumps(record))
    try:
        proc = run_cli("eval", broken.name, home_env["crash"].name)
        assert proc.returncode == 4, proc.stderr   # ResultsError: a results file is unusable
        assert f"error: {broken.name}: no valid predictions" in proc.stderr
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("crashref")]
        assert len(lines) == 2 and lines[0].endswith("error") and lines[1].endswith("ok")
    finally:
        shutil.rmtree(broken)


def test_compare_of_a_crashed_run_shows_the_summary_from_disk(home_env, tmp_path, monkeypatch):
    """A run whose driver died (run.json still `running`, no summary, the pid gone): `compare RUN_ID`
    shows the figures computed from its samples on disk, as `results` does, and the status `crashed`."""
    import shutil
    import subprocess
    import sys

    from onlinemap.runs.store import driver_identity

    home = tmp_path / "home"
    crashed = home / "results" / home_env["ref"].name
    shutil.copytree(home_env["ref"], crashed)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = json.loads((crashed / "run.json").read_text())
    for key in ("summary", "exit_code", "finished"):    # what only a driver that finished writes
        record.pop(key, None)
    record.update(status="running", driver={**driver_identity(), "pid": dead.pid})
    (crashed / "run.json").write_text(json.dumps(record))
    monkeypatch.setenv("ONLINEMAP_HOME", str(home))

    proc = run_cli("compare", crashed.name, "--json", check=True)
    [row] = json.loads(proc.stdout)
    assert row["status"] == "crashed"
    assert row["measured"] == 3 and row["p50_ms"] is not None and row["fps"] > 0
    assert row["host_rss_peak_mb"] is None and "driver died" in row["host_rss_peak_reason"]
    listed = json.loads(run_cli("results", "--json", check=True).stdout)
    assert [(r["status"], r["measured"], r["p50_ms"]) for r in listed] == [("crashed", 3, row["p50_ms"])]
    table = run_cli("compare", crashed.name, check=True).stdout
    assert "crashed" in table and "n/a (the driver died: its telemetry was lost)" in table
    assert json.loads((crashed / "run.json").read_text())["status"] == "running"   # readers never rewrite it
