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


def test_the_inactivity_clock_starts_at_the_workers_first_event(tmp_path):
    """A launcher that is silent for 3 s (conda run starting conda three times) is not inactivity."""
    marker = tmp_path / "events.jsonl"
    marker.touch()
    code = ("import time\n"
            "time.sleep(3)\n"
            f"for i in range(5):\n    open({str(marker)!r}, 'a').write('{{}}\\n'); time.sleep(0.3)\n")
    out = run_supervised(py(code), inactivity_s=1.5, activity_paths=[marker], start_marker=marker, grace_s=1.0)
    assert out.ok, out


def test_a_launch_that_never_reaches_the_worker_hits_the_launch_timeout(tmp_path):
    marker = tmp_path / "events.jsonl"
    marker.touch()
    out = run_supervised(py("import time; time.sleep(60)"), inactivity_s=600, start_marker=marker,
                         launch_timeout_s=1.5, grace_s=1.0)
    assert out.timeout == "launch" and out.duration_s < 30


# A stand-in for `conda run`'s process shape, as seen with real conda 25.11 (issue 11): a Python
# that writes a wrapper script to a temp dir, runs the command as its child, and deletes the script
# only when the child returned; SIGTERM kills that Python at once (default handler), script left.
LAUNCHER = """
import os, subprocess, sys, tempfile
fd, path = tempfile.mkstemp(prefix="fake-conda-run-", suffix=".sh", dir=sys.argv[1])
os.close(fd)
try:
    rc = subprocess.call(sys.argv[2:])
finally:
    os.unlink(path)
sys.exit(rc)
"""


def test_stopping_a_run_stops_the_worker_first_so_the_launcher_cleans_up(tmp_path):
    wrappers = tmp_path / "tmp"
    wrappers.mkdir()
    pid_file = tmp_path / "worker.pid"
    worker = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"

    def worker_pid():
        try:
            return int(pid_file.read_text())
        except (OSError, ValueError):
            return None

    def ctrl_c_once_the_worker_runs():   # event-based: however slow the machine, the worker is up
        if worker_pid() is not None:
            raise KeyboardInterrupt

    argv = [sys.executable, "-c", LAUNCHER, str(wrappers), sys.executable, "-c", worker]
    out = run_supervised(argv, grace_s=2.0, worker_pid=worker_pid, on_tick=ctrl_c_once_the_worker_runs)
    assert out.interrupted == "SIGINT" and worker_pid() is not None
    assert list(wrappers.iterdir()) == [], "the launcher's wrapper script was left behind"
    time.sleep(0.2)
    assert not psutil.pid_exists(worker_pid()) or psutil.Process(worker_pid()).status() == psutil.STATUS_ZOMBIE
