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


def test_an_env_whose_ops_miss_the_gpu_is_rebuilt_cleanly(fakeconda, make_pack, channel, git_redirect, om_home):
    """The arch list is recorded in the env info; on a GPU it does not cover (a volume moved to another
    GPU type) the env is rebuilt and the stale in-place build outputs are removed first."""
    build = ("import os, pathlib; arch = os.environ['TORCH_CUDA_ARCH_LIST']; "
             "pathlib.Path('build/temp.linux-x86_64-3.8').mkdir(parents=True, exist_ok=True); "
             "p = pathlib.Path('ext.so'); old = p.read_text() if p.exists() else None; "
             "p.write_text(old or arch); pathlib.Path('seen.txt').open('a').write(arch + '\\n')")
    spec = make_pack(lock=lock_with(channel), ops=[["python", "-c", build]])
    first = create(spec, skip_weights=True)
    info = read_env_info(Path(first.prefix))
    assert info["ops_arch_list"] == "8.0;8.6"
    repo = next((om_home / "repos").glob("FakeMap@*"))
    assert (repo / "ext.so").read_text() == "8.0;8.6"

    ampere = {"available": True, "compute_capability": "8.6", "name": "RTX 3090"}
    assert create(spec, skip_weights=True, gpu=ampere).reused          # covered: reused as it is

    turing = {"available": True, "compute_capability": "7.5", "name": "T4"}   # 8.x cubins do not run on 7.5
    rebuilt = create(spec, skip_weights=True, gpu=turing)
    assert not rebuilt.reused and read_env_info(Path(rebuilt.prefix))["ops_arch_list"] == "7.5;8.0;8.6"
    # the in-place .so made for 8.0;8.6 was removed, so the build made it again for the new list
    assert (repo / "ext.so").read_text() == "7.5;8.0;8.6"
    assert (repo / "seen.txt").read_text().split() == ["8.0;8.6", "7.5;8.0;8.6"]
