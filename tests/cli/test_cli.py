"""The CLI end to end, in real subprocesses: the README's main job, bad input, failures, Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from onlinemap.evaluation.predictions import validate_prediction
from tests.conftest import REPO, only_run_dir, read_jsonl, run_cli


def test_test_reference_writes_a_complete_run(om_home):
    proc = run_cli("test", "--model", "reference", "--samples", "4", "--warmup", "2", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "reference: ok" in proc.stdout and "p50" in proc.stdout and "results" in proc.stdout
    run = only_run_dir(om_home)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["exit_code"] == 0
    fwd = record["summary"]["latency_ms"]["forward"]
    assert fwd["count"] == 4 and all(fwd[k] > 0 for k in ("mean", "p50", "p90", "p95", "p99")) and fwd["fps"] > 0
    assert record["summary"]["model_load_s"] > 0 and record["summary"]["memory"]["host_rss_peak_mb"] > 0
    assert record["summary"]["memory"]["torch_max_allocated_mb"] is None
    assert record["summary"]["memory"]["torch_reason"] == "device is cpu"
    samples = read_jsonl(run / "samples.jsonl")
    assert len(samples) == 6 and sum(not s["warmup"] for s in samples) == 4
    assert all(s["forward_ms"] > 0 for s in samples)
    preds = read_jsonl(run / "predictions.jsonl")
    assert len(preds) == 6 and all(validate_prediction(p) == [] for p in preds)
    assert (run / "log.txt").exists() and (run / "events.jsonl").exists()


def test_json_output_and_results_listing(om_home):
    proc = run_cli("test", "--model", "reference", "-n", "1", "--warmup", "0", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "ok" and record["path"].startswith(str(om_home))
    listing = run_cli("results", "--json", check=True)
    rows = json.loads(listing.stdout)
    assert rows[0]["run_id"] == record["run_id"] and rows[0]["status"] == "ok"
    table = run_cli("results", "--model", "reference", check=True).stdout
    assert record["run_id"] in table


def test_unknown_model_is_one_line_naming_the_known_ones(om_home):
    proc = run_cli("test", "--model", "nosuch")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'nosuch'" in lines[0] and "reference" in lines[0]


def test_malformed_model_toml(om_home, tmp_path):
    pack = tmp_path / "envs" / "Broken"
    pack.mkdir(parents=True)
    (pack / "model.toml").write_text('schema_version = 1\nname = "Broken"\ntask = "map"\nenv_kind = "conda"\noutputs = [\n')
    (pack / "demo.py").write_text("")
    proc = run_cli("test", "--model", "Broken", env={"ONLINEMAP_ENVS": str(tmp_path / "envs")})
    assert proc.returncode == 4
    assert len(proc.stderr.strip().splitlines()) == 1 and "not valid TOML" in proc.stderr and "model.toml" in proc.stderr


def test_missing_dataroot(om_home, tmp_path):
    proc = run_cli("test", "--model", "reference", "--dataroot", str(tmp_path / "nowhere"), "--device", "cpu")
    assert proc.returncode == 3
    assert "does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (om_home / "results").exists() or not any((om_home / "results").iterdir())


def test_unknown_sample_token(om_home):
    proc = run_cli("test", "--model", "reference", "--sample-token", "deadbeef", "--device", "cpu")
    assert proc.returncode == 3 and "sample token 'deadbeef' is not in" in proc.stderr


def test_bad_device_and_counts_are_usage_errors(om_home):
    assert run_cli("test", "--model", "reference", "--device", "gpu0").returncode == 2
    assert run_cli("test", "--model", "reference", "--samples", "-3").returncode == 2
    assert run_cli("bench", "--models", "reference", "--samples", "0").returncode == 2


def test_invalid_predictions_fail_the_test(om_home):
    proc = run_cli("test", "--model", "badpred", "-n", "2", "--warmup", "0", "--device", "cpu")
    assert proc.returncode == 1
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    assert record["status"] == "failed" and "do not match the standard schema" in record["error"]["message"]
    assert "size/0" in record["error"]["message"]


def test_bench_runs_models_in_turn_and_reports_skips(om_home):
    proc = run_cli("bench", "--models", "reference,crashref", "--samples", "3", "--warmup", "1", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "reference" in proc.stdout and "crashref" in proc.stdout
    statuses = {r["model"]: r["status"] for r in json.loads(run_cli("results", "--json").stdout)}
    assert statuses == {"reference": "ok", "crashref": "ok"}


def test_models_lists_readiness(om_home):
    rows = json.loads(run_cli("models", "--json", check=True).stdout)
    ref = next(r for r in rows if r["name"] == "reference")
    assert ref["installed"] and ref["ready"] and ref["env_kind"] == "host"
    table = run_cli("models", check=True).stdout
    assert "reference" in table and "ready" in table


def test_cuda_without_a_gpu_is_refused_before_launch(om_home):
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU")
    except ImportError:
        pass
    proc = run_cli("test", "--model", "reference", "--device", "cuda:0")
    assert proc.returncode == 3 and "no usable NVIDIA GPU" in proc.stderr
    assert not (om_home / "results").exists() or not any((om_home / "results").iterdir())
