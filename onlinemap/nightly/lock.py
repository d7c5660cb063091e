"""One nightly at a time: an exclusive ``flock`` on ``ONLINEMAP_HOME/nightly/.lock`` that names its holder.

The lock file holds JSON: the holder's pid, its start time, host and the night it runs. The
kernel drops an ``flock`` when its process dies, so a second start either fails to lock (another
nightly is running: we say who and exit non-zero) or gets the lock and finds the previous
holder's record still in the file. A record left behind means the previous job never reached its
cleanup: it crashed (or was killed); we report it as a crashed night. A clean exit empties the file.

Caveat: ``flock`` on NFS-like network volumes is only as good as the server's lock support;
several pods sharing one volume should each keep their own ONLINEMAP_HOME/nightly (see
docs/nightly.md).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from onlinemap.errors import OnlinemapError

__all__ = ["NightlyLock", "NightlyLockedError", "EXIT_LOCKED"]

from onlinemap.errors import EXIT_LOCKED  # 75, sysexits EX_TEMPFAIL: try again later


class NightlyLockedError(OnlinemapError):
    """Another nightly job holds the lock."""

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


class NightlyLock:
    """``with NightlyLock(path, night=...) as lock:``; ``lock.stale`` is the crashed holder's record, if any."""

    def __init__(self, path: Path, *, night: str = ""):
        self.path = Path(path)
        self.night = night
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

    def acquire(self) -> "NightlyLock":
        import psutil

        from onlinemap.runs.store import utc_now

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = self._read() or {}
            who = (f"pid {holder.get('pid')} on {holder.get('hostname')}, started {holder.get('started')}"
                   f"{', night ' + holder['night'] if holder.get('night') else ''}") if holder.get("pid") else "unknown"
            raise NightlyLockedError(f"another nightly job is running ({who}); lock {self.path}",
                                     "wait for it to finish (see ONLINEMAP_HOME/logs/nightly.log)") from None
        self._fd = fd
        previous = self._read()
        if previous:
            same_host = previous.get("hostname") == socket.gethostname()
            if not same_host or not previous.get("pid") or \
                    not _pid_alive(previous["pid"], previous.get("pid_create_time")):
                self.stale = previous
        me = psutil.Process()
        record = {"pid": me.pid, "pid_create_time": me.create_time(), "hostname": socket.gethostname(),
                  "started": utc_now(), "night": self.night}
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

    def __enter__(self) -> "NightlyLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
