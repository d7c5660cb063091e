"""Report fixtures: real runs made once per session (reference twice, crashref once) and evaluated.

The runs go through the real registry, launcher and harness (``api.test`` with the host-kind
reference model and the ``crashref`` test pack, which writes one box per sample), so the report
code reads exactly the files a real run leaves behind. The four report modules share them: a test that
adds a run to this home removes it again (test_html's nightly copies, test_compare's broken run).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FIXTURES


@pytest.fixture(scope="session")
def runs_home(tmp_path_factory, synth_root) -> dict:
    """ONLINEMAP_HOME with 3 ok runs, all evaluated: {"home", "ref_old", "ref", "crash"} (run dirs).

    The environment is set only while the runs are made; tests get it from ``home_env``."""
    from onlinemap import api
    from onlinemap.evaluation.run import evaluate_run

    home = tmp_path_factory.mktemp("report-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ONLINEMAP_HOME", str(home))
    mp.setenv("NUSCENES_ROOT", str(synth_root))
    mp.setenv("ONLINEMAP_ENVS", str(FIXTURES / "envs"))
    mp.delenv("ONLINEMAP_RESULTS", raising=False)
    try:
        dirs = {}
        for key, model in (("ref_old", "reference"), ("crash", "crashref"), ("ref", "reference")):
            outcome = api.test(model, samples=3, warmup=1, device="cpu", echo=False)
            assert outcome.status == "ok", outcome
            evaluate_run(Path(outcome.run_dir))
            dirs[key] = Path(outcome.run_dir)
    finally:
        mp.undo()   # before the yield: a session fixture's env would otherwise leak into every later test module
    return {"home": home, **dirs}


@pytest.fixture
def home_env(runs_home, monkeypatch, synth_root) -> dict:
    """The module's runs, with ONLINEMAP_HOME etc. set for this test."""
    monkeypatch.setenv("ONLINEMAP_HOME", str(runs_home["home"]))
    monkeypatch.setenv("NUSCENES_ROOT", str(synth_root))
    monkeypatch.setenv("ONLINEMAP_ENVS", str(FIXTURES / "envs"))
    monkeypatch.delenv("ONLINEMAP_RESULTS", raising=False)
    return runs_home
