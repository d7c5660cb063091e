"""Host-side figures of the model's process tree: peak RSS and CPU time, with psutil.

Design note. The runner launches ``micromamba run …`` / ``conda run …`` / the env's python in a new
session, so the model is usually a *child* (or grandchild) of the pid the runner knows, and data
loader workers may add more. :class:`ProcessTreeTracker` therefore follows the whole tree under a
root pid: each :meth:`~ProcessTreeTracker.sample` lists root + recursive children again.

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

from dataclasses import dataclass
from typing import Any

__all__ = ["ProcessTreeTracker", "TreeSample"]


@dataclass(frozen=True)
class TreeSample:
    """One look at the tree: total RSS (bytes), total CPU time so far (s), live pids."""

    rss_bytes: int
    cpu_time_s: float
    pids: frozenset


class ProcessTreeTracker:
    """Peak RSS and CPU time of the process tree under ``root_pid``; call :meth:`sample` often.

    Not thread-safe: one thread samples (the telemetry sampler's), others read the results after.
    """

    def __init__(self, root_pid: int):
        import psutil

        self._psutil = psutil
        self.root_pid = int(root_pid)
        self.peak_rss_bytes: int | None = None
        self.samples = 0
        self.last_pids: frozenset = frozenset({self.root_pid})
        self.reason: str | None = None
        self._cpu_by_proc: dict[tuple[int, float], float] = {}
        try:
            self._root = psutil.Process(self.root_pid)
            self._root.create_time()  # cached: later calls detect pid reuse
        except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
            self._root = None
            self.reason = f"root process {self.root_pid} not readable: {type(exc).__name__}"

    @property
    def cpu_time_s(self) -> float | None:
        """User + system CPU seconds of every process seen in the tree (None before any sample)."""
        return sum(self._cpu_by_proc.values()) if self._cpu_by_proc else None

    def _tree(self) -> list:
        psutil = self._psutil
        root = self._root
        if root is None:
            return []
        procs = [root]
        try:
            if not root.is_running():  # gone, or its pid was reused by another process
                return []
            procs.extend(root.children(recursive=True))
        except psutil.NoSuchProcess:
            pass  # root exited (or is a zombie): its last figures stay in the totals
        except psutil.AccessDenied:
            pass
        return procs

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
                continue  # exited (or zombie) between listing and reading, or not ours to read
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
