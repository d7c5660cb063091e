"""Fixtures for the setup tests: the env-machinery fixtures (stand-in conda, local git repo, test packs)
are reused from tests/environments, and ``setup_env`` runs the real scripts against a temporary home.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.environments.conftest import fakeconda, git_redirect, git_repo, make_pack  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent.parent
NO_GPU = {"available": False, "reason": "test: no GPU"}


@pytest.fixture
def script_env(tmp_path) -> dict:
    """Environment for running runpod_setup.sh / quick_test_models.sh in a fresh temporary ONLINEMAP_HOME.

    ONLINEMAP_VENV points at the venv running these tests (sys.prefix), so the script's driver-venv
    stage finds a ready venv and does NOT pip-install torch again (that takes minutes and GBs).
    """
    env = dict(os.environ)
    env["ONLINEMAP_HOME"] = str(tmp_path / "omhome")
    env["ONLINEMAP_VENV"] = sys.prefix
    env.pop("NUSCENES_ROOT", None)
    env.pop("ONLINEMAP_ENVS", None)
    env.pop("ONLINEMAP_SETUP_FAULT", None)
    env.pop("ONLINEMAP_RESULTS", None)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter")   # the driver-venv kernelspec the script registers
    env["ONLINEMAP_SYNTH_SIZE"] = "2x8"     # the default (10x40, the real mini's size) takes ~1 min CPU to write
    return env


@pytest.fixture(autouse=True)
def plenty_of_disk(monkeypatch):
    """The host's free disk must not decide these tests (CI once had 74.7 GB against the ~76 GB that five
    models need): in-process stages see 500 GB. test_stages.py::test_disk_shortfall_* sets its own figure."""
    from onlinemap.setup import system

    monkeypatch.setattr(system, "disk_free_gb", lambda path: 500.0)
