"""Tests for onlinemap.telemetry.host: peak RSS and CPU time of a real process tree.

Nothing is faked: each test starts real child Pythons (a child that spawns a grandchild), as the
runner's ``micromamba run`` -> python -> workers chain does.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from onlinemap.telemetry.host import ProcessTreeTracker

from .fakenvml import wait_for

psutil = pytest.importorskip("psutil")

# child: starts a grandchild that allocates (and touches) ~100 MiB, then both sleep
ALLOC_TREE = r"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c",
    "import sys, time; x = b'\\x01' * (100 << 20); open(sys.argv[1], 'w').close(); time.sleep(30)",
    sys.argv[1]])
time.sleep(30)
"""

# child: starts a grandchild that burns ~0.4 s of CPU and exits; the child stays
BURN_TREE = r"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c",
    "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"]).wait()
open(sys.argv[1], 'w').close()
time.sleep(30)
"""


def start(tmp_path, code):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", code, str(ready)], start_new_session=True)
    return proc, ready


def kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_peak_rss_covers_the_grandchild(tmp_path):
    proc, ready = start(tmp_path, ALLOC_TREE)
    try:
        tracker = ProcessTreeTracker(proc.pid)
        first = tracker.sample()
        assert first is not None and proc.pid in first.pids
        wait_for(ready.exists, timeout=10)
        last = tracker.sample()
        assert len(last.pids) == 2  # child + grandchild
        child_alone = psutil.Process(proc.pid).memory_info().rss
    finally:
        kill(proc)
    res = tracker.result()
    assert res["rss_peak_bytes"] >= 100 << 20
    assert res["rss_peak_bytes"] > child_alone + (90 << 20)
    assert res["reason"] is None and res["samples"] == 2


def test_cpu_time_of_an_exited_grandchild_is_kept(tmp_path):
    proc, ready = start(tmp_path, BURN_TREE)
    try:
        tracker = ProcessTreeTracker(proc.pid)
        deadline = time.monotonic() + 10
        while not ready.exists():  # sample while the grandchild burns, as the sampler would
            tracker.sample()
            time.sleep(0.02)
            assert time.monotonic() < deadline
        after = tracker.sample()
        assert len(after.pids) == 1  # the grandchild is gone
    finally:
        kill(proc)
    # the last look at the grandchild was at most one sampling interval before it ended
    assert tracker.cpu_time_s >= 0.2


def test_root_gone_before_first_sample(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    tracker = ProcessTreeTracker(proc.pid)
    assert tracker.sample() is None
    res = tracker.result()
    assert res["rss_peak_bytes"] is None and res["cpu_time_s"] is None
    assert res["reason"]


def test_root_exiting_keeps_figures(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    tracker = ProcessTreeTracker(proc.pid)
    assert tracker.sample() is not None
    proc.wait()
    assert tracker.sample() is None  # reaped: nothing left to read
    res = tracker.result()
    assert res["rss_peak_bytes"] > 0 and res["reason"] is None and res["cpu_time_s"] is not None


# child: waits for a go file, then starts a grandchild that writes a ready file and sleeps
LATE_TREE = r"""
import os, subprocess, sys, time
go, ready = sys.argv[1] + ".go", sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.01)
subprocess.Popen([sys.executable, "-c",
    "import sys, time; open(sys.argv[1], 'w').close(); time.sleep(30)", ready])
time.sleep(30)
"""


def test_membership_follows_the_tree_not_the_machine(tmp_path, monkeypatch):
    """A grandchild started late joins within refresh_every samples, found from the root down:
    psutil's machine-wide walk (children(recursive=True) reads every /proc/<pid>/stat) is not used."""
    from onlinemap.telemetry import host

    if not host._proc_children_supported():
        pytest.skip("kernel without /proc/<pid>/task/<tid>/children")
    monkeypatch.setattr(psutil.Process, "children",
                        lambda *a, **k: pytest.fail("machine-wide children() walk used"))
    proc, ready = start(tmp_path, LATE_TREE)
    try:
        tracker = ProcessTreeTracker(proc.pid, refresh_every=3)
        for _ in range(host.YOUNG_SAMPLES):   # past the young phase: membership refreshed rarely
            assert tracker.sample().pids == {proc.pid}
        refreshes = tracker.refreshes
        open(str(ready) + ".go", "w").close()
        wait_for(ready.exists, timeout=30)
        seen = [len(tracker.sample().pids) for _ in range(3)]
        assert seen[-1] == 2 and tracker.refreshes == refreshes + 1   # one refresh in 3 samples
    finally:
        kill(proc)


def test_an_excluded_child_is_left_out_of_the_tree(tmp_path):
    """The harness's result writer is the worker's child but not the model: not in its RSS or CPU."""
    proc, ready = start(tmp_path, ALLOC_TREE)
    try:
        wait_for(ready.exists, timeout=10)
        grandchild = next(iter(psutil.Process(proc.pid).children()))
        both = ProcessTreeTracker(proc.pid).sample()
        tracker = ProcessTreeTracker(proc.pid, exclude=(grandchild.pid,))
        alone = tracker.sample()
        late = ProcessTreeTracker(proc.pid)
        late.sample()
        late.exclude(grandchild.pid)      # told after a first look (the started event comes later)
        after = late.sample()
    finally:
        kill(proc)
    assert both.pids == {proc.pid, grandchild.pid}
    assert alone.pids == after.pids == {proc.pid}
    assert alone.rss_bytes < both.rss_bytes - (90 << 20)
    assert late.result()["rss_peak_bytes"] >= both.rss_bytes - (10 << 20)   # the first look is kept as read


def _read_once(host, pid):
    """One reading of ``pid`` through the tracker's own readers (open, pread, close)."""
    fds = host._open_proc(pid)
    if fds is None:
        return None
    try:
        return host._pread_stat(fds)
    finally:
        for fd in fds:
            os.close(fd)


def test_one_stat_read_gives_what_psutil_reads(tmp_path):
    """The fast reader (one /proc/<pid>/stat read) against psutil's own cpu_times() and
    memory_info() of the same process: the same kernel counters, so the same figures."""
    from onlinemap.telemetry import host

    if not host._proc_children_supported():
        pytest.skip("kernel without /proc/<pid>/task/<tid>/children: psutil reads everything there")
    proc, ready = start(tmp_path, ALLOC_TREE)     # a sleeping tree: its counters stand still
    try:
        wait_for(ready.exists, timeout=10)
        grandchild = next(iter(psutil.Process(proc.pid).children()))
        for pid in (proc.pid, grandchild.pid):
            p = psutil.Process(pid)
            start_ticks, cpu_s, rss = _read_once(host, pid)
            ct = p.cpu_times()
            assert rss == p.memory_info().rss
            assert abs(cpu_s - (ct.user + ct.system)) < 0.02
            assert abs(psutil.boot_time() + start_ticks / host._CLK_TCK - p.create_time()) < 0.02
    finally:
        kill(proc)
    assert _read_once(host, proc.pid) is None      # reaped: gone
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, timeout=10)
    assert _read_once(host, zombie.pid) is None    # exited, not yet reaped: not a member
    zombie.wait()


def test_a_reused_root_pid_is_not_followed(tmp_path):
    """The root's start time is its identity: a different process under the same pid is not ours."""
    from onlinemap.telemetry import host

    if not host._proc_children_supported():
        pytest.skip("kernel without /proc/<pid>/task/<tid>/children")
    proc, ready = start(tmp_path, ALLOC_TREE)
    try:
        wait_for(ready.exists, timeout=10)
        tracker = ProcessTreeTracker(proc.pid)
        assert len(tracker.sample().pids) == 2
        tracker._root -= 1                # as if the pid now named a process started at another time
        tracker._procs[proc.pid] = tracker._root
        assert tracker.sample() is None   # neither the root nor, through it, its children are read
    finally:
        kill(proc)


def _open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


def test_members_files_stay_open_between_readings_and_are_closed_when_they_leave(tmp_path):
    """Two preads per member and reading (no open/close each time), and no descriptor left behind."""
    from onlinemap.telemetry import host

    if not host._proc_children_supported():
        pytest.skip("kernel without /proc/<pid>/task/<tid>/children: psutil reads the tree")
    before = _open_fds()
    proc, ready = start(tmp_path, ALLOC_TREE)
    try:
        wait_for(ready.exists, timeout=10)
        tracker = ProcessTreeTracker(proc.pid)
        assert len(tracker.sample().pids) == 2
        held = _open_fds() - before
        assert len(held) == 4                        # stat + statm of the child and the grandchild
        first = tracker.sample()
        assert _open_fds() - before == held and first.rss_bytes > 100 << 20
        kill(proc)                                   # both gone and reaped (the grandchild by init)
        wait_for(lambda: tracker.sample() is None, timeout=10)
        assert _open_fds() - before == set()
        assert tracker.result()["rss_peak_bytes"] > 100 << 20
    finally:
        kill(proc)
        tracker.close()
    assert _open_fds() - before == set()


def test_a_kept_descriptor_never_reads_another_process():
    """Once its process is reaped a kept /proc file fails (ESRCH) instead of reading the pid's next owner."""
    from onlinemap.telemetry import host

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    fds = host._open_proc(proc.pid)
    try:
        assert host._pread_stat(fds) is not None
        proc.kill()
        proc.wait()
        assert host._pread_stat(fds) is None
    finally:
        for fd in fds:
            os.close(fd)
