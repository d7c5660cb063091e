"""Host-side figures of the model's process tree: peak RSS and CPU time, with psutil.

Design note. The runner launches ``micromamba run …`` / ``conda run …`` / the env's python in a new
session, so the model is usually a *child* (or grandchild) of the pid the runner knows, and data
loader workers may add more. :class:`ProcessTreeTracker` therefore follows the whole tree under a
root pid. Finding the tree costs O(tree), not O(machine): membership is read from the kernel's
``/proc/<pid>/task/<tid>/children`` lists, starting at the root (psutil's ``children(recursive=True)``
reads ``/proc/<pid>/stat`` of *every* process on the machine to build a parent map: 3-11 ms per walk
at 150-530 processes). Membership is refreshed on each of the first ``YOUNG_SAMPLES`` samples (the
launch chain and data loader workers appear early), then every ``refresh_every``-th sample; in
between only the known processes are read (their psutil.Process objects are kept). A child that
starts late is therefore seen within ``refresh_every`` samples (1 s at the sampler's defaults), and
a short-lived one may be missed (as between any two samples); a known pid reused by a foreign
process before the next refresh would be read as ours until then (pids wrap rarely within 1 s).
Kernels built without ``CONFIG_PROC_CHILDREN`` lack those files: psutil's walk is used there.

* **RSS** is summed over the tree's live processes at one instant and the peak is kept. Pages
  shared between processes (forked workers) are counted once per process, so this over-counts
  shared memory; USS/PSS would not, but need ``/proc/<pid>/smaps`` reads that cost milliseconds.
* **CPU time** (user + system) is the sum, over every process ever seen, of the last CPU time read
  from it: a child that exits keeps what it had used when last sampled. Processes that start and
  end between two samples are missed; the ``children_*`` fields of ``cpu_times()`` are not added,
  because they would count a reaped child twice.
* Processes come and go while we read them: NoSuchProcess (incl. zombies) and AccessDenied are
  expected and skipped. Processes are keyed by (pid, create_time) so a reused pid is a new process.

psutil is imported when a tracker is built, never at import time.
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
        import psutil

        if int(refresh_every) < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every!r}")
        self._psutil = psutil
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
        self._procs: dict = {}   # pid -> psutil.Process, the known members
        self._exclude = {int(p) for p in exclude}   # subtrees that are not the model's
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
        self._procs.pop(pid, None)
        for key in [k for k in self._cpu_by_proc if k[0] == pid]:
            self._cpu_by_proc.pop(key, None)

    @property
    def cpu_time_s(self) -> float | None:
        """User + system CPU seconds of every process seen in the tree (None before any sample)."""
        return sum(self._cpu_by_proc.values()) if self._cpu_by_proc else None

    def _refresh(self) -> None:
        """Re-read membership from the root down; known pids keep their Process objects."""
        psutil = self._psutil
        root = self._root
        self.refreshes += 1
        try:
            if not root.is_running():  # gone, or its pid was reused by another process
                self._procs = {}
                return
        except psutil.Error:
            self._procs = {}
            return
        if not self._kernel_lists:
            try:
                kids = root.children(recursive=True)
                found = {p.pid: p for p in kids}
                for p in kids:     # an excluded pid takes its descendants with it
                    if p.pid in self._exclude:
                        found.pop(p.pid, None)
                        for q in p.children(recursive=True):
                            found.pop(q.pid, None)
            except psutil.Error:
                found = {}
            found[root.pid] = root
            self._procs = found
            return
        procs = {root.pid: root}
        todo = [root.pid]
        while todo:
            pid = todo.pop()
            for kid in _children(pid) or ():
                if kid in procs or kid in self._exclude:
                    continue
                known = self._procs.get(kid)
                try:
                    if known is None or not known.is_running():   # new, or a reused pid
                        known = psutil.Process(kid)
                        known.create_time()
                except psutil.Error:
                    continue   # ended while we walked
                procs[kid] = known
                todo.append(kid)
        self._procs = procs

    def _tree(self) -> list:
        if self._root is None:
            return []
        calls, self._calls = self._calls, self._calls + 1
        if calls < YOUNG_SAMPLES or calls % self.refresh_every == 0:
            self._refresh()
        return list(self._procs.values())

    def sample(self) -> TreeSample | None:
        """Read RSS and CPU time of every live process in the tree; None if none could be read."""
        psutil = self._psutil
        rss_total = 0
        pids = set()
        for p in self._tree():
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    ct = p.cpu_times()
                    key = (p.pid, p.create_time())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                self._procs.pop(p.pid, None)  # exited (or zombie), or not ours to read
                continue
            rss_total += rss
            pids.add(p.pid)
            self._cpu_by_proc[key] = ct.user + ct.system
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
