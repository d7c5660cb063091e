"""The fault matrix at the driver level, each row a real subprocess: one readable line, a documented
exit code, every finished sample kept, no process left holding the device.

Rows: model crash mid-run, exception, out of memory, hang (inactivity timeout, grandchild killed),
wall-clock timeout, SIGINT / SIGTERM to the driver (SIGKILL and SIGHUP: test_driver_death.py), a full disk (real tmpfs) and an
injected write failure, 20 concurrent drivers, a corrupt run in the listing, env info that does not
match its prefix, a corrupt lock file, a wrong weight sha256, the same setup twice at once.
The env machinery's own unit tests (tests/environments/) cover these last rows module by module.

No budget here includes importing torch or loading a model: rows with a short timeout use the
torch-free crashref pack (it loads in Python's start-up time); rows that need torch wait on an event
(the first samples on disk) with a generous deadline, never on a guess of how long loading takes.
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
from tests.reliability.signals import default_signals


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
    outs = [p.communicate(timeout=1200) for p in procs]   # 20 drivers on 2 loaded cores: generous
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


def test_a_crashing_model_fails_and_keeps_its_samples(om_home):
    proc = run_cli("test", "--model", "crashref", "-n", "6", "--warmup", "1", "--device", "cpu",
                   env={"ONLINEMAP_TEST_CRASH_AT": "4"})
    assert proc.returncode == 1
    run = only_run_dir(om_home)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "exited with code 9" in record["error"]["message"]
    assert len(read_jsonl(run / "samples.jsonl")) == 4
    assert "exited with code 9" in proc.stdout + proc.stderr


def test_inactivity_timeout_kills_a_hung_model_and_its_grandchild(om_home, tmp_path):
    pid_file = tmp_path / "gc.pid"
    proc = run_cli("test", "--model", "crashref", "-n", "5", "--warmup", "0", "--device", "cpu",
                   "--inactivity-timeout", "3",
                   env={"ONLINEMAP_TEST_HANG_AT": "2", "ONLINEMAP_TEST_CHILD_PID_FILE": str(pid_file)}, timeout=300)
    assert proc.returncode == 124
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    assert record["status"] == "timeout" and "inactivity" in record["error"]["message"]
    assert len(read_jsonl(only_run_dir(om_home) / "samples.jsonl")) == 2
    time.sleep(0.5)
    gc = int(pid_file.read_text())
    assert not psutil.pid_exists(gc) or psutil.Process(gc).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("sig, status, code", [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "interrupted", 143)])
def test_interrupting_a_bench_keeps_samples_and_leaves_no_child(om_home, sig, status, code):
    env = dict(os.environ, ONLINEMAP_TEST_SLEEP_S="0.3")
    driver = subprocess.Popen([sys.executable, "-m", "onlinemap", "bench", "--models", "slowref,reference",
                               "--samples", "30", "--warmup", "1", "--device", "cpu"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=default_signals)
    results = om_home / "results"
    deadline = time.time() + 300     # waits on the event (3 samples on disk), however slow loading is
    run = None
    while time.time() < deadline:
        runs = list(results.glob("*/samples.jsonl")) if results.exists() else []
        if runs and len(read_jsonl(runs[0])) >= 3:
            run = runs[0].parent
            break
        time.sleep(0.1)
    assert run is not None, "the bench never produced samples"
    worker_pid = read_jsonl(run / "events.jsonl")[0]["pid"]
    driver.send_signal(sig)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == code, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == status and record["exit_code"] == code
    kept = read_jsonl(run / "samples.jsonl")
    assert len(kept) >= 3 and record["summary"]["samples"]["ok"] == len(kept)
    assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE
    assert len(list(results.iterdir())) == 1, "the bench must stop, not go on to the next model"


def test_wall_clock_timeout_kills_the_run_and_keeps_samples(om_home):
    # torch-free crashref: the 6 s budget holds Python's start-up and 0.5 s samples, no torch import
    proc = run_cli("test", "--model", "crashref", "-n", "30", "--warmup", "0", "--device", "cpu", "--timeout", "6",
                   env={"ONLINEMAP_TEST_CRASHREF_SLEEP_S": "0.5"}, timeout=300)
    assert proc.returncode == 124
    run = only_run_dir(om_home)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "timeout" and "wall-clock timeout" in record["error"]["message"]
    kept = read_jsonl(run / "samples.jsonl")
    assert 1 <= len(kept) < 30 and record["summary"]["samples"]["ok"] == len(kept)
    worker = read_jsonl(run / "events.jsonl")[0]["pid"]
    assert _gone(worker)


def test_the_same_setup_twice_at_once_is_refused_naming_the_holder(om_home):
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time\nfrom onlinemap.setup.plan import setup_lock\n"
                               "with setup_lock():\n    print('held', flush=True)\n    time.sleep(60)\n"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_cli("setup", "run", "--models", "reference", "--yes")
        assert proc.returncode == 75
        assert f"another onlinemap setup is running (pid {holder.pid}" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


def _conda_pack(root: Path, *, checkpoint_url: str = "https://example.invalid/toy.pth", sha256: str = "") -> Path:
    pack = root / "Toy"
    pack.mkdir(parents=True)
    (pack / "model.toml").write_text(f"""schema_version = 1
name = "Toy"
task = "detection"
outputs = ["detections_3d"]
env_kind = "conda"
[repo]
url = "https://example.invalid/toy"
commit = "0123456789abcdef0123456789abcdef01234567"
[config]
default = "configs/toy.py"
[checkpoint]
file = "toy.pth"
url = "{checkpoint_url}"
sha256 = "{sha256}"
""")
    (pack / "environment.yml").write_text("name: toy\nchannels: [conda-forge]\ndependencies:\n  - python=3.8\n")
    (pack / "demo.py").write_text("class Adapter(object):\n    pass\n")
    return pack


def test_env_info_that_does_not_match_its_prefix_is_not_used(om_home, tmp_path):
    from onlinemap.environments.base import ENV_INFO_FILE, env_prefix
    from onlinemap.registry.spec import load_model_spec

    pack = _conda_pack(tmp_path / "envs")
    prefix = env_prefix(load_model_spec(pack))
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    (prefix / ENV_INFO_FILE).write_text(json.dumps({"model": "Toy", "lock_hash": "000000000000", "manager": "micromamba"}))
    proc = run_cli("test", "--model", "Toy", "--device", "cpu", env={"ONLINEMAP_ENVS": str(tmp_path / "envs")})
    assert proc.returncode == 3 and "does not match its lock" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (om_home / "results").exists()


def test_a_corrupt_lock_file_is_one_line_and_builds_nothing(om_home, tmp_path):
    pack = _conda_pack(tmp_path / "envs")
    (pack / "conda-lock.yml").write_text("version: 1\npackage: [unterminated\n")
    proc = run_cli("env", "create", "Toy", "--skip-weights", env={"ONLINEMAP_ENVS": str(tmp_path / "envs")})
    assert proc.returncode == 4 and "conda-lock.yml" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    envs = om_home / "envs"
    assert not envs.exists() or not [p for p in envs.iterdir() if p.name.startswith("Toy-")]


def test_a_weight_file_with_the_wrong_sha256_is_discarded(om_home, tmp_path):
    served = tmp_path / "served" / "toy.pth"
    served.parent.mkdir()
    served.write_bytes(b"not the checkpoint you pinned" * 100)
    _conda_pack(tmp_path / "envs", checkpoint_url=served.as_uri(), sha256="ab" * 32)
    proc = run_cli("setup", "stage", "weights", "--model", "Toy", "--yes", env={"ONLINEMAP_ENVS": str(tmp_path / "envs")})
    assert proc.returncode != 0 and "does not match the pinned" in proc.stdout + proc.stderr
    assert "the download was deleted and not used" in proc.stdout + proc.stderr
    weights = om_home / "weights"
    assert not (weights / "toy.pth").exists()
    assert not [p for p in weights.glob("toy.pth*")] if weights.exists() else True
