"""Where everything lives: ``ONLINEMAP_HOME`` and the fixed layout under it.

``ONLINEMAP_HOME`` defaults to ``/workspace/onlinemap-home`` when ``/workspace`` exists (a RunPod
pod's volume, the only disk that survives a stop; ``$ONLINEMAP_VOLUME`` names another mount path) and
to ``~/.onlinemap`` otherwise. The pod default is deliberately not ``/workspace/onlinemap``: that is
where ``cd /workspace && git clone …`` puts the source checkout, and a home inside a checkout mixes
model envs, venv and results with the repo's own ``envs/``. A home that is (or lies inside) a source
checkout is refused. A pod set up by an older onlinemap keeps its ``/workspace/onlinemap`` home as long
as that folder is a home and not a checkout. Nothing is created at import time; callers ask for a
directory with :func:`ensure_dir`. ``python onlinemap/paths.py home`` prints the home (the shell
scripts ask this file, so there is one rule).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "home", "repo_root", "envs_dirs", "results_dir", "envs_prefix_dir", "repos_dir", "weights_dir",
    "logs_dir", "bin_dir", "pkgs_dir", "data_dir", "default_dataroot", "ensure_dir", "SAFE_NAME",
    "check_safe_name", "volume", "user_home", "is_source_checkout", "POD_HOME_NAME", "LEGACY_POD_HOME_NAME",
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


#: the home's folder name on a pod volume: not the name ``git clone`` gives the checkout
POD_HOME_NAME = "onlinemap-home"
#: the pod default before: kept for pods whose ``/workspace/onlinemap`` is such a home (not a checkout)
LEGACY_POD_HOME_NAME = "onlinemap"
_HOME_MARKERS = ("results", "venv", "setup", "pkgs", "weights", "repos")


def volume() -> Path:
    """The pod's persistent volume: ``$ONLINEMAP_VOLUME`` (RunPod lets a pod mount it elsewhere), else /workspace."""
    return Path(os.environ.get("ONLINEMAP_VOLUME") or "/workspace")


def user_home() -> Path:
    """``$HOME``, or the account's home from the password database when HOME is unset or empty (cron, ``env -i``)."""
    env = os.environ.get("HOME")
    if env:
        return Path(env)
    import pwd

    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir or "/")
    except KeyError:   # a uid with no passwd entry (some containers)
        return Path("/root") if os.getuid() == 0 else Path("/tmp")


def is_source_checkout(path: Path) -> bool:
    """True for a folder holding this project's source (its ``setup.py`` and ``onlinemap/__init__.py``) or a git work tree."""
    return ((path / "setup.py").is_file() and (path / "onlinemap" / "__init__.py").is_file()) \
        or (path / ".git").exists()


def _default_home() -> Path:
    vol = volume()
    if vol.is_dir():
        legacy = vol / LEGACY_POD_HOME_NAME
        if legacy.is_dir() and not is_source_checkout(legacy) and any((legacy / m).exists() for m in _HOME_MARKERS):
            return legacy
        return vol / POD_HOME_NAME
    return user_home() / ".onlinemap"


def home() -> Path:
    """The onlinemap home: ``$ONLINEMAP_HOME``, else ``/workspace/onlinemap-home`` on a pod, else ~/.onlinemap.

    Raises a UsageError when that folder is a source checkout or lies inside this checkout: the two
    must never share files (``git status``, ``env list`` and ``env remove`` would see each other's).
    """
    path, clash = _home_and_clash()
    if clash:
        from onlinemap.errors import UsageError

        raise UsageError(*clash)
    return path


def _home_and_clash() -> tuple[Path, tuple[str, str] | None]:
    env = os.environ.get("ONLINEMAP_HOME")
    path = Path(env).expanduser().absolute() if env else _default_home()
    repo = repo_root()
    inside = path == repo or repo in path.parents
    if not (inside or is_source_checkout(path)):
        return path, None
    where = "ONLINEMAP_HOME" if env else "the default home"
    better = (repo if inside else path).parent / POD_HOME_NAME
    return path, (f"{where} {path} is a source checkout (or inside one): data and code must not share a folder",
                  f"export ONLINEMAP_HOME={better} (any folder outside the clone)")


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


if __name__ == "__main__":   # `python -I onlinemap/paths.py home`: what runpod_setup.sh and quick_test_models.sh use
    import sys

    if sys.argv[1:] != ["home"]:
        sys.exit("usage: python onlinemap/paths.py home")
    found, problem = _home_and_clash()
    if problem:
        print("error: {} -> {}".format(*problem), file=sys.stderr)
        sys.exit(2)   # EXIT_USAGE
    print(found)
