"""The scheduler: models in parallel, one per device (CPU workers stand in for GPUs), Ctrl-C stops all."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from onlinemap.errors import UsageError
from onlinemap.scheduler import resolve_gpus
from tests.conftest import REPO, run_cli
from tests.reliability.signals import default_signals


def test_two_models_run_in_parallel_one_run_each(om_home, monkeypatch):
    import onlinemap as om

    # both models sleep 0.3 s per sample, so each run lasts >= 3 s after its load: the windows overlap
    # unless one thread starts more than 3 s late, which a loaded 2-core CI machine does not do
    monkeypatch.setenv("ONLINEMAP_TEST_SLEEP_S", "0.3")
    monkeypatch.setenv("ONLINEMAP_TEST_CRASHREF_SLEEP_S", "0.3")
    res = om.bench(["slowref", "crashref"], samples=10, warmup=0, gpus=["cpu", "cpu"], progress=False)
    assert res.ok and len(res) == 2 and not res.skipped
    assert sorted(o.record.model for o in res) == ["crashref", "slowref"]
    dirs = [p for p in (om_home / "results").iterdir() if not p.name.startswith(".")]
    assert len(dirs) == 2                                     # one run per model
    windows = []
    from datetime import datetime

    for o in res:      # each run's window: run.json written at start (created) .. at the end (finished)
        windows.append((datetime.fromisoformat(o.record.created), datetime.fromisoformat(o.record.finished)))
        assert o.record.settings["device"] == "cpu"
    (a0, a1), (b0, b1) = windows
    assert a0 < b1 and b0 < a1, f"the runs did not overlap: {windows}"


def test_gpus_naming_a_missing_gpu_is_a_usage_error(om_home):
    with pytest.raises(UsageError):
        resolve_gpus("0,7")
    with pytest.raises(UsageError):
        resolve_gpus("x")
    proc = run_cli("bench", "--models", "reference", "--gpus", "9", "-n", "1")
    assert proc.returncode == 2 and "no GPU 9" in proc.stderr
    assert not (om_home / "results").exists()


@pytest.mark.parametrize("sig, code_", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_stops_every_worker_and_keeps_samples(om_home, tmp_path, sig, code_):
    """Ctrl-C, or SIGTERM from `timeout` / a pod shutdown: no model process may outlive the driver."""
    code = ("import onlinemap as om\n"
            "r = om.bench(['slowref', 'slowref'], samples=30, warmup=0, gpus=['cpu', 'cpu'], progress=False)\n"
            "print('DONE', r.interrupted, sorted(o.status for o in r), r.skipped, flush=True)\n"
            "print('CODES', sorted(o.exit_code for o in r), flush=True)\n")
    env = dict(os.environ, ONLINEMAP_TEST_SLEEP_S="0.3")
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    results = om_home / "results"
    deadline = time.monotonic() + 300   # waits on the event (samples streaming), however slow loading is
    while time.monotonic() < deadline:
        files = list(results.glob("*/samples.jsonl")) if results.is_dir() else []
        if len(files) == 2 and all(len(f.read_text().splitlines()) >= 2 for f in files):
            break
        time.sleep(0.1)
    else:
        driver.kill()
        pytest.fail("the two runs never both streamed samples: " + driver.communicate()[1][-2000:])
    driver.send_signal(sig)
    out, err = driver.communicate(timeout=60)
    assert "DONE True ['interrupted', 'interrupted'] []" in out, out + err
    assert f"CODES [{code_}, {code_}]" in out, out + err
    for f in results.glob("*/run.json"):
        rec = json.loads(f.read_text())
        assert rec["status"] == "interrupted" and rec["summary"]["samples"]["measured"] >= 2
        assert rec["exit_code"] == code_ and signal.Signals(sig).name in rec["error"]["message"]
    time.sleep(0.3)
    import psutil

    left = [p for p in psutil.process_iter(["cmdline"]) if any(str(results) in a for a in (p.info["cmdline"] or []))]
    assert not left
