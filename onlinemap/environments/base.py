"""Env identity, presence and the launch command, for the ``host`` and ``conda`` env kinds.

Identity (asv's idea): a conda env's prefix is ``ONLINEMAP_HOME/envs/<Model>-<lockhash>``, where
the hash is of ``conda-lock.yml`` (or of ``environment.yml`` when no lock exists, flagged
``unlocked``). The info file ``.onlinemap-env.json`` is written **last** by env creation, so its
presence means the env is complete; it records which manager made the env, and the launch uses
that manager's run command:

  micromamba run -p PREFIX PREFIX/bin/python ...    (streams live, forwards SIGTERM)
  mamba run -p PREFIX PREFIX/bin/python ...          (mamba 2; mamba 1 adds --no-capture-output)
  conda run -p PREFIX --no-capture-output PREFIX/bin/python ...

The driver starts any of these in a new process session (proc.py), so timeouts and Ctrl-C kill
the whole group even though ``conda run`` forwards no signals. The ``host`` kind (the reference
model) runs under the driver's own interpreter.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, SpecError
from onlinemap.registry.spec import ModelSpec

__all__ = ["EnvHandle", "ENV_INFO_FILE", "MANAGERS", "lock_hash", "env_prefix", "read_env_info",
           "resolve_environment", "run_prefix_argv", "launcher_exe"]

ENV_INFO_FILE = ".onlinemap-env.json"
ENV_INFO_SCHEMA = 1
MANAGERS = ("micromamba", "mamba", "conda", "rattler")


@dataclass
class EnvHandle:
    """A ready environment: enough to build the argv that runs a script inside it."""

    model: str
    kind: str                              # host | conda
    python: str                            # the interpreter inside the env
    prefix: Path | None = None
    manager: str | None = None             # micromamba | mamba | conda | rattler (None for host)
    manager_exe: str | None = None
    manager_version: str | None = None
    lock_hash: str | None = None
    locked: bool = True
    info: dict = field(default_factory=dict)

    def launch_argv(self, script: Path, *args: str) -> list[str]:
        """argv running ``python script args…`` inside this env, through its manager's run command."""
        return [*run_prefix_argv(self), self.python, str(script), *args]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "python": self.python, "prefix": str(self.prefix) if self.prefix else None,
                "manager": self.manager, "manager_exe": self.manager_exe, "manager_version": self.manager_version,
                "lock_hash": self.lock_hash, "locked": self.locked,
                "variant": (self.info or {}).get("variant", "paper") if self.kind == "conda" else None,
                "patches": [p.get("file") for p in (self.info or {}).get("patches", [])]}


def run_prefix_argv(env: EnvHandle) -> list[str]:
    """The ``<manager> run -p PREFIX`` part of the launch (empty for host and rattler-made envs)."""
    if env.kind == "host" or env.manager in (None, "rattler", "direct"):
        return []
    exe = env.manager_exe or env.manager
    if env.manager == "micromamba":
        return [exe, "run", "-p", str(env.prefix)]
    if env.manager == "mamba":
        major = (env.manager_version or "2").split(".")[0]
        extra = ["--no-capture-output"] if major.isdigit() and int(major) < 2 else []
        return [exe, "run", "-p", str(env.prefix), *extra]
    if env.manager == "conda":
        return [exe, "run", "-p", str(env.prefix), "--no-capture-output"]
    raise SpecError(f"{env.prefix}/{ENV_INFO_FILE}: unknown manager {env.manager!r}",
                    f"expected one of {', '.join(MANAGERS)}; recreate the env with `onlinemap env create {env.model}`")


def lock_hash(spec: ModelSpec) -> tuple[str, bool]:
    """(12-hex hash of the lock file, True) or of environment.yml with False when there is no lock."""
    for path, locked in ((spec.lock_file, True), (spec.environment_file, False)):
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()[:12], locked
    raise SpecError(f"{spec.folder}: neither conda-lock.yml nor environment.yml exists",
                    "a conda model needs an environment.yml (and a conda-lock.yml made by `onlinemap env lock`)")


def env_prefix(spec: ModelSpec) -> Path:
    digest, _ = lock_hash(spec)
    return paths.envs_prefix_dir() / f"{spec.env_key}-{digest}"


def read_env_info(prefix: Path) -> dict | None:
    """The env's info file, or None when it is absent or unreadable (then the env is not ready)."""
    try:
        info = json.loads((Path(prefix) / ENV_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def resolve_environment(spec: ModelSpec) -> EnvHandle:
    """The ready env of ``spec``, or MissingPrerequisiteError saying what is missing and the fix."""
    if spec.env_kind == "host":
        missing = [m for m in spec.smoke.imports if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingPrerequisiteError(
                f"{spec.name} runs in the driver's Python, which lacks {', '.join(missing)}",
                "pip install -e '.[torch]' (or pip install torch) in the onlinemap venv")
        return EnvHandle(model=spec.name, kind="host", python=sys.executable)
    digest, locked = lock_hash(spec)
    prefix = paths.envs_prefix_dir() / f"{spec.env_key}-{digest}"
    info = read_env_info(prefix)
    if info is None:
        raise MissingPrerequisiteError(f"{spec.name}: env not installed (no ready env at {prefix})",
                                       f"onlinemap env create {spec.name}{spec.variant_flag}")
    if info.get("lock_hash") != digest or info.get("model") != spec.name:
        raise MissingPrerequisiteError(
            f"{spec.name}: env info at {prefix} does not match its lock (info says {info.get('model')}/"
            f"{info.get('lock_hash')}, lock is {digest})", f"onlinemap env create {spec.name}{spec.variant_flag} --force")
    python = prefix / "bin" / "python"
    if not python.exists():
        raise MissingPrerequisiteError(f"{spec.name}: env at {prefix} has no bin/python",
                                       f"onlinemap env create {spec.name}{spec.variant_flag} --force")
    return EnvHandle(model=spec.name, kind="conda", python=str(python), prefix=prefix,
                     manager=info.get("manager"), manager_exe=launcher_exe(spec.name, prefix, info),
                     manager_version=info.get("manager_version"), lock_hash=digest, locked=locked, info=info)


def launcher_exe(model: str, prefix: Path, info: dict) -> str | None:
    """The recorded manager executable, or one of the same kind found now when the recorded one is gone.

    A pod reset keeps the envs on the ``/workspace`` volume but may lose a conda installed on the
    container disk: then another micromamba/mamba/conda of the same kind (``ONLINEMAP_HOME/bin``,
    ``$MAMBA_EXE``/``$CONDA_EXE``, PATH) runs the env just as well; with none, one line says what to do.
    """
    kind, exe = info.get("manager"), info.get("manager_exe")
    if kind not in ("micromamba", "mamba", "conda") or (exe and os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return exe
    from onlinemap.environments.managers import discover_managers

    for found in discover_managers():
        if found.name == kind:
            return found.exe
    raise MissingPrerequisiteError(
        f"{model}: the env at {prefix} is launched with {kind}, and {exe or kind} is gone (no {kind} found in "
        f"ONLINEMAP_HOME/bin, $MAMBA_EXE, $CONDA_EXE or PATH)",
        f"put {kind} back on PATH, or rebuild the env with a manager that is here: `onlinemap env create {model} "
        f"--force` (on a pod ./runpod_setup.sh installs micromamba)")
