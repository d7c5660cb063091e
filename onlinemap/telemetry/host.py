"""Host-side figures of the model's process tree: peak RSS and CPU time, with psutil.

Design note. The runner launches ``micromamba run …`` / ``conda run …`` / the env's python in a new
session, so the model is usually a *child* (or grandchild) of the pid the runner knows, and data
loader workers may add more. :class:`ProcessTreeTracker` therefore follows the whole tree under a
root pid. Finding the tree costs O(tree), not O(machine): membership is read from the kernel's
``/proc/<pid>/task/<tid>/children`` lists, starting at the root (psutil's ``children(recursive=True)``
reads ``/proc/<pid>/stat`` of *every* process on the machine to build a parent map: 3-11 ms per walk
at 150-530 processes). Membership is refreshed on each of the first ``YOUNG_SAMPLES`` samples (the
launch chain and data loader workers appear early), then every ``refresh_every``-th sample; in
between only the known processes are read. A child that
starts late is therefore seen within ``refresh_every`` samples (1 s at the sampler's defaults), and
a short-lived one may be missed (as between any two samples). Every read checks the process's start
time, so a known pid reused by a foreign process is dropped at once. Kernels built without
``CONFIG_PROC_CHILDREN`` lack those files: psutil's walk is used there (its ``is_running()`` checks
reuse at each refresh only).

Where those lists exist, a process is read from ``/proc/<pid>/stat`` (CPU time, start time) and
``/proc/<pid>/statm`` (RSS): the files and fields psutil's ``cpu_times()`` and
``memory_info().rss`` read (``tests/telemetry/test_host.py`` compares the figures). Both stay
open while the process is a member and each reading is one ``pread`` per file: as the sampler
wakes with cold caches, ten times a second, psutil's ~10 Python calls per process cost ~480 us
here, open + read + close of the two files ~140-280 us, two ``pread`` ~70 us (issue 16's driver
budget). An open ``/proc/<pid>`` file stays bound to its process: once that process is gone
(reaped), reading it fails with ESRCH, even if the pid has been given to another, so a kept
descriptor can never read a stranger. Without the lists, psutil reads everything.

* **RSS** is summed over the tree's live processes at one instant and the peak is kept. Pages
  shared between processes (forked workers) are counted once per process, so this over-counts
  shared memory; USS/PSS would not, but need ``/proc/<pid>/smaps`` reads that cost milliseconds.
* **CPU time** (user + system) is the sum, over every process ever seen, of the last CPU time read
  from it: a child that exits keeps what it had used when last sampled. Processes that start and
  end between two samples are missed; the ``children_*`` fields of ``cpu_times()`` are not added,
  because they would count a reaped child twice.
* Processes come and go while we read them: gone, zombie and unreadable ones are expected and
  skipped. Processes are keyed by (pid, start time) so a reused pid is a new process.

psutil is imported when a tracker without the kernel's lists is built, never at import time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["ProcessTreeTracker", "TreeSample"]


@dataclass(frozen=True)
class TreeSample:
    """One look at the tree: total RSS (bytes), total CPU time so far (s), live pids."""

    rss_bytes: int
    cpu_time_s: float
    pids: frozenset


YOUNG_SAMPLES = 20
DEFAULT_REFRESH_EVERY = 10


def _proc_children_supported() -> bool:
    me = os.getpid()
    return os.path.exists(f"/proc/{me}/task/{me}/children")


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _parse_stat(raw: bytes | None, statm: bytes | None) -> tuple[int, float, int] | None:
    """(start time in clock ticks, user + system CPU seconds, RSS bytes) from the two files' text;
    None when either is missing or the process is a zombie.

    CPU and start time come from ``stat``, RSS from ``statm`` as psutil reads it (newer kernels
    give an exact sum of the per-CPU counters there, and a faster approximation, ~100 KB off, in
    ``stat``'s rss field)."""
    if not raw or not statm:
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ")": split after the last
    fields = raw[raw.rfind(b")") + 2:].split()
    if len(fields) < 22 or fields[0] in (b"Z", b"X"):
        return None
    # fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22; statm: size resident ...
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / _CLK_TCK, int(statm.split()[1]) * _PAGE


def _open_proc(pid: int) -> tuple[int, int] | None:
    """``pid``'s stat and statm, opened to be read again and again (:func:`_pread_stat`)."""
    try:
        stat_fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return stat_fd, os.open(f"/proc/{pid}/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        os.close(stat_fd)
        return None


def _pread_stat(fds: tuple[int, int]) -> tuple[int, float, int] | None:
    """:func:`_parse_stat` of kept descriptors, read afresh from offset 0; None once the process is gone."""
    try:
        return _parse_stat(os.pread(fds[0], 4096, 0), os.pread(fds[1], 4096, 0))
    except OSError:        # ESRCH: the process these files belong to has been reaped
        return None


def _children(pid: int) -> list[int] | None:
    """Direct children of every thread of ``pid`` (the kernel's lists); None if ``pid`` is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    kids: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(x) for x in fh.read().split())
        except OSError:
            continue   # the thread ended while we listed
    return kids


class ProcessTreeTracker:
    """Peak RSS and CPU time of the process tree under ``root_pid``; call :meth:`sample` often.

    ``refresh_every``: after the first ``YOUNG_SAMPLES`` samples, re-read the tree's membership
    every N-th sample only. ``exclude``: pids whose subtrees are not counted (the harness's result
    writer is the worker's child but not the model). Not thread-safe: one thread samples (the telemetry sampler's), others
    read the results after.
    """

    def __init__(self, root_pid: int, refresh_every: int = DEFAULT_REFRESH_EVERY, exclude=()):
        if int(refresh_every) < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every!r}")
        self.root_pid = int(root_pid)
        self.refresh_every = int(refresh_every)
        self.peak_rss_bytes: int | None = None
        self.samples = 0
        self.refreshes = 0
        self.last_pids: frozenset = frozenset({self.root_pid})
        self.reason: str | None = None
        self._cpu_by_proc: dict[tuple[int, float], float] = {}
        self._calls = 0
        self._kernel_lists = _proc_children_supported()
        # the known members: pid -> start time (kernel lists) or pid -> psutil.Process (psutil)
        self._procs: dict = {}
        self._fds: dict[int, tuple[int, int]] = {}   # kernel lists: a member's stat and statm, kept open
        self._exclude = {int(p) for p in exclude}   # subtrees that are not the model's
        self._root = None
        if self._kernel_lists:
            self._psutil = None
            stat = self._member_stat(self.root_pid)
            if stat is None:
                self.reason = f"root process {self.root_pid} not readable: gone or not ours"
            else:
                self._root = stat[0]
                self._procs[self.root_pid] = stat[0]
            return
        import psutil

        self._psutil = psutil
        try:
            self._root = psutil.Process(self.root_pid)
            self._root.create_time()  # cached: later calls detect pid reuse
            self._procs[self.root_pid] = self._root
        except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
            self._root = None
            self.reason = f"root process {self.root_pid} not readable: {type(exc).__name__}"

    def exclude(self, pid: int) -> None:
        """Leave ``pid`` (and its children) out from now on, and forget what was read from it."""
        pid = int(pid)
        self._exclude.add(pid)
        self._forget(pid)
        for key in [k for k in self._cpu_by_proc if k[0] == pid]:
            self._cpu_by_proc.pop(key, None)

    def _forget(self, pid: int) -> None:
        self._procs.pop(pid, None)
        fds = self._fds.pop(pid, None)
        if fds is not None:
            for fd in fds:
                os.close(fd)

    def close(self) -> None:
        """Close the kept descriptors (the results stay readable). Call once nothing samples any more."""
        for pid in list(self._fds):
            self._forget(pid)
        self._procs = {}

    def __del__(self) -> None:     # a tracker dropped without close() (tests, a replaced tree)
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit os may already be torn down
            pass

    @property
    def cpu_time_s(self) -> float | None:
        """User + system CPU seconds of every process seen in the tree (None before any sample)."""
        return sum(self._cpu_by_proc.values()) if self._cpu_by_proc else None

    def _refresh(self) -> None:
        """Re-read membership from the root down; known pids keep what was known of them."""
        self.refreshes += 1
        if not self._kernel_lists:
            self._refresh_psutil()
            return
        stat = self._member_stat(self.root_pid)
        if stat is None or stat[0] != self._root:   # gone, or its pid now names another process
            self.close()
            return
        procs = {self.root_pid: self._root}
        todo = [self.root_pid]
        while todo:
            pid = todo.pop()
            for kid in _children(pid) or ():
                if kid in procs or kid in self._exclude:
                    continue
                known = self._procs.get(kid)
                if known is None:          # new: its start time says who it is from now on
                    stat = self._member_stat(kid)
                    if stat is None:
                        continue           # ended while we walked
                    known = stat[0]
                procs[kid] = known
                todo.append(kid)
        for pid in [p for p in self._fds if p not in procs]:   # left the tree: stop holding its files
            self._forget(pid)
        self._procs = procs

    def _refresh_psutil(self) -> None:
        psutil = self._psutil
        root = self._root
        try:
            if not root.is_running():  # gone, or its pid was reused by another process
                self._procs = {}
                return
            kids = root.children(recursive=True)
            found = {p.pid: p for p in kids}
            for p in kids:     # an excluded pid takes its descendants with it
                if p.pid in self._exclude:
                    found.pop(p.pid, None)
                    for q in p.children(recursive=True):
                        found.pop(q.pid, None)
        except psutil.Error:
            self._procs = {}
            return
        found[root.pid] = root
        self._procs = found

    def _tree(self) -> list:
        if self._root is None:
            return []
        calls, self._calls = self._calls, self._calls + 1
        if calls < YOUNG_SAMPLES or calls % self.refresh_every == 0:
            self._refresh()
        return list(self._procs.items())

    def _member_stat(self, pid: int) -> tuple[int, float, int] | None:
        """:func:`_parse_stat` of ``pid`` through its kept descriptors (opened at the first reading:
        the membership walk and the samples between share them); None when it is gone."""
        fds = self._fds.get(pid)
        if fds is None:
            fds = _open_proc(pid)
            if fds is None:
                return None
            self._fds[pid] = fds
        stat = _pread_stat(fds)
        if stat is None:
            self._forget(pid)
        return stat

    def _read(self, pid: int, known) -> tuple[tuple, float, int] | None:
        """((pid, start), CPU s, RSS bytes) of a known member; None (and forgotten) once it is gone."""
        if self._kernel_lists:
            stat = self._member_stat(pid)
            # a member's start time was read through these same files when it joined, and a kept
            # file cannot change process (module docstring): a mismatch is only a safety net
            if stat is not None and stat[0] == known:
                return (pid, known), stat[1], stat[2]
        else:
            psutil = self._psutil
            try:
                with known.oneshot():
                    rss = known.memory_info().rss
                    ct = known.cpu_times()
                    return (pid, known.create_time()), ct.user + ct.system, rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        self._forget(pid)   # exited (or zombie), its pid reused, or not ours to read
        return None

    def sample(self) -> TreeSample | None:
        """Read RSS and CPU time of every live process in the tree; None if none could be read."""
        rss_total = 0
        pids = set()
        for pid, known in self._tree():
            got = self._read(pid, known)
            if got is None:
                continue
            key, cpu_s, rss = got
            rss_total += rss
            pids.add(pid)
            self._cpu_by_proc[key] = cpu_s
        if not pids:
            if self.samples == 0 and self.reason is None:
                self.reason = f"process tree of pid {self.root_pid} gone before the first sample"
            return None
        self.samples += 1
        self.last_pids = frozenset(pids)
        if self.peak_rss_bytes is None or rss_total > self.peak_rss_bytes:
            self.peak_rss_bytes = rss_total
        return TreeSample(rss_total, self.cpu_time_s or 0.0, self.last_pids)

    def result(self) -> dict[str, Any]:
        """``{"rss_peak_bytes", "cpu_time_s", "samples", "reason"}``; reason set when None."""
        reason = None
        if self.peak_rss_bytes is None:
            reason = self.reason or "no host sample taken"
        return {"rss_peak_bytes": self.peak_rss_bytes, "cpu_time_s": self.cpu_time_s,
                "samples": self.samples, "reason": reason}
