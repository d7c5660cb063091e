"""The nightly lock: a second start is refused and names the holder; a stale lock is a crashed night."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from onlinemap.nightly.lock import EXIT_LOCKED, NightlyLock, NightlyLockedError
from tests.conftest import REPO, run_cli

HOLDER = ("import sys, time; sys.path.insert(0, sys.argv[2])\n"
          "from onlinemap.nightly.lock import NightlyLock\n"
          "lock = NightlyLock(sys.argv[1], night='holder-night').acquire()\n"
          "print('locked', flush=True); time.sleep(60)\n")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_start_is_refused_and_names_the_holder(om_home):
    lock_path = om_home / "nightly" / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_path), str(REPO)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(NightlyLockedError) as info:
            NightlyLock(lock_path).acquire()
        assert f"pid {holder.pid}" in info.value.message and "holder-night" in info.value.message
        proc = run_cli("nightly", "--no-plots")       # the real command, refused before running anything
        assert proc.returncode == EXIT_LOCKED, proc.stderr
        assert f"pid {holder.pid} on {socket.gethostname()}" in proc.stderr
        assert not (om_home / "results").exists()
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's flock: the next start gets it, and reports the crash
    with NightlyLock(lock_path) as lock:
        assert lock.stale and lock.stale["pid"] == holder.pid
    with NightlyLock(lock_path) as lock:          # a clean release leaves no record behind
        assert lock.stale is None
    assert lock_path.read_text() == ""


def test_stale_lock_file_with_dead_pid_is_reported(tmp_path):
    lock_path = tmp_path / ".lock"
    pid = _dead_pid()
    lock_path.write_text(json.dumps({"pid": pid, "hostname": socket.gethostname(), "started": "yesterday",
                                     "night": "2025-01-01"}))
    with NightlyLock(lock_path, night="2025-01-02") as lock:
        assert lock.stale["pid"] == pid and lock.stale["night"] == "2025-01-01"
        assert json.loads(lock_path.read_text())["night"] == "2025-01-02"
