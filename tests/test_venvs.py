"""tests/venvs.py: the cached venv's file lock (a second session waits for the first one's build instead of
wiping it)) and its stamp."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

from tests.conftest import REPO

from tests.venvs import STAMP, build, cached_venv, lock_path

SECOND_SESSION = """
import sys
from pathlib import Path
from tests.venvs import cached_venv
with cached_venv(Path(sys.argv[1]), []) as (py, built):
    print("built" if built else "reused", py)
"""


def _waiting_on(path) -> bool:
    """True once some process is blocked in flock() on ``path`` (a ``->`` line of /proc/locks)."""
    inode = os.stat(path).st_ino
    with open("/proc/locks") as fh:
        return any("->" in line and line.split()[6].split(":")[-1] == str(inode) for line in fh)


def test_a_second_session_waits_for_the_build_and_reuses_it(tmp_path):
    venv = tmp_path / ".venv-oracle"
    fd = os.open(lock_path(venv), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)                       # this session is building
    second = subprocess.Popen([sys.executable, "-c", SECOND_SESSION, str(venv)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300                # an event (the waiter appears), with a generous deadline
        while not _waiting_on(lock_path(venv)):
            assert second.poll() is None, "the second session did not wait for the lock: " + second.stderr.read()
            assert time.monotonic() < deadline, "the second session never blocked on the lock"
            time.sleep(0.05)
        build(venv, [], None)
        (venv / STAMP).write_text("")
        (venv / "sentinel").write_text("the first session's venv")
    finally:
        os.close(fd)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert out.split() == ["reused", str(venv / "bin" / "python")]
    assert (venv / "sentinel").is_file()                 # not rebuilt (`venv --clear`) under the first session


def test_a_changed_requirement_rebuilds_and_a_fresh_stamp_does_not(tmp_path):
    venv = tmp_path / "v"
    with cached_venv(venv, []) as (py, built):
        assert built and py.is_file()
    (venv / "sentinel").write_text("")
    with cached_venv(venv, []) as (_, built):
        assert not built and (venv / "sentinel").is_file()
    (venv / STAMP).write_text("shapely==1.8.5.post1")    # another session's requirements
    with cached_venv(venv, []) as (_, built):
        assert built and not (venv / "sentinel").exists()
