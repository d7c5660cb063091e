"""Where everything lives: ``ONLINEMAP_HOME`` and the fixed layout under it.

``ONLINEMAP_HOME`` defaults to ``/workspace/onlinemap`` when ``/workspace`` exists (a RunPod pod's
volume, the only disk that survives a stop) and to ``~/.onlinemap`` otherwise. Nothing is created
at import time; callers ask for a directory with :func:`ensure_dir`.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "home", "repo_root", "envs_dirs", "results_dir", "envs_prefix_dir", "repos_dir", "weights_dir",
    "logs_dir", "bin_dir", "pkgs_dir", "data_dir", "default_dataroot", "ensure_dir", "SAFE_NAME",
    "check_safe_name",
]

import re

#: model names, run ids and other user-given names that become path components
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_safe_name(value: str, what: str) -> str:
    """Return ``value`` if it can be used as one path component, else raise a UsageError."""
    from onlinemap.errors import UsageError

    if not SAFE_NAME.match(value or "") or ".." in value:
        raise UsageError(f"invalid {what} {value!r}",
                         "use letters, digits, '.', '_' and '-' only (no path separators)")
    return value


def home() -> Path:
    """The onlinemap home: ``$ONLINEMAP_HOME``, else /workspace/onlinemap on a pod, else ~/.onlinemap."""
    env = os.environ.get("ONLINEMAP_HOME")
    if env:
        return Path(env).expanduser().absolute()
    if Path("/workspace").is_dir():
        return Path("/workspace/onlinemap")
    return Path.home() / ".onlinemap"


def repo_root() -> Path:
    """The source checkout this package runs from (an editable install: the clone in /workspace)."""
    return Path(__file__).resolve().parent.parent


def envs_dirs() -> list[Path]:
    """Folders holding one ``<Model>/model.toml`` each: ``$ONLINEMAP_ENVS`` (os.pathsep-separated) then the repo's envs/."""
    dirs = [Path(p).expanduser() for p in os.environ.get("ONLINEMAP_ENVS", "").split(os.pathsep) if p]
    dirs.append(repo_root() / "envs")
    return dirs


def results_dir() -> Path:
    return Path(os.environ.get("ONLINEMAP_RESULTS") or home() / "results")


def envs_prefix_dir() -> Path:
    return home() / "envs"


def repos_dir() -> Path:
    return home() / "repos"


def weights_dir() -> Path:
    return home() / "weights"


def logs_dir() -> Path:
    return home() / "logs"


def bin_dir() -> Path:
    return home() / "bin"


def pkgs_dir() -> Path:
    return home() / "pkgs"


def data_dir() -> Path:
    return home() / "data"


def default_dataroot() -> Path:
    """``$NUSCENES_ROOT`` if set, else the synthetic dataset that setup writes under ONLINEMAP_HOME."""
    env = os.environ.get("NUSCENES_ROOT")
    return Path(env).expanduser() if env else data_dir() / "nuscenes-synth"


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
