"""One installer per manager: put a lock's packages into an empty prefix (asv's plugin ``_setup``).

The template (create.py) owns everything around it: the prefix, the log, the failure cleanup, the
smoke import and the info file. An installer only runs its commands and raises :class:`StepFailed`
naming the step when one fails.

Before any of them runs, the template hashes every ``file://`` archive of the lock against it (integrity.py).

- micromamba: ``create -y -p PREFIX -f <Model>-lock.yml`` (conda AND pip entries; no solve).
- conda / mamba: render ``@EXPLICIT`` from the lock, ``create -y -p PREFIX --file explicit.txt``, then
  the pip entries with the env's own pip (``--no-deps``, ``name @ url#sha256=…``): what
  ``conda-lock install`` does, without needing conda-lock on the pod.
- rattler: py-rattler in-process (rattler_install.py), then the pip entries as above.
- unlocked fallback (no conda-lock.yml): ``create -f environment.yml`` solved now, with a loud warning.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.environments.base import EnvHandle, run_prefix_argv
from onlinemap.environments.lockfile import LockData, pip_requirement, render_explicit
from onlinemap.environments.managers import (Manager, create_explicit_argv, create_from_environment_argv,
                                             create_from_lock_argv, manager_env, manager_lock)
from onlinemap.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, OnlinemapError
from onlinemap.proc import run_supervised

__all__ = ["StepFailed", "raise_if_interrupted", "install_locked", "install_unlocked", "pip_install_argv", "env_child_env"]


class StepFailed(OnlinemapError):
    """A step of env creation failed; the message names the step, the hint the log file."""


def env_child_env(prefix: Path, extra: dict | None = None) -> dict[str, str]:
    """The environment of a command run in the env: manager_env() + PREFIX/bin first on PATH + CONDA_PREFIX."""
    import os

    env = manager_env()
    env["PATH"] = os.pathsep.join([str(Path(prefix) / "bin"), env.get("PATH", "")])
    env["CONDA_PREFIX"] = str(prefix)
    env.setdefault("PIP_CACHE_DIR", str(paths.pkgs_dir() / "pip"))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra or {})
    return env


def raise_if_interrupted(out, *, model: str, step: str, log_path: Path) -> None:
    """A Ctrl-C (SIGINT) or SIGTERM that stopped a step: exit 130 / 143 as everywhere else, not 1."""
    if out.interrupted:
        code = EXIT_INTERRUPTED if out.interrupted == "SIGINT" else EXIT_TERMINATED
        raise StepFailed(f"{model}: interrupted ({out.interrupted}) during env step '{step}'",
                         f"rerun `onlinemap env create {model}` to resume (see {log_path})", exit_code=code)


def run_step(step: str, argv: list[str], *, model: str, log_path: Path, env: dict, cwd: Path | None = None,
             echo: bool = False) -> None:
    """Run one command of a step through proc.run_supervised; raise StepFailed on a non-zero exit."""
    out = run_supervised(argv, env=env, cwd=cwd, log_path=log_path, echo=echo)
    raise_if_interrupted(out, model=model, step=step, log_path=log_path)
    if not out.ok:
        how = out.timeout or out.interrupted or f"exit {out.returncode}"
        raise StepFailed(f"{model}: env step '{step}' failed ({how}): {Path(argv[0]).name} {' '.join(argv[1:3])}…",
                         f"see {log_path}")


def pip_install_argv(handle: EnvHandle, requirements: list[str]) -> list[str]:
    return [*run_prefix_argv(handle), handle.python, "-m", "pip", "install", "--no-deps", "--no-input",
            "--disable-pip-version-check", *requirements]


def _pip_entries(handle: EnvHandle, lock: LockData, *, log_path: Path, progress: Callable[[str], None],
                 echo: bool) -> None:
    reqs = [pip_requirement(e) for e in lock.pip()]
    if not reqs:
        return
    progress(f"[{handle.model}] env: pip install --no-deps {len(reqs)} locked pip packages")
    run_step("pip install (locked pip entries)", pip_install_argv(handle, reqs), model=handle.model,
             log_path=log_path, env=env_child_env(handle.prefix), echo=echo)


def install_locked(handle: EnvHandle, manager: Manager, lock: LockData, *, log_path: Path,
                   progress: Callable[[str], None] = print, echo: bool = False) -> None:
    """Install ``lock`` into the (absent or empty) ``handle.prefix`` with ``manager``.

    The template has already hashed every ``file://`` archive against the lock (integrity.py), whichever
    the manager: conda copies local tarballs unchecked and py-rattler does not check them either.
    """
    prefix = Path(handle.prefix)
    menv = manager_env()
    with tempfile.TemporaryDirectory(prefix="onlinemap-lock-") as tmp:
        if manager.name == "rattler":
            from onlinemap.environments.rattler_install import install_lock_with_rattler

            progress(f"[{handle.model}] env: py-rattler installing {len(lock.conda())} conda packages -> {prefix}")
            with manager_lock():
                try:
                    install_lock_with_rattler(lock, prefix, paths.ensure_dir(paths.pkgs_dir()))
                except OnlinemapError:
                    raise
                except Exception as exc:  # rattler raises its own exception types
                    with open(log_path, "a") as fh:
                        fh.write(f"py-rattler install failed: {type(exc).__name__}: {exc}\n")
                    raise StepFailed(f"{handle.model}: env step 'install (py-rattler)' failed: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                                     f"see {log_path}") from None
        elif manager.name == "micromamba":
            # micromamba takes -f as a conda-lock file only when the name ends in -lock.yml
            lock_copy = Path(tmp) / f"{handle.model}-lock.yml"
            shutil.copyfile(lock.path, lock_copy)
            progress(f"[{handle.model}] env: micromamba create from {lock.path.name} -> {prefix}")
            with manager_lock():
                run_step("install (micromamba create from lock)", create_from_lock_argv(manager, prefix, lock_copy),
                         model=handle.model, log_path=log_path, env=menv, echo=echo)
            return  # micromamba installs the pip entries itself
        else:
            explicit = render_explicit(lock, Path(tmp) / f"{handle.model}-linux-64.explicit.txt")
            progress(f"[{handle.model}] env: {manager.name} create --file (explicit, from {lock.path.name}) -> {prefix}")
            with manager_lock():
                run_step(f"install ({manager.name} create --file explicit)",
                         create_explicit_argv(manager, prefix, explicit), model=handle.model, log_path=log_path,
                         env=menv, echo=echo)
    with manager_lock():
        _pip_entries(handle, lock, log_path=log_path, progress=progress, echo=echo)


def install_unlocked(handle: EnvHandle, manager: Manager, environment_file: Path, *, log_path: Path,
                     progress: Callable[[str], None] = print, warn: Callable[[str], None] = print,
                     echo: bool = False) -> None:
    """Solve and install environment.yml now (no lock): versions may differ from what was tested."""
    bar = "!" * 78
    warn(bar)
    warn(f"WARNING: {handle.model} has no conda-lock.yml: creating an UNLOCKED env from {environment_file}.")
    warn("WARNING: the solver picks versions today; results may not be reproducible. Lock it with")
    warn(f"WARNING:   onlinemap env lock {handle.model}   (where conda channels are reachable) and commit the lock.")
    warn(bar)
    if manager.name == "rattler":
        raise StepFailed(f"{handle.model}: py-rattler installs lock files only and {handle.model} has no conda-lock.yml",
                         f"run `onlinemap env lock {handle.model}`, or use --manager micromamba|mamba|conda")
    progress(f"[{handle.model}] env: {manager.name} solving {environment_file.name} (unlocked) -> {handle.prefix}")
    with manager_lock():
        run_step(f"install ({manager.name} create from environment.yml, unlocked)",
                 create_from_environment_argv(manager, Path(handle.prefix), environment_file),
                 model=handle.model, log_path=log_path, env=manager_env(), echo=echo)
