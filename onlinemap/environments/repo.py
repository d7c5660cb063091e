"""Check out a model's repo at its pinned commit: ``ONLINEMAP_HOME/repos/<Model>@<commit12>``.

Clone into a temporary sibling, ``git checkout --detach <commit>``, verify ``git rev-parse HEAD`` is
the pinned commit, move the folder into place, and write ``.onlinemap-repo.json`` ({commit, url}) last,
so a folder with the marker is always a complete checkout (readiness.py reads it). Every git call is an
argv list run through proc.run_supervised into the env log.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.errors import OnlinemapError
from onlinemap.fileio import write_json_atomic
from onlinemap.proc import run_supervised
from onlinemap.readiness import REPO_INFO_FILE, repo_dir
from onlinemap.registry.spec import ModelSpec

__all__ = ["ensure_repo", "RepoError", "git_head"]


class RepoError(OnlinemapError):
    """Cloning or checking out the pinned commit failed."""


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"       # fail instead of asking for a password on a wrong URL
    return env


def git_head(path: Path) -> str | None:
    """``git rev-parse HEAD`` in ``path`` (None when that fails)."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=60, env=git_env(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _marker_ok(path: Path, commit: str) -> bool:
    try:
        info = json.loads((path / REPO_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("commit") == commit and git_head(path) == commit


def ensure_repo(spec: ModelSpec, *, log_path: Path, progress: Callable[[str], None] = print,
                force: bool = False) -> Path | None:
    """The checked-out repo of ``spec`` (cloned when missing or not at the pinned commit); None if it has none."""
    target = repo_dir(spec)
    if target is None:
        return None
    commit, url = spec.repo.commit, spec.repo.url
    if not force and _marker_ok(target, commit):
        progress(f"[{spec.name}] repo: {target} at {commit[:12]} (reused)")
        return target
    paths.ensure_dir(target.parent)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{int(time.time())}"
    progress(f"[{spec.name}] repo: cloning {url} at {commit[:12]} -> {target}")

    def git(*args: str, cwd: Path | None = None) -> None:
        out = run_supervised(["git", *args], cwd=cwd, env=git_env(), log_path=log_path)
        if not out.ok:
            shutil.rmtree(tmp, ignore_errors=True)
            verb = next(a for a in args if not a.startswith("-") and "=" not in a)
            raise RepoError(f"{spec.name}: `git {verb}` failed (exit {out.returncode}) for {url}",
                            f"see {log_path}; check the URL and the network, then rerun `onlinemap env create {spec.name}`")

    git("clone", "--no-checkout", url, str(tmp))
    git("checkout", "--detach", commit, cwd=tmp)
    if (tmp / ".gitmodules").is_file():
        git("submodule", "update", "--init", "--recursive", cwd=tmp)
    head = git_head(tmp)
    if head != commit:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RepoError(f"{spec.name}: checkout of {url} is at {head}, not the pinned {commit}",
                        f"see {log_path}; the commit may be gone from the remote")
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    write_json_atomic(target / REPO_INFO_FILE, {"schema_version": 1, "commit": commit, "url": url})
    progress(f"[{spec.name}] repo: checked out {commit[:12]}")
    return target
