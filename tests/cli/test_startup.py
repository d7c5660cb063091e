"""`onlinemap --help` must stay cheap: no heavy module is imported to show it."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "numpy", "torch", "matplotlib", "pynvml", "psutil", "nuscenes", "jsonschema", "tqdm")


def test_help_imports_nothing_heavy():
    code = ("import sys\nfrom onlinemap.cli import cli\n"
            "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "import json; print('MODULES=' + json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = json.loads(out.split("MODULES=")[1])
    loaded = [m for m in modules if m.split(".")[0] in HEAVY]
    assert not loaded, f"--help imported {loaded}"
    assert "test" in out and "bench" in out


def test_import_onlinemap_is_lazy():
    code = "import sys, onlinemap; print(sorted(m for m in sys.modules if m.startswith('onlinemap')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['onlinemap']"
