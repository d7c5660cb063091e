"""Where the home goes: never the clone's folder, HOME unset or empty handled, one rule for Python and bash.

A pod is simulated with ``ONLINEMAP_VOLUME`` (RunPod's volume mount path, default /workspace) pointing
at a temporary folder; the clone is a folder there with this project's ``setup.py`` and package.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from onlinemap import paths
from onlinemap.errors import UsageError
from tests.setup.conftest import REPO


def _fake_clone(path: Path) -> Path:
    (path / "onlinemap").mkdir(parents=True)
    (path / "onlinemap" / "__init__.py").write_text("")
    (path / "setup.py").write_text("")
    (path / "envs" / "reference").mkdir(parents=True)
    return path


@pytest.fixture
def volume(tmp_path, monkeypatch) -> Path:
    vol = tmp_path / "workspace"
    vol.mkdir()
    monkeypatch.setenv("ONLINEMAP_VOLUME", str(vol))
    monkeypatch.delenv("ONLINEMAP_HOME", raising=False)
    return vol


def test_pod_default_is_next_to_the_clone_not_the_clone(volume):
    _fake_clone(volume / "onlinemap")                 # cd /workspace && git clone …
    assert paths.home() == volume / "onlinemap-home"
    assert paths.envs_prefix_dir() != volume / "onlinemap" / "envs"


def test_an_older_pods_home_is_kept_when_it_is_a_home(volume):
    old = volume / "onlinemap"
    (old / "results").mkdir(parents=True)
    (old / "envs" / "MapTR-0123abcd").mkdir(parents=True)
    assert paths.home() == old
    _fake_clone(volume / "elsewhere")
    assert paths.home() == old                        # a clone elsewhere does not matter


def test_a_home_that_is_a_checkout_or_inside_one_is_refused(tmp_path, monkeypatch):
    clone = _fake_clone(tmp_path / "clone")
    monkeypatch.setenv("ONLINEMAP_HOME", str(clone))
    with pytest.raises(UsageError, match="source checkout") as err:
        paths.home()
    assert "export ONLINEMAP_HOME=" in err.value.one_line()
    monkeypatch.setenv("ONLINEMAP_HOME", str(REPO / "data"))   # inside this very checkout
    with pytest.raises(UsageError, match="source checkout"):
        paths.results_dir()
    git_tree = tmp_path / "gitrepo"
    (git_tree / ".git").mkdir(parents=True)
    monkeypatch.setenv("ONLINEMAP_HOME", str(git_tree))
    with pytest.raises(UsageError):
        paths.home()


def test_the_cli_refuses_it_in_one_line(tmp_path):
    clone = _fake_clone(tmp_path / "clone")
    env = dict(os.environ, ONLINEMAP_HOME=str(clone))
    proc = subprocess.run([sys.executable, "-m", "onlinemap", "results"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ONLINEMAP_HOME") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("home_value", [None, ""])
def test_home_unset_or_empty_uses_the_accounts_home(tmp_path, monkeypatch, home_value):
    import pwd

    monkeypatch.setenv("ONLINEMAP_VOLUME", str(tmp_path / "no-volume"))
    monkeypatch.delenv("ONLINEMAP_HOME", raising=False)
    if home_value is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", home_value)
    expected = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".onlinemap"
    assert paths.home() == expected and str(expected) != "/.onlinemap"


def test_the_scripts_rule_is_the_same_file(volume):
    """``python -I onlinemap/paths.py home`` (what the bash scripts call) answers as paths.home(), from any cwd."""
    _fake_clone(volume / "onlinemap")
    out = subprocess.run([sys.executable, "-I", str(REPO / "onlinemap" / "paths.py"), "home"], capture_output=True,
                         text=True, env=dict(os.environ), cwd=volume, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(paths.home()) == str(volume / "onlinemap-home")
    bad = subprocess.run([sys.executable, "-I", str(REPO / "onlinemap" / "paths.py"), "home"], capture_output=True,
                         text=True, env=dict(os.environ, ONLINEMAP_HOME=str(REPO)), cwd=volume, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ONLINEMAP_HOME")
