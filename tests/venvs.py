"""Venvs the tests build for real tools (the upstream metric oracles, conda-lock), installed with uv.

uv (a test extra, the resolver of tests/envs/test_resolution.py) installs the same wheels from the same
index as pip, in seconds instead of the minute pip takes on a loaded 2-core machine; pip is the
fallback where uv is missing. ``--compile-bytecode`` as pip does: with PYTHONDONTWRITEBYTECODE set, a venv
without .pyc files recompiles every module at every start (conda-lock's vendored code: seconds a start). What is tested is the tool in the venv, not the installer.

``cached_venv``: a venv shared by every pytest session of one checkout, built under a file lock. Two sessions in one checkout (a colleague's targeted run beside the full suite) would otherwise both
see a missing or stale stamp and both run ``venv --clear`` on the same folder: one wipes the venv the
other is installing into or using. The lock (``<venv>.lock``, an ``flock``: the kernel drops it when
the holder dies) is held exclusively while the venv is checked and built, then shared for as long as
the session uses it, so a session that wants other requirements waits until no one is using it.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence

STAMP = ".oracle-requirements"


def lock_path(venv: Path) -> Path:
    return venv.with_name(venv.name + ".lock")


def _fresh(venv: Path, want: str) -> bool:
    stamp = venv / STAMP
    return (venv / "bin" / "python").is_file() and stamp.is_file() and stamp.read_text() == want


def uv_binary() -> str | None:
    """The uv executable of the ``uv`` package (setup.py's test extras), None when it is not installed."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


def install(python: Path, requirements: Sequence[str], timeout: float = 900) -> None:
    """Install ``requirements`` into the venv of ``python`` (uv, else that venv's pip); CalledProcessError on failure."""
    uv = uv_binary()
    argv = ([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)] if uv
            else [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
    subprocess.run([*argv, *requirements], check=True, capture_output=True, text=True, timeout=timeout,
                   stdin=subprocess.DEVNULL)


def build(venv: Path, requirements: Sequence[str], pth: str | None, *, with_pip: bool = False) -> None:
    """``venv --clear``, a ``.pth`` line (``pth``: a site-packages the venv also sees), then the requirements."""
    py = venv / "bin" / "python"
    pip = with_pip or not uv_binary()
    subprocess.run([sys.executable, "-m", "venv", "--clear", *([] if pip else ["--without-pip"]), str(venv)],
                   check=True, capture_output=True)
    if pth:
        purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        Path(purelib, "zz_onlinemap_test_venv.pth").write_text(pth + "\n")
    if requirements:
        install(py, requirements)


@contextlib.contextmanager
def cached_venv(venv: Path, requirements: Sequence[str], *, pth: str | None = None) -> Iterator[tuple[Path, bool]]:
    """``(python, built)`` of ``venv`` holding ``requirements`` (stamped); built only when the stamp differs.

    Held shared until the ``with`` block ends. Build errors propagate (the venv is left unstamped).
    """
    want = " ".join(requirements)
    fd = os.open(lock_path(venv), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        built = False
        while True:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not _fresh(venv, want):
                build(venv, requirements, pth)
                (venv / STAMP).write_text(want)
                built = True
            fcntl.flock(fd, fcntl.LOCK_SH)   # not atomic: another builder may slip in, so look again
            if _fresh(venv, want):
                break
        yield venv / "bin" / "python", built
    finally:
        os.close(fd)      # drops the lock
