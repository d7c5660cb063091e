"""Repo checkout at the pinned commit, from a local git repo made in tmp (git url.insteadOf redirect)."""
from __future__ import annotations

import json

import pytest

from onlinemap.environments.repo import RepoError, ensure_repo, git_head
from onlinemap.readiness import REPO_INFO_FILE, repo_dir


def test_checkout_pins_commit_and_writes_marker_last(make_pack, git_redirect, om_home, tmp_path):
    spec = make_pack()
    log = tmp_path / "log.txt"
    path = ensure_repo(spec, log_path=log, progress=lambda s: None)
    assert path == repo_dir(spec) == om_home / "repos" / f"FakeMap@{git_redirect['pinned'][:12]}"
    assert git_head(path) == git_redirect["pinned"] != git_redirect["head"]
    assert (path / "setup_marker.txt").read_text() == "v1\n"          # the pinned commit, not HEAD
    info = json.loads((path / REPO_INFO_FILE).read_text())
    assert info["commit"] == git_redirect["pinned"] and info["url"] == git_redirect["url"]
    lines = []
    assert ensure_repo(spec, log_path=log, progress=lines.append) == path
    assert "reused" in lines[0]
    # a checkout moved to another commit behind our back is re-made
    import subprocess
    subprocess.run(["git", "-C", str(path), "checkout", "-q", git_redirect["head"]], check=True)
    ensure_repo(spec, log_path=log, progress=lambda s: None)
    assert git_head(path) == git_redirect["pinned"]


def test_unknown_commit_fails_cleanly(make_pack, git_redirect, om_home, tmp_path):
    spec = make_pack(commit="0" * 40)
    with pytest.raises(RepoError, match="git checkout"):
        ensure_repo(spec, log_path=tmp_path / "log.txt", progress=lambda s: None)
    assert not repo_dir(spec).exists()
    assert not [p for p in (om_home / "repos").iterdir()]          # no temp clone left behind
