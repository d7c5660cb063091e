"""A variant's compatibility patches: ``repo`` ones in the checkout, ``site`` ones in the env's site-packages.

The patch files are the reviewed ones the verification lane also applies (``envs/<Model>/patches/``),
so the CPU lane exercises the very changes a modern GPU env runs. Each is applied with ``git apply``
(no fuzz, no partial hunks) and is idempotent: a patch whose reverse applies is already in and is left
alone, so a retry on a reused checkout works. What was applied (file, sha256) goes into the env info.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Callable

from onlinemap.environments.base import EnvHandle
from onlinemap.environments.installers import StepFailed, env_child_env, run_step
from onlinemap.registry.spec import ModelSpec

__all__ = ["patch_files", "apply_patches", "site_packages", "patches_digest"]


def patch_files(spec: ModelSpec, kind: str) -> list[Path]:
    """The variant's ``repo`` / ``site`` patch files; StepFailed in one line when one is missing."""
    files: list[Path] = []
    for pattern in (spec.repo_patches if kind == "repo" else spec.site_patches):
        glob = any(c in pattern for c in "*?[")
        hits = sorted(spec.folder.glob(pattern)) if glob else [spec.folder / pattern]
        if not hits or not all(f.is_file() for f in hits):
            raise StepFailed(f"{spec.name}: the {spec.variant} variant's {kind} patch {pattern} matches no file in "
                             f"{spec.folder}", "restore envs/<Model>/patches/ (the reviewed patch files) or fix "
                                               "repo_patches / site_patches in variant.toml")
        files += hits
    return files


def patches_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _git_ok(argv: list[str], cwd: Path) -> bool:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def apply_patches(spec: ModelSpec, kind: str, directory: Path, *, log_path: Path, env: dict,
                  progress: Callable[[str], None], echo: bool = False) -> list[dict]:
    """Apply the ``kind`` patches in ``directory``; return [{file, sha256, state: applied|already}]."""
    done = []
    for patch in patch_files(spec, kind):
        rel = patch.relative_to(spec.folder).as_posix()
        sha = hashlib.sha256(patch.read_bytes()).hexdigest()
        if _git_ok(["git", "apply", "-R", "--check", str(patch)], directory):
            state = "already"
        else:
            run_step(f"{kind} patch {rel}", ["git", "apply", "--check", "-v", str(patch)], model=spec.name,
                     log_path=log_path, env=env, cwd=directory, echo=echo)
            run_step(f"{kind} patch {rel}", ["git", "apply", str(patch)], model=spec.name, log_path=log_path,
                     env=env, cwd=directory, echo=echo)
            if not _git_ok(["git", "apply", "-R", "--check", str(patch)], directory):
                raise StepFailed(f"{spec.name}: {kind} patch {rel} reported success but is not in {directory}",
                                 "git may have skipped paths outside its work tree; see the log")
            state = "applied"
        progress(f"[{spec.name}] patches: {kind} {rel} ({state})")
        done.append({"file": rel, "sha256": sha, "state": state})
    return done


def site_packages(handle: EnvHandle) -> Path:
    """The env's purelib folder, as its own python reports it."""
    out = subprocess.run([handle.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, timeout=120, env=env_child_env(handle.prefix),
                         stdin=subprocess.DEVNULL)
    if out.returncode != 0 or not out.stdout.strip():
        raise StepFailed(f"{handle.model}: cannot find the env's site-packages ({handle.python})",
                         "recreate the env with --force")
    return Path(out.stdout.strip().splitlines()[-1])
