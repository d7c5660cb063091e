"""proc.run_supervised with real child processes: output, exit codes, timeouts, group kill."""
from __future__ import annotations

import os
import sys
import time

import psutil

from onlinemap.proc import run_supervised


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_output_goes_to_the_log_and_exit_code_is_kept(tmp_path):
    log = tmp_path / "log.txt"
    out = run_supervised(py("import sys; print('hello'); sys.stderr.write('oops\\n'); sys.exit(3)"), log_path=log)
    assert out.returncode == 3 and not out.timeout and not out.interrupted and not out.ok
    text = log.read_text()
    assert "hello" in text and "oops" in text and text.startswith("$ ")


def test_wall_clock_timeout_kills_the_process(tmp_path):
    start = time.monotonic()
    out = run_supervised(py("import time; time.sleep(60)"), timeout_s=1.0, grace_s=1.0)
    assert out.timeout == "wall" and time.monotonic() - start < 10


def test_inactivity_timeout_counts_output_and_watched_files(tmp_path):
    ticker = tmp_path / "ticks"
    code = ("import time,sys\n"
            f"for i in range(6):\n    open({str(ticker)!r}, 'a').write('x'); time.sleep(0.4)\n"
            "time.sleep(60)\n")
    out = run_supervised(py(code), inactivity_s=1.5, activity_paths=[ticker], grace_s=1.0)
    assert out.timeout == "inactivity"
    assert out.duration_s > 2.4  # the file kept it alive while it grew


def test_a_hanging_grandchild_is_killed_with_its_group(tmp_path):
    pid_file = tmp_path / "gc.pid"
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(600)\n")
    out = run_supervised(py(code), timeout_s=2.0, grace_s=1.0)
    assert out.timeout == "wall"
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_leftover_grandchild_is_swept_when_the_leader_exits(tmp_path):
    pid_file = tmp_path / "gc.pid"
    code = ("import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n")
    out = run_supervised(py(code))
    assert out.returncode == 0
    time.sleep(0.3)
    gc = int(pid_file.read_text())
    assert not psutil.pid_exists(gc) or psutil.Process(gc).status() == psutil.STATUS_ZOMBIE


def test_on_start_gets_the_pid_and_on_tick_runs(tmp_path):
    seen = {}
    ticks = []
    out = run_supervised(py("import os, time; print(os.getpid()); time.sleep(0.3)"), log_path=tmp_path / "l",
                         on_start=lambda pid: seen.setdefault("pid", pid), on_tick=lambda: ticks.append(1))
    assert out.ok and seen["pid"] == out.pid and ticks
    assert str(out.pid) in (tmp_path / "l").read_text()


def test_child_runs_in_its_own_session():
    code = "import os; print(os.getsid(0))"
    log_lines = []
    import tempfile

    with tempfile.NamedTemporaryFile("r") as fh:
        run_supervised(py(code), log_path=fh.name)
        log_lines = open(fh.name).read().splitlines()
    assert int(log_lines[-1]) != os.getsid(0)
