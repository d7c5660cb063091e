"""A Jupyter kernel for the tests: this interpreter (the test venv), in a temp kernels dir on JUPYTER_PATH.

The user's global kernels are never touched: the kernelspec is written under tmp and found
through JUPYTER_PATH (which jupyter_client reads at every lookup).
"""
from __future__ import annotations

import json
import sys

import pytest

KERNEL = "onlinemap-test"


@pytest.fixture
def test_kernel(tmp_path, monkeypatch) -> str:
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "onlinemap tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("MPLBACKEND", raising=False)   # keep the inline backend: the plot must render
    return KERNEL
