"""`om.results()` stays a function after every part of the package has been imported."""
from __future__ import annotations

import subprocess
import sys


def test_results_is_callable_after_the_run_store_is_imported(om_home):
    code = ("import onlinemap as om\nimport onlinemap.runs.store, onlinemap.runs.load, onlinemap.runner, onlinemap.report\n"
            "frame = om.results()\nprint(type(frame).__name__, callable(om.results), callable(om.test))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["DataFrame", "True", "True"]
