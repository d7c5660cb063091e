"""Manager discovery and argv building, with the stand-in executables on a controlled PATH."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from onlinemap.environments.managers import (Manager, create_explicit_argv, create_from_environment_argv,
                                             create_from_lock_argv, discover_managers, find_manager, manager_env)
from onlinemap.errors import MissingPrerequisiteError, UsageError
from tests.environments.conftest import install_fakeconda


def test_preference_micromamba_then_mamba_then_conda(fakeconda, monkeypatch):
    m = find_manager()
    assert (m.name, m.exe, m.version, m.source) == ("micromamba", fakeconda.exe("micromamba"), "1.5.8", "PATH")
    (fakeconda.bin / "micromamba").unlink()
    assert find_manager().name == "mamba" and find_manager().version == "2.0.5"
    (fakeconda.bin / "mamba").unlink()
    m = find_manager()
    assert (m.name, m.version) == ("conda", "24.1.2")          # parsed from "conda 24.1.2"


def test_home_bin_then_env_vars_then_path(fakeconda, om_home, tmp_path, monkeypatch):
    other = install_fakeconda(tmp_path / "other", names=("conda",))
    monkeypatch.setenv("CONDA_EXE", str(other / "conda"))
    (fakeconda.bin / "micromamba").unlink()
    (fakeconda.bin / "mamba").unlink()
    found = discover_managers()
    assert [(m.name, m.source) for m in found] == [("conda", "CONDA_EXE"), ("conda", "PATH")]
    assert find_manager().exe == str(other / "conda")
    home_bin = install_fakeconda(om_home / "bin", names=("micromamba",))
    m = find_manager()
    assert (m.name, m.exe, m.source) == ("micromamba", str(home_bin / "micromamba"), "ONLINEMAP_HOME/bin")


def test_explicit_manager_by_name_and_path(fakeconda, tmp_path):
    assert find_manager("conda").exe == fakeconda.exe("conda")
    assert find_manager(fakeconda.exe("mamba")).name == "mamba"
    assert find_manager("rattler").name == "rattler"
    with pytest.raises(UsageError):
        find_manager("pip")
    with pytest.raises(MissingPrerequisiteError, match="not an executable"):
        find_manager(str(tmp_path / "nope" / "micromamba"))


def test_nothing_found(om_home, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("MAMBA_EXE", raising=False)
    assert find_manager().name == "rattler"                    # py-rattler is the fallback
    with pytest.raises(MissingPrerequisiteError, match="no conda manager found"):
        find_manager(allow_rattler=False)
    with pytest.raises(MissingPrerequisiteError, match="micromamba not found"):
        find_manager("micromamba")


def test_argv_per_manager(tmp_path):
    prefix, lock = tmp_path / "p", tmp_path / "MapTR-lock.yml"
    mm, conda = Manager("micromamba", "/x/micromamba", "2.0"), Manager("conda", "/x/conda", "24.1")
    assert create_from_lock_argv(mm, prefix, lock) == ["/x/micromamba", "create", "-y", "-p", str(prefix), "-f", str(lock)]
    with pytest.raises(ValueError):
        create_from_lock_argv(mm, prefix, tmp_path / "lock.yml")     # micromamba would not read it as a lock
    with pytest.raises(ValueError):
        create_from_lock_argv(conda, prefix, lock)
    assert create_explicit_argv(conda, prefix, tmp_path / "e.txt")[1:] == ["create", "-y", "-p", str(prefix),
                                                                          "--file", str(tmp_path / "e.txt")]
    assert create_from_environment_argv(conda, prefix, Path("environment.yml"))[1:3] == ["env", "create"]
    assert create_from_environment_argv(mm, prefix, Path("environment.yml"))[1:3] == ["create", "-y"]


def test_manager_env_is_computed_not_edited(om_home, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    before = dict(os.environ)
    env = manager_env()
    assert env["CONDA_PKGS_DIRS"] == str(om_home / "pkgs") and env["MAMBA_ROOT_PREFIX"] == str(om_home)
    assert "PYTHONPATH" not in env and env["PYTHONNOUSERSITE"] == "1"
    assert dict(os.environ) == before
