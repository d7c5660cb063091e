"""The model process never outlives its driver: SIGKILL and SIGHUP of the driver during a LONG run.

Each run would take minutes (slowref sleeps 2 s a sample, 30 samples), so a test can only pass if
the worker is really stopped: it waits for the worker's first sample (the model is loaded, however
slow the machine), kills or hangs up the driver, and gives the worker 2 s to be gone. No budget
here includes importing torch or loading a model.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import REPO, read_jsonl, run_cli
from tests.reliability.signals import default_signals

LONG = {"ONLINEMAP_TEST_SLEEP_S": "2.0"}     # 30 samples x 2 s: the run cannot end inside a wait
EVENT_WAIT_S = 300                           # loading torch on a loaded 2-core machine: generous
GONE_WITHIN_S = 2.0


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def first_sample_run(results: Path) -> Path | None:
    for samples in results.glob("*/samples.jsonl") if results.is_dir() else ():
        if samples.read_bytes().count(b"\n") >= 1:
            return samples.parent
    return None


def start_long_driver(*args: str) -> tuple[subprocess.Popen, Path, int]:
    """A driver running slowref for minutes; returns it once the worker wrote its first sample."""
    driver = subprocess.Popen([sys.executable, "-m", "onlinemap", *args], cwd=REPO, env={**os.environ, **LONG},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_signals)
    results = Path(os.environ["ONLINEMAP_HOME"]) / "results"
    try:
        run = wait_until(lambda: first_sample_run(results) or (driver.poll() is not None and "exit"),
                         EVENT_WAIT_S, "the worker's first sample")
    except AssertionError:
        driver.kill()
        raise
    assert run != "exit", driver.stderr.read().decode()[-2000:]
    started = next(e for e in read_jsonl(run / "events.jsonl") if e["event"] == "started")
    return driver, run, int(started["pid"])


def assert_gone_soon(pid: int, since: float) -> None:
    while time.monotonic() - since < GONE_WITHIN_S and not gone(pid):
        time.sleep(0.02)
    assert gone(pid), f"the worker {pid} outlived its driver by more than {GONE_WITHIN_S} s"


def test_sigkill_of_the_driver_stops_the_worker_within_2s(om_home):
    driver, run, worker = start_long_driver("test", "--model", "slowref", "-n", "30", "--warmup", "0",
                                            "--device", "cpu")
    driver.kill()
    killed = time.monotonic()
    driver.wait()
    assert_gone_soon(worker, killed)
    kept = len(read_jsonl(run / "samples.jsonl"))
    assert 1 <= kept < 30
    assert json.loads((run / "run.json").read_text())["status"] == "running"   # readers never rewrite it
    rows = json.loads(run_cli("results", "--json", check=True).stdout)
    assert rows[0]["status"] == "crashed"
    # a crashed run is summarised from what is on disk (the record itself stays as it was)
    assert rows[0]["measured"] == kept and rows[0]["p50_ms"] is not None
    import onlinemap as om

    frame = om.results()
    assert list(frame["status"]) == ["crashed"] and list(frame["summary.samples.measured"]) == [kept]


def test_sighup_of_the_driver_is_an_interrupt_that_stops_the_worker_within_2s(om_home):
    """An SSH session that drops during a foreground run: recorded as interrupted, exit 129."""
    driver, run, worker = start_long_driver("test", "--model", "slowref", "-n", "30", "--warmup", "0",
                                            "--device", "cpu")
    driver.send_signal(signal.SIGHUP)
    sent = time.monotonic()
    assert_gone_soon(worker, sent)
    driver.wait(timeout=EVENT_WAIT_S)
    assert driver.returncode == 129, driver.stderr.read().decode()[-2000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["exit_code"] == 129
    assert "SIGHUP" in record["error"]["message"]
    assert record["summary"]["samples"]["ok"] == len(read_jsonl(run / "samples.jsonl")) >= 1


def test_a_nohup_driver_keeps_running_through_a_hangup(om_home):
    """`nohup onlinemap bench …` asks to survive the hang-up: an ignored SIGHUP stays ignored."""
    code = ("import signal, sys\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
            "from onlinemap.cli import main\nmain(sys.argv[1:])\n")
    driver = subprocess.Popen([sys.executable, "-c", code, "test", "--model", "slowref", "-n", "4", "--warmup", "0",
                               "--device", "cpu"], cwd=REPO, env={**os.environ, "ONLINEMAP_TEST_SLEEP_S": "1.0"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_signals)
    results = Path(os.environ["ONLINEMAP_HOME"]) / "results"
    wait_until(lambda: first_sample_run(results) or driver.poll() is not None, EVENT_WAIT_S, "the first sample")
    driver.send_signal(signal.SIGHUP)
    assert driver.wait(timeout=EVENT_WAIT_S) == 0, driver.stderr.read().decode()[-2000:]
