"""The conda-family managers: find one, and build the argv lists that create an env with it.

Discovery order (first hit wins): an explicit ``--manager NAME|PATH``; ``ONLINEMAP_HOME/bin/micromamba``
(what ``runpod_setup.sh`` installs); ``$MAMBA_EXE`` / ``$CONDA_EXE`` (set by an activated shell, asv
reads ``CONDA_EXE`` before PATH too); then PATH. Among several, micromamba > mamba > conda: micromamba
installs a conda-lock file without conda-lock, starts in ~0.1 s and its ``run`` execs the command
(research/anchors-bench-env.md §4). ``rattler`` (py-rattler, in-process) is the fallback when none of
them exists and a lock file does.

Every manager call gets the same computed child environment (:func:`manager_env`): one package cache
``ONLINEMAP_HOME/pkgs`` (``CONDA_PKGS_DIRS``) and ``MAMBA_ROOT_PREFIX=ONLINEMAP_HOME`` so micromamba's
root (and its ``pkgs/``) is ours; ``os.environ`` itself is never edited. Calls are serialised with a
file lock (:func:`manager_lock`): conda is not safe to run in parallel on one package cache.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, UsageError

__all__ = ["Manager", "MANAGER_PREFERENCE", "find_manager", "discover_managers", "manager_version",
           "manager_env", "manager_lock", "create_from_lock_argv", "create_explicit_argv",
           "create_from_environment_argv", "rattler_available"]

MANAGER_PREFERENCE = ("micromamba", "mamba", "conda")
_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Manager:
    """A manager that was found: its kind, the executable, its version (``None`` for unknown)."""

    name: str                  # micromamba | mamba | conda | rattler
    exe: str | None            # absolute path (None for rattler: in-process)
    version: str | None = None
    source: str = ""           # how it was found: --manager, ONLINEMAP_HOME/bin, MAMBA_EXE, CONDA_EXE, PATH, py-rattler

    def describe(self) -> str:
        where = f" {self.exe}" if self.exe else ""
        return f"{self.name} {self.version or '?'}{where} (via {self.source})"


def _kind_of(exe: str) -> str | None:
    base = Path(exe).name.lower()
    for name in MANAGER_PREFERENCE:
        if base == name or base.startswith(name + "-") or base.startswith(name + "."):
            return name
    return None


def manager_version(exe: str) -> str | None:
    """``exe --version`` -> "1.5.8" (conda prints "conda 24.1.2", mamba 1 "mamba 1.5.8\\nconda …")."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60,
                             env=manager_env(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    match = _VERSION.search((out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "")
    return match.group(1) if match else None


def rattler_available() -> tuple[bool, str]:
    """(True, version) when py-rattler imports, else (False, the reason)."""
    try:
        import rattler  # noqa: F401
    except Exception as exc:  # ImportError, or a broken binary wheel
        return False, f"py-rattler is not importable ({type(exc).__name__}: {exc})"
    try:
        from importlib.metadata import version

        return True, version("py-rattler")
    except Exception:
        return True, "unknown"


def _is_exe(path: str | Path | None) -> bool:
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def discover_managers() -> list[Manager]:
    """Every manager found, in discovery order (duplicates by path dropped); versions not probed yet."""
    found: list[Manager] = []
    seen: set[str] = set()

    def add(exe: str | None, source: str, kind: str | None = None) -> None:
        if not _is_exe(exe):
            return
        exe = os.path.abspath(exe)
        kind = kind or _kind_of(exe)
        if kind is None or exe in seen:
            return
        seen.add(exe)
        found.append(Manager(kind, exe, None, source))

    add(str(paths.bin_dir() / "micromamba"), "ONLINEMAP_HOME/bin")
    add(os.environ.get("MAMBA_EXE"), "MAMBA_EXE")
    add(os.environ.get("CONDA_EXE"), "CONDA_EXE")
    for name in MANAGER_PREFERENCE:
        add(shutil.which(name), "PATH", name)
    order = {n: i for i, n in enumerate(MANAGER_PREFERENCE)}
    return sorted(found, key=lambda m: order[m.name])   # stable: discovery order within one kind


def find_manager(requested: str | None = None, *, allow_rattler: bool = True) -> Manager:
    """The manager to use: ``requested`` (a name or a path) or the preferred one found; version probed.

    Raises MissingPrerequisiteError naming what was looked for and how to install micromamba.
    """
    if requested:
        if requested == "rattler":
            ok, why = rattler_available()
            if not ok:
                raise MissingPrerequisiteError(why, "pip install py-rattler (or pick --manager micromamba|mamba|conda)")
            return Manager("rattler", None, why, "--manager")
        if os.sep in requested or requested.startswith("."):
            if not _is_exe(requested):
                raise MissingPrerequisiteError(f"--manager {requested}: not an executable file",
                                               "pass a path to micromamba, mamba or conda, or just its name")
            kind = _kind_of(requested)
            if kind is None:
                raise UsageError(f"--manager {requested}: cannot tell which manager this is from its name",
                                 "the file name must start with micromamba, mamba or conda")
            exe = os.path.abspath(requested)
            return Manager(kind, exe, manager_version(exe), "--manager")
        if requested not in MANAGER_PREFERENCE:
            raise UsageError(f"unknown manager {requested!r}", "use micromamba, mamba, conda, rattler or a path")
        for m in discover_managers():
            if m.name == requested:
                return Manager(m.name, m.exe, manager_version(m.exe), m.source)
        raise MissingPrerequisiteError(f"{requested} not found (looked in ONLINEMAP_HOME/bin, $MAMBA_EXE, "
                                       f"$CONDA_EXE and PATH)", _install_hint())
    found = discover_managers()
    if found:
        m = found[0]
        return Manager(m.name, m.exe, manager_version(m.exe), m.source)
    if allow_rattler:
        ok, why = rattler_available()
        if ok:
            return Manager("rattler", None, why, "py-rattler")
    raise MissingPrerequisiteError("no conda manager found (micromamba, mamba, conda) and py-rattler is not "
                                   "importable", _install_hint())


def _install_hint() -> str:
    # `setup stage micromamba` installs it whatever the GPU (./runpod_setup.sh skips it without a conda model here)
    return (f"onlinemap setup stage micromamba installs micromamba into {paths.bin_dir()} (or put micromamba/mamba/conda on PATH, "
            "or pip install py-rattler and pass --manager rattler)")


def manager_env(base: dict | None = None) -> dict[str, str]:
    """The environment every manager call gets: a copy of ``base``/os.environ plus the shared cache."""
    env = dict(os.environ if base is None else base)
    home = paths.home()
    env["CONDA_PKGS_DIRS"] = str(paths.pkgs_dir())
    env["MAMBA_ROOT_PREFIX"] = str(home)
    env["MAMBA_NO_BANNER"] = "1"
    env["CONDA_YES"] = "1"
    for var in ("PYTHONPATH", "PYTHONHOME"):
        env.pop(var, None)
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_USER"] = "false"
    return env


@contextlib.contextmanager
def manager_lock(name: str = "manager") -> Iterator[None]:
    """An exclusive ``flock`` on ``ONLINEMAP_HOME/pkgs/.onlinemap-<name>.lock`` (blocks until free)."""
    lock_path = paths.ensure_dir(paths.pkgs_dir()) / f".onlinemap-{name}.lock"
    with open(lock_path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def create_from_lock_argv(manager: Manager, prefix: Path, lock_file: Path) -> list[str]:
    """micromamba: ``create -y -p PREFIX -f <name>-lock.yml`` (installs conda AND pip entries, no solve).

    micromamba treats ``-f`` as a conda-lock file only when its name ends in ``-lock.yml``; the caller
    passes a copy named ``<Model>-lock.yml``. conda/mamba use :func:`create_explicit_argv` instead.
    """
    if manager.name != "micromamba":
        raise ValueError(f"{manager.name} does not install conda-lock files directly; render an explicit file")
    if not str(lock_file).endswith(("-lock.yml", "-lock.yaml")):
        raise ValueError(f"micromamba needs a lock file named *-lock.yml, got {lock_file}")
    return [manager.exe, "create", "-y", "-p", str(prefix), "-f", str(lock_file)]


def create_explicit_argv(manager: Manager, prefix: Path, explicit_file: Path) -> list[str]:
    """conda/mamba (and micromamba): ``create -y -p PREFIX --file explicit.txt`` (an @EXPLICIT list, no solve)."""
    return [manager.exe, "create", "-y", "-p", str(prefix), "--file", str(explicit_file)]


def create_from_environment_argv(manager: Manager, prefix: Path, environment_file: Path) -> list[str]:
    """The UNLOCKED fallback: solve ``environment.yml`` now (versions may drift from what was tested)."""
    if manager.name == "micromamba":
        return [manager.exe, "create", "-y", "-p", str(prefix), "-f", str(environment_file)]
    return [manager.exe, "env", "create", "-p", str(prefix), "-f", str(environment_file)]
