"""``onlinemap kernel``: kernelspecs written into a --prefix (never the user's kernels), found by Jupyter, usable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli


def test_install_list_use_remove_reference_kernel(om_home, tmp_path):
    prefix = tmp_path / "prefix"
    proc = run_cli("kernel", "install", "reference", "--prefix", str(prefix))
    assert proc.returncode == 0, proc.stderr
    spec_dir = prefix / "share" / "jupyter" / "kernels" / "onlinemap-reference"
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"] == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["env"]["ONLINEMAP_HOME"] == str(om_home) and "PYTHONPATH" not in spec["env"]  # no repo

    # Jupyter itself finds it
    env = dict(os.environ, JUPYTER_PATH=str(prefix / "share" / "jupyter"))
    listed = subprocess.run([str(Path(sys.executable).parent / "jupyter-kernelspec"), "list", "--json"],
                            capture_output=True, text=True, env=env, check=True)
    found = json.loads(listed.stdout)["kernelspecs"]
    assert "onlinemap-reference" in found

    # and the kernel starts and runs the driver's python
    from jupyter_client.manager import start_new_kernel

    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
    try:
        km, kc = start_new_kernel(kernel_name="onlinemap-reference")
        try:
            reply = kc.execute_interactive("import sys, os; print(sys.executable, os.environ['ONLINEMAP_HOME'])",
                                           timeout=60, output_hook=lambda m: outs.append(m))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old
    assert reply["content"]["status"] == "ok"

    lst = run_cli("kernel", "list", "--prefix", str(prefix), "--json")
    assert json.loads(lst.stdout)[0]["model"] == "reference"
    assert run_cli("kernel", "remove", "reference", "--prefix", str(prefix)).returncode == 0
    assert not spec_dir.exists()


outs: list = []


def test_model_without_env_is_a_missing_prerequisite(om_home, tmp_path):
    proc = run_cli("kernel", "install", "MapTR", "--prefix", str(tmp_path / "p"))
    assert proc.returncode == 3 and "onlinemap env create MapTR" in proc.stderr
    proc = run_cli("kernel", "install", "--all", "--prefix", str(tmp_path / "p"))
    assert "skipped MapTR" in proc.stderr and "installed" in proc.stdout
    assert run_cli("kernel", "install").returncode == 2
