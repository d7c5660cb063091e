"""One nightly at a time: ``onlinemap.locks.HolderLock`` on ``ONLINEMAP_HOME/nightly/.lock``.

A second start is refused with the holder named (exit 75); a holder record left behind by a
crashed job is reported as a crashed night (``lock.stale``). See onlinemap/locks.py.
"""
from __future__ import annotations

from pathlib import Path

from onlinemap.errors import EXIT_LOCKED  # 75, sysexits EX_TEMPFAIL: try again later
from onlinemap.locks import HolderLock, LockedError

__all__ = ["NightlyLock", "NightlyLockedError", "EXIT_LOCKED"]


class NightlyLockedError(LockedError):
    """Another nightly job holds the lock."""


class NightlyLock(HolderLock):
    """``with NightlyLock(path, night=...) as lock:``; ``lock.stale`` is the crashed holder's record, if any."""

    error_class = NightlyLockedError

    def __init__(self, path: Path, *, night: str = ""):
        super().__init__(path, what="nightly job", hint="wait for it to finish (see ONLINEMAP_HOME/logs/nightly.log)",
                         info={"night": night})
        self.night = night
