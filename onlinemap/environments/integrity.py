"""Check every local (``file://``) archive of a lock against its pinned hashes, before any manager installs.

No manager can be trusted with this on the local path: real conda (25.11, classic solver) copies a
``file://`` tarball into its cache without comparing it to the md5/sha256 of the ``@EXPLICIT`` line
(only its http path checks), and py-rattler 0.28 installs a ``file://`` record whose hash in the lock is
wrong. So onlinemap hashes every local archive itself, for every manager (micromamba, mamba, conda,
rattler), and refuses on a mismatch before the prefix is touched. Archives behind http(s) URLs are
downloaded, and checked, by the manager (docs/security.md says which checks are verified where).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

from onlinemap.environments.lockfile import PLATFORM, LockData
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError

__all__ = ["verify_local_archives", "HashMismatchError"]


class HashMismatchError(OnlinemapError):
    """A package archive does not have the hash the lock file pins: refuse to install it."""


def _file_hashes(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def verify_local_archives(lock: LockData, platform: str = PLATFORM) -> int:
    """Check every ``file://`` archive of the lock (conda and pip entries) against its sha256 and md5.

    Returns how many were checked; raises HashMismatchError on a mismatch, MissingPrerequisiteError
    when an archive is gone.
    """
    checked = 0
    for entry in [*lock.conda(platform), *lock.pip(platform)]:
        parsed = urlparse(entry.url)
        if parsed.scheme != "file":
            continue
        path = Path(unquote(parsed.path))
        if not path.is_file():
            raise MissingPrerequisiteError(f"{lock.path}: {entry.name} archive {path} does not exist",
                                           "regenerate the lock, or restore the local channel it points at")
        sha, md5 = _file_hashes(path)
        for kind, want, got in (("sha256", entry.sha256, sha), ("md5", entry.md5, md5)):
            if want and got != want:
                raise HashMismatchError(f"{entry.name} {entry.version}: {path.name} {kind} {got[:12]}… does not "
                                        f"match the lock ({want[:12]}…); refusing to install it",
                                        "the archive changed after locking: restore it or re-lock with "
                                        "`onlinemap env lock`")
        checked += 1
    return checked
