"""The fault matrix at the driver level, each row a real subprocess: one readable line, a documented
exit code, every finished sample kept, no process left holding the device.

Rows covered elsewhere, with real subprocesses too: a model crashing mid-run, hanging (inactivity
timeout, grandchild killed), Ctrl-C and SIGTERM to a bench (tests/cli/test_cli.py); corrupt lock
files, env info that does not match its prefix, wrong weight sha256 (tests/environments/).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, only_run_dir, read_jsonl, run_cli


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_out_of_memory_is_named_with_a_memory_hint(om_home):
    proc = run_cli("test", "--model", "crashref", "-n", "5", "--warmup", "0", "--device", "cpu",
                   env={"ONLINEMAP_TEST_CRASH_AT": "2", "ONLINEMAP_TEST_OOM": "1"})
    assert proc.returncode == 1
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    assert record["status"] == "failed" and "out of memory" in record["error"]["message"]
    assert "GPU with more memory" in record["error"]["hint"]
    assert len([s for s in read_jsonl(only_run_dir(om_home) / "samples.jsonl") if s["ok"]]) == 2


def test_a_prediction_that_is_not_json_fails_at_the_write(om_home):
    """An injected write failure: a NaN score cannot be written as JSON."""
    proc = run_cli("test", "--model", "crashref", "-n", "4", "--warmup", "0", "--device", "cpu",
                   env={"ONLINEMAP_TEST_NAN_AT": "1"})
    assert proc.returncode == 1
    run = only_run_dir(om_home)
    record = json.loads((run / "run.json").read_text())
    assert record["error"]["stage"] == "write" and "not JSON compliant" in record["error"]["message"]
    assert len(read_jsonl(run / "samples.jsonl")) == 1 and len(read_jsonl(run / "predictions.jsonl")) == 1


@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB tmpfs for the results (needs root and mount rights; skipped with the reason otherwise).

    Sized so that run.json's reserve (256 KiB) plus ~15 KiB per reference prediction fills it mid-run."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("cannot mount a tmpfs here (not root or no mount): the injected write failure covers this row")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): the injected write failure covers this row")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_keeps_finished_samples_and_a_final_status(om_home, tiny_disk):
    proc = run_cli("test", "--model", "reference", "-n", "35", "--warmup", "0", "--device", "cpu",
                   env={"ONLINEMAP_RESULTS": str(tiny_disk)})
    assert proc.returncode == 1
    assert "No space left on device" in proc.stdout + proc.stderr and "disk is full" in proc.stdout + proc.stderr
    run = next(p for p in tiny_disk.iterdir() if p.is_dir())
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["error"]["stage"] == "write"
    kept = read_jsonl(run / "samples.jsonl")
    assert 5 < len(kept) < 35 and record["summary"]["samples"]["ok"] == len(kept)


def test_a_driver_killed_with_sigkill_is_reported_as_crashed(om_home):
    env = dict(os.environ, ONLINEMAP_TEST_SLEEP_S="0.2")
    driver = subprocess.Popen([sys.executable, "-m", "onlinemap", "test", "--model", "slowref", "-n", "30",
                               "--warmup", "0", "--device", "cpu"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    run = None
    while time.time() < deadline:
        found = list((om_home / "results").glob("*/samples.jsonl")) if (om_home / "results").exists() else []
        if found and len(read_jsonl(found[0])) >= 3:
            run = found[0].parent
            break
        time.sleep(0.1)
    assert run is not None
    worker = read_jsonl(run / "events.jsonl")[0]["pid"]
    driver.kill()
    driver.wait()
    deadline = time.time() + 10
    while time.time() < deadline and not _gone(worker):
        time.sleep(0.1)
    assert _gone(worker), "the worker outlived its SIGKILLed driver"
    rows = json.loads(run_cli("results", "--json", check=True).stdout)
    assert rows[0]["status"] == "crashed"
    assert len(read_jsonl(run / "samples.jsonl")) >= 3
    assert json.loads((run / "run.json").read_text())["status"] == "running"  # the file is never rewritten by readers


def test_a_corrupt_run_does_not_break_the_listing(om_home):
    assert run_cli("test", "--model", "crashref", "-n", "1", "--warmup", "0", "--device", "cpu").returncode == 0
    bad = om_home / "results" / "20990101-000000-x-000000"
    bad.mkdir()
    (bad / "run.json").write_text('{"run_id": "20990101-000000-x-000000", "model": "x", "sta')
    proc = run_cli("results", "--json")
    assert proc.returncode == 0 and len(json.loads(proc.stdout)) == 1
    assert "skipping 20990101-000000-x-000000" in proc.stderr


def test_twenty_concurrent_benches_write_one_results_directory(om_home):
    """Load test: 20 drivers at once (CLI, notebook and cron look the same to the store)."""
    procs = [subprocess.Popen([sys.executable, "-m", "onlinemap", "bench", "--models", "crashref", "--samples", "3",
                               "--warmup", "1", "--device", "cpu", "--no-telemetry", "--json"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, ONLINEMAP_TEST_TAG=uuid.uuid4().hex))
             for _ in range(20)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-300:] for o, p in zip(outs, procs) if p.returncode]
    run_ids = {json.loads(out)["runs"][0]["run_id"] for out, _ in outs}
    assert len(run_ids) == 20
    rows = json.loads(run_cli("results", "--json", "--limit", "0", check=True).stdout)
    assert {r["run_id"] for r in rows} == run_ids and all(r["status"] == "ok" for r in rows)
    for rid in run_ids:
        run = om_home / "results" / rid
        samples = read_jsonl(run / "samples.jsonl")
        preds = read_jsonl(run / "predictions.jsonl")
        assert len(samples) == 4 and [p["sample_token"] for p in preds] == [s["sample_token"] for s in samples]
        assert json.loads((run / "run.json").read_text())["run_id"] == rid
