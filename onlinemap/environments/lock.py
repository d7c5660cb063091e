"""``lock_env``: make ``envs/<Model>/conda-lock.yml`` with conda-lock, where conda channels are reachable.

    conda-lock lock -f <derived environment.yml> -p linux-64 --virtual-package-spec virtual-packages.yml \\
                    --lockfile envs/<Model>/conda-lock.yml

conda-lock reads a copy of environment.yml whose pip options are rewritten into what it accepts
(``lock_input``: pip-repositories, direct wheel URLs from the --find-links pages).

conda-lock is found on PATH, else run as ``python -m conda_lock`` when importable in the driver's
Python. It solves by calling a real conda/mamba/micromamba (and may try to download one), so it needs
the network: when it is missing or the channels cannot be reached we say so in one line (exit 3).
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.environments.lock_input import conda_lock_input
from onlinemap.environments.managers import manager_env
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError
from onlinemap.proc import run_supervised
from onlinemap.registry.spec import ModelSpec

__all__ = ["lock_env", "conda_lock_command", "lock_argv"]

_NETWORK = re.compile(r"(could not connect|connection (?:error|refused|reset)|name or service not known|"
                      r"temporary failure in name resolution|max retries exceeded|network is unreachable|"
                      r"failed to establish a new connection|timed? ?out|CondaHTTPError|ssl)", re.I)


def conda_lock_command() -> list[str] | None:
    """argv prefix that runs conda-lock here, or None."""
    exe = shutil.which("conda-lock")
    if exe:
        return [exe]
    if importlib.util.find_spec("conda_lock") is not None:
        return [sys.executable, "-m", "conda_lock"]
    return None


def lock_argv(spec: ModelSpec, command: list[str], environment_file: Path | None = None) -> list[str]:
    """``environment_file``: what conda-lock reads (lock_input.conda_lock_input's file; the pack's by default)."""
    argv = [*command, "lock", "-f", str(environment_file or spec.environment_file), "-p", "linux-64"]
    if spec.virtual_packages_file.is_file():
        argv += ["--virtual-package-spec", str(spec.virtual_packages_file)]
    return argv + ["--lockfile", str(spec.lock_file)]


def lock_env(spec: ModelSpec, *, progress: Callable[[str], None] = print, echo: bool = False) -> Path:
    """Write ``spec.lock_file`` with conda-lock; return its path. Raises MissingPrerequisiteError (exit 3)."""
    if spec.env_kind != "conda":
        raise MissingPrerequisiteError(f"{spec.name} runs in the driver's Python: there is nothing to lock",
                                       "lock conda models only (onlinemap env lock --all skips host models)")
    if not spec.environment_file.is_file():
        raise MissingPrerequisiteError(f"{spec.environment_file}: missing", "write the model's environment.yml first")
    command = conda_lock_command()
    if command is None:
        raise MissingPrerequisiteError("conda-lock not found (not on PATH, not importable as conda_lock)",
                                       "pip install conda-lock, on a machine that reaches conda-forge and PyPI, "
                                       f"then rerun `onlinemap env lock {spec.name}`")
    log_path = paths.ensure_dir(paths.logs_dir()) / f"lock-{spec.name}.log"
    with tempfile.TemporaryDirectory(prefix=f"onlinemap-lock-{spec.name}-") as tmp:
        source = conda_lock_input(spec.environment_file, Path(tmp) / "environment.yml", python=spec.python)
        argv = lock_argv(spec, command, source)
        progress(f"[{spec.name}] lock: {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv))}")
        out = run_supervised(argv, env=manager_env(), cwd=spec.folder, log_path=log_path, echo=echo)
    if out.ok and spec.lock_file.is_file():
        progress(f"[{spec.name}] lock: wrote {spec.lock_file}")
        return spec.lock_file
    try:
        text = log_path.read_text(errors="replace")[-20000:]
    except OSError:
        text = ""
    if _NETWORK.search(text):
        raise MissingPrerequisiteError(f"{spec.name}: conda-lock could not reach the conda channels / PyPI",
                                       f"run `onlinemap env lock {spec.name}` where the network reaches them (see {log_path})")
    raise OnlinemapError(f"{spec.name}: conda-lock failed (exit {out.returncode})",
                         f"see {log_path}; fix environment.yml / virtual-packages.yml and rerun")
