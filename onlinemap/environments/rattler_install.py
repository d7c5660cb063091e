"""Install a conda-lock v1 file's conda packages with py-rattler, in-process (no conda, no micromamba).

``rattler.LockFile.from_path`` reads conda-lock v1 files; the records of the ``linux-64`` platform go to
``rattler.install`` with ``ONLINEMAP_HOME/pkgs`` as the cache. Two gotchas from the offline probe
(research/anchors-bench-env.md §5): pass the ``LockPlatform`` object from ``lf.platforms()`` (a
``Platform`` raises TypeError), and a wrong sha256/md5 in the lock is **not** enforced for ``file://``
URLs. So the caller (installers.install_locked, for every manager) first hashes every local archive
against the lock (integrity.py) and refuses on any mismatch. For http(s) URLs rattler downloads and (by its docs) validates the hash itself: UNVERIFIED
here, no channel is reachable. py-rattler is optional: :func:`rattler_available` says why it is not.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from onlinemap.environments.integrity import HashMismatchError, verify_local_archives
from onlinemap.environments.lockfile import PLATFORM, LockData
from onlinemap.environments.managers import rattler_available
from onlinemap.errors import MissingPrerequisiteError

__all__ = ["install_lock_with_rattler", "verify_local_archives", "HashMismatchError"]   # the last two: integrity.py


def install_lock_with_rattler(lock: LockData, prefix: Path, cache_dir: Path, platform: str = PLATFORM) -> int:
    """Install the lock's conda packages for ``platform`` into ``prefix``; return the package count.

    The caller has checked the local archives (``verify_local_archives``): py-rattler does not.
    """
    ok, why = rattler_available()
    if not ok:
        raise MissingPrerequisiteError(why, "pip install py-rattler, or use --manager micromamba|mamba|conda")
    import rattler

    lf = rattler.LockFile.from_path(lock.path)
    env = lf.default_environment()
    if env is None:
        raise MissingPrerequisiteError(f"{lock.path}: py-rattler finds no default environment in the lock",
                                       "regenerate it with `onlinemap env lock MODEL`")
    lock_platform = next((p for p in env.platforms() if p.name == platform), None)
    if lock_platform is None:
        raise MissingPrerequisiteError(f"{lock.path}: not locked for {platform}", "re-lock for linux-64")
    records = env.conda_repodata_records_for_platform(lock_platform) or []
    if not records:
        raise MissingPrerequisiteError(f"{lock.path}: no conda packages for {platform}", "re-lock for linux-64")
    # belt and braces: py-rattler must see the same URLs we hashed
    ours = {e.url for e in lock.conda(platform)}
    theirs = {str(r.url) for r in records}
    if ours != theirs:
        extra = sorted(theirs ^ ours)[:1]
        raise MissingPrerequisiteError(f"{lock.path}: py-rattler and onlinemap read different packages ({extra})",
                                       "regenerate the lock with `onlinemap env lock MODEL`")
    Path(prefix).mkdir(parents=True, exist_ok=True)
    asyncio.run(rattler.install(records, target_prefix=Path(prefix), cache_dir=Path(cache_dir),
                                show_progress=False, execute_link_scripts=False))
    return len(records)
