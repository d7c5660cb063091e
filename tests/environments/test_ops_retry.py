"""A failed ``env create`` can be retried: the ``[ops]`` steps that change the repo checkout are idempotent.

Step markers live in the prefix, which a failure deletes, while the checkout (with side clones inside it)
is reused: before the fix every retry failed at step 1 with ``fatal: destination path 'side' already
exists``. Real git and the stand-in micromamba (tests/fixtures/fakeconda) run as subprocesses.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from onlinemap.environments.base import read_env_info
from onlinemap.environments.create import StepFailed
from tests.environments.test_create import create, lock_with


def _ops(git_repo, commit):
    return [
        ["git", "clone", git_repo["url"], "side"],
        ["git", "-C", "side", "-c", "advice.detachedHead=false", "checkout", "--detach", commit],
        # a late step that fails until OPS_OK is set (a failed CUDA build, say)
        ["python", "-c", "import os, sys; sys.exit(0 if os.environ.get('OPS_OK') else 7)"],
    ]


def _head(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_retry_after_a_late_ops_failure_succeeds_and_keeps_the_side_clone(
        fakeconda, make_pack, channel, git_redirect, monkeypatch, om_home):
    spec = make_pack(lock=lock_with(channel), ops=_ops(git_redirect, git_redirect["pinned"]))
    monkeypatch.delenv("OPS_OK", raising=False)
    with pytest.raises(StepFailed, match=r"ops build 3/3"):
        create(spec, skip_weights=True)
    assert not list((om_home / "envs").glob("FakeMap-*")), "the failed prefix is removed"
    side = next((om_home / "repos").glob("FakeMap@*")) / "side"
    assert _head(side) == git_redirect["pinned"]
    (side / "kept.txt").write_text("proof the clone was kept, not re-made\n")

    monkeypatch.setenv("OPS_OK", "1")
    lines = []
    res = create(spec, skip_weights=True, progress=lines.append)
    assert read_env_info(Path(res.prefix)) and (side / "kept.txt").exists()
    assert any("already at" in ln and "(kept)" in ln for ln in lines), lines


def test_a_side_clone_not_at_the_pinned_commit_is_made_again(
        fakeconda, make_pack, channel, git_redirect, monkeypatch, om_home):
    spec = make_pack(lock=lock_with(channel), ops=_ops(git_redirect, git_redirect["pinned"]))
    monkeypatch.delenv("OPS_OK", raising=False)
    with pytest.raises(StepFailed):
        create(spec, skip_weights=True)
    side = next((om_home / "repos").glob("FakeMap@*")) / "side"
    subprocess.run(["git", "-C", str(side), "checkout", "-q", "--detach", git_redirect["head"]], check=True)
    (side / "stale.txt").write_text("left by a half-done earlier attempt\n")

    monkeypatch.setenv("OPS_OK", "1")
    create(spec, skip_weights=True)
    assert _head(side) == git_redirect["pinned"] and not (side / "stale.txt").exists()
