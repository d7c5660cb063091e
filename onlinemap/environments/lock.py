"""``lock_env``: make ``envs/<Model>/conda-lock.yml`` with conda-lock, where conda channels are reachable.

    conda-lock lock -f conda-lock-input.yml -p linux-64 --virtual-package-spec virtual-packages.yml \\
                    --check-input-hash --lockfile conda-lock.yml          (run in envs/<Model>/)

conda-lock reads ``envs/<Model>/conda-lock-input.yml``: environment.yml with its pip options rewritten into
what it accepts (``lock_input``: pip-repositories, direct wheel URLs from the --find-links pages). The
file keeps one stable path beside the lock, because conda-lock 4.0.3 records each input path, relative
to the lock, in ``metadata.sources`` and unions it with the sources already there: a fresh temp dir per
run made every relock rewrite the lock (and so rename the env prefix, which is keyed by the lock's hash)
and left ``conda-lock lock --update PKG`` pointing at a deleted file. ``--check-input-hash`` makes an
unchanged pack skip the solve and leave the lock's bytes alone.

conda-lock is found on PATH, else run as ``python -m conda_lock`` when importable in the driver's
Python. It solves by calling a real conda/mamba/micromamba, so it needs the conda channels, PyPI and,
for any ``pip:`` section, its PyPI->conda name map (fetched from GitHub). A failure is classified from
what THIS run wrote to the log (an older run's lines are never read), by the error TYPES conda and
Python name (``"exception_name": "PackagesNotFoundError"`` in conda's JSON, the exception class of the
last traceback line), never by words that also occur in package names.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.environments.lock_input import conda_lock_input
from onlinemap.environments.managers import manager_env
from onlinemap.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, MissingPrerequisiteError, OnlinemapError
from onlinemap.proc import run_supervised
from onlinemap.registry.spec import ModelSpec

__all__ = ["lock_env", "conda_lock_command", "lock_argv", "classify_failure", "LOCK_INPUT_FILE",
           "NETWORK_ERRORS", "SOLVE_ERRORS"]

LOCK_INPUT_FILE = "conda-lock-input.yml"

# conda's own exception classes (conda.exceptions, as conda-lock 4.0.3 vendors them) and the Python
# networking ones (requests, urllib3, httpx, ssl, socket, urllib) that conda-lock's traceback can end in
NETWORK_ERRORS = frozenset({
    "CondaHTTPError", "CondaSSLError", "ProxyError", "UnavailableInvalidChannel",
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "SSLError", "MaxRetryError",
    "NewConnectionError", "NameResolutionError", "ConnectTimeoutError", "ReadTimeoutError", "ProtocolError",
    "RemoteDisconnected", "ChunkedEncodingError", "ConnectError", "ReadError", "TimeoutException", "gaierror", "timeout", "TimeoutError", "URLError", "SSLCertVerificationError",
    "ConnectionRefusedError", "ConnectionResetError",
})
SOLVE_ERRORS = frozenset({
    "PackagesNotFoundError", "ResolvePackageNotFound", "UnsatisfiableError", "LibMambaUnsatisfiableError",
    "SpecsConfigurationConflictError", "InvalidMatchSpec", "InvalidSpec", "InvalidVersionSpec",
    "SolverProblemError", "InvalidRequirement", "PackageNotFoundError",
})
_CONDA_JSON_TYPE = re.compile(r'"exception_name"\s*:\s*"([A-Za-z_]\w*)"')
_TRACEBACK_TYPE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*):(?:\s|$)", re.M)   # "pkg.mod.Type: text"

_NAME_MAP = "conda-lock's PyPI->conda name map (fetched from GitHub, for any pip: section)"
_CONDARC = ("conda-lock sets CONDA_ROOT to its own prefix, so the solver conda ignores its root .condarc: "
            "pass channel/proxy settings with CONDARC=/path/to/.condarc")


def conda_lock_command() -> list[str] | None:
    """argv prefix that runs conda-lock here, or None."""
    exe = shutil.which("conda-lock")
    if exe:
        return [exe]
    if importlib.util.find_spec("conda_lock") is not None:
        return [sys.executable, "-m", "conda_lock"]
    return None


def lock_argv(spec: ModelSpec, command: list[str], environment_file: Path | None = None) -> list[str]:
    """argv run in ``spec.env_dir``; ``environment_file``: what conda-lock reads (default: the kept input)."""
    source = Path(environment_file) if environment_file else spec.env_dir / LOCK_INPUT_FILE
    argv = [*command, "lock", "-f", _rel(source, spec.env_dir), "-p", "linux-64"]
    if spec.virtual_packages_file.is_file():
        argv += ["--virtual-package-spec", _rel(spec.virtual_packages_file, spec.env_dir)]
    return argv + ["--check-input-hash", "--lockfile", _rel(spec.lock_file, spec.env_dir)]


def _rel(path: Path, folder: Path) -> str:
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return str(path)


def classify_failure(text: str) -> tuple[str, str | None]:
    """("network" | "solve" | "other", the error type that decided it) from one run's conda-lock output.

    Types come from conda's JSON error (``exception_name``) first, then from the exception class at the
    start of traceback lines (``requests.exceptions.ConnectionError: …``). A solve error wins over a network
    one (conda names the package it could not find; a retry elsewhere would fail the same way).
    """
    types = _CONDA_JSON_TYPE.findall(text)
    types += [m.group(1) for m in _TRACEBACK_TYPE.finditer(text)
              if m.group(1) in NETWORK_ERRORS or m.group(1) in SOLVE_ERRORS]
    solve = next((t for t in types if t in SOLVE_ERRORS), None)
    if solve:
        return "solve", solve
    network = next((t for t in types if t in NETWORK_ERRORS), None)
    if network:
        return "network", network
    return "other", None


def _write_if_changed(tmp: Path, dest: Path) -> None:
    if dest.is_file() and dest.read_bytes() == tmp.read_bytes():
        tmp.unlink()
    else:
        os.replace(tmp, dest)


def lock_env(spec: ModelSpec, *, progress: Callable[[str], None] = print, echo: bool = False) -> Path:
    """Write ``spec.lock_file`` with conda-lock; return its path.

    Raises MissingPrerequisiteError (exit 3) when conda-lock is missing or the network is, an
    OnlinemapError (exit 1) when the solve fails, exit 130/143 when interrupted.
    """
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
    source = spec.env_dir / LOCK_INPUT_FILE
    tmp = spec.env_dir / f".{LOCK_INPUT_FILE}.tmp-{os.getpid()}"
    try:
        conda_lock_input(spec.environment_file, tmp, python=spec.python)
        _write_if_changed(tmp, source)
    finally:
        tmp.unlink(missing_ok=True)
    argv = lock_argv(spec, command, source)
    progress(f"[{spec.name}] lock: {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv))}")
    before = spec.lock_file.read_bytes() if spec.lock_file.is_file() else None
    start = log_path.stat().st_size if log_path.is_file() else 0
    out = run_supervised(argv, env=manager_env(), cwd=spec.env_dir, log_path=log_path, echo=echo)
    if out.interrupted:
        raise OnlinemapError(f"{spec.name}: conda-lock interrupted ({out.interrupted})",
                             f"rerun `onlinemap env lock {spec.name}`",
                             exit_code=EXIT_INTERRUPTED if out.interrupted == "SIGINT" else EXIT_TERMINATED)
    if out.ok and spec.lock_file.is_file():
        same = before is not None and spec.lock_file.read_bytes() == before
        progress(f"[{spec.name}] lock: {spec.lock_file} " + ("unchanged" if same else "written"))
        return spec.lock_file
    try:
        with open(log_path, "rb") as fh:                       # only what THIS run wrote
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    kind, error = classify_failure(text)
    if kind == "network":
        raise MissingPrerequisiteError(
            f"{spec.name}: conda-lock could not reach the conda channels, PyPI or {_NAME_MAP} ({error})",
            f"run `onlinemap env lock {spec.name}` where the network reaches them; {_CONDARC} (see {log_path})")
    if kind == "solve":
        raise OnlinemapError(f"{spec.name}: conda-lock's solve failed ({error})",
                             f"fix {spec.environment_file.name} / virtual-packages.yml and rerun; {_CONDARC} "
                             f"(see {log_path})")
    raise OnlinemapError(f"{spec.name}: conda-lock failed (exit {out.returncode})",
                         f"see {log_path}; it needs the conda channels, PyPI and {_NAME_MAP}; {_CONDARC}")
