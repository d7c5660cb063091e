"""Hints are commands that work on the machine where they are printed."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.setup.conftest import REPO


def test_the_no_conda_manager_hint_installs_micromamba_even_without_a_gpu(tmp_path):
    """`env create MapTR` on a machine without GPU: ./runpod_setup.sh would skip micromamba there (no conda model
    is set up without a GPU), so the hint must be the stage that installs it whatever the GPU."""
    from onlinemap.environments.managers import _install_hint

    command = _install_hint().split(" installs micromamba")[0]
    assert command == "onlinemap setup stage micromamba", command
    env = dict(os.environ, ONLINEMAP_HOME=str(tmp_path / "home"), PATH="/usr/bin:/bin")
    proc = subprocess.run([sys.executable, "-m", "onlinemap", *command.split()[1:], "--dry-run"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would run" in proc.stdout and "skipped" not in proc.stdout
