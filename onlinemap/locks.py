"""Exclusive locks that name their holder: one nightly, one setup, one build of a model's env at a time.

An exclusive ``flock`` on a small file holding JSON: the holder's pid, its start time, host and
whatever the caller adds. The kernel drops an ``flock`` when its process dies, so a second start
either fails to lock (the holder is alive: we say who, exit 75) or gets the lock and finds the
previous holder's record still in the file. A record left behind means the previous holder never
reached its cleanup: it crashed or was killed (``lock.stale``). A clean exit empties the file.

Caveat: ``flock`` on NFS-like network volumes is only as good as the server's lock support.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from onlinemap.errors import EXIT_LOCKED, OnlinemapError

__all__ = ["HolderLock", "LockedError"]


class LockedError(OnlinemapError):
    """Another process holds the lock (exit 75: try again later)."""

    exit_code = EXIT_LOCKED


def _pid_alive(pid: int, create_time: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if create_time and abs(proc.create_time() - float(create_time)) > 1.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.Error:
        return True


class HolderLock:
    """``with HolderLock(path, what=..., hint=...) as lock:``; ``lock.stale`` is a crashed holder's record, if any.

    ``info`` is written into the holder record and shown to whoever is refused (e.g. the night).
    """

    error_class: type = None  # set below: LockedError

    def __init__(self, path: Path, *, what: str, hint: str, info: dict | None = None):
        self.path = Path(path)
        self.what = what
        self.hint = hint
        self.info = dict(info or {})
        self.stale: dict | None = None
        self._fd: int | None = None

    def _read(self) -> dict | None:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return {"raw": text[:200]}
        return data if isinstance(data, dict) else {"raw": text[:200]}

    def acquire(self) -> "HolderLock":
        import psutil

        from onlinemap.runs.store import utc_now

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = self._read() or {}
            extra = "".join(f", {k} {holder[k]}" for k in self.info if holder.get(k))
            who = (f"pid {holder.get('pid')} on {holder.get('hostname')}, started {holder.get('started')}{extra}"
                   if holder.get("pid") else "unknown")
            raise self.error_class(f"another {self.what} is running ({who}); lock {self.path}", self.hint) from None
        self._fd = fd
        previous = self._read()
        if previous:
            same_host = previous.get("hostname") == socket.gethostname()
            if not same_host or not previous.get("pid") or \
                    not _pid_alive(previous["pid"], previous.get("pid_create_time")):
                self.stale = previous
        me = psutil.Process()
        record = {"pid": me.pid, "pid_create_time": me.create_time(), "hostname": socket.gethostname(),
                  "started": utc_now(), **self.info}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        return self

    def release(self) -> None:
        """Empty the file (a clean exit leaves no record) and drop the lock."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "HolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


HolderLock.error_class = LockedError
