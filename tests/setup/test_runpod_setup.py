"""The real one-command setup, for the reference model, in a temporary ONLINEMAP_HOME.

These run ``./runpod_setup.sh`` itself (bash + a real ``onlinemap setup run`` + a real smoke test on
the synthetic dataset). The driver venv is NOT rebuilt: ``ONLINEMAP_VENV`` points the script at the
venv running the tests (see conftest.script_env), so no torch is pip-installed again.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.setup.conftest import REPO

# Each test runs the whole script one to three times (torch imports, a real smoke run): on the shared 2 cores at
# load ~12 one run took over 100 s and the 300 s default failed two of them. No test waits on these numbers:
# they only bound a hang.
pytestmark = pytest.mark.timeout(1800)


def _run(args, env, timeout=600):
    return subprocess.run(["bash", str(REPO / "runpod_setup.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL)


def _results(env) -> dict:
    """Stage results from a read-only pass over the same home, in-process (dry run: changes nothing)."""
    import os

    from onlinemap.setup.plan import build_context, build_stages
    from onlinemap.setup.stages import run_stages
    from tests.setup.conftest import NO_GPU

    old = os.environ.get("ONLINEMAP_HOME")
    os.environ["ONLINEMAP_HOME"] = env["ONLINEMAP_HOME"]
    try:
        ctx = build_context(dry_run=True, gpu=NO_GPU, say=lambda line: None)
        return {r.key: r.to_dict() for r in run_stages(build_stages(ctx), ctx)}
    finally:
        if old is None:
            os.environ.pop("ONLINEMAP_HOME", None)
        else:
            os.environ["ONLINEMAP_HOME"] = old


def test_interrupted_mid_stage_resumes(script_env, monkeypatch):
    """Killed (SIGKILL, like a pod stop) inside the data stage, then inside the smoke stage: each rerun resumes;
    the finished setup then says what it skipped, and a rerun of it skips every stage and runs nothing."""
    monkeypatch.delenv("NUSCENES_ROOT", raising=False)
    home = Path(script_env["ONLINEMAP_HOME"])
    killed = _run([], {**script_env, "ONLINEMAP_SETUP_FAULT": "data"})      # SIGKILL inside the data stage
    assert killed.returncode != 0
    assert (home / "data" / "nuscenes-synth.partial").is_dir()                  # half-written…
    assert not (home / "data" / "nuscenes-synth").exists()                      # …and not looking ready
    assert _results(script_env)["data"]["status"] == "would run"

    killed = _run([], {**script_env, "ONLINEMAP_SETUP_FAULT": "smoke"})     # after the test ran, before its marker
    assert killed.returncode != 0
    assert "data: check" in killed.stdout and "== smoke:reference" in killed.stdout
    assert not (home / "setup" / "smoke-reference.json").exists()
    res = _results(script_env)
    assert res["data"]["status"] == "ok" and res["smoke:reference"]["status"] == "would run"
    assert not (home / "data" / "nuscenes-synth.partial").exists()

    resumed = _run([], script_env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    out = resumed.stdout
    assert "smoke:reference" in out and "reference: ok" in out                  # the smoke test ran for real
    assert (home / "data" / "nuscenes-synth" / "SYNTHETIC.json").is_file()       # synthetic data written
    assert (home / "setup" / "smoke-reference.json").is_file()
    assert "needs an NVIDIA GPU" in out and "not set up" in out                  # says plainly what was skipped
    assert "micromamba" in out and "no conda model selected" in out
    assert "Done. To use onlinemap" in out and "onlinemap doctor" in out         # final instructions kept
    res = _results(script_env)
    assert all(r["status"] in ("ok", "skipped") for r in res.values()), res
    runs = list((home / "results").iterdir())

    # a rerun of the finished setup skips everything (once a separate test on a fresh home; an uninterrupted
    # first run on a fresh home is tests/test_readme.py's, which checks the same plain-skip lines)
    again = _run([], script_env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "ready (skipped)" in again.stdout                                     # the venv stage
    summary = again.stdout.split("== summary", 1)[1]
    rows = [line.split() for line in summary.splitlines() if line.startswith("  ") and ":" in line.split()[0]
            or line.strip().split(" ")[0] in ("system", "micromamba", "driver", "data")]
    statuses = {r[0]: r[1] for r in rows if r}
    assert statuses and all(s in ("ok", "skipped") for s in statuses.values()), statuses
    assert "done" not in statuses.values()
    assert sorted((home / "results").iterdir()) == sorted(runs)                 # no second smoke run
    assert all(r["status"] in ("ok", "skipped") for r in _results(script_env).values())


def test_bad_option_and_help(script_env):
    bad = _run(["--bogus"], script_env)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr
    missing = _run(["--models"], script_env)
    assert missing.returncode == 2 and "needs a value" in missing.stderr
    helped = _run(["--help"], script_env)
    assert helped.returncode == 0 and "--dry-run" in helped.stdout


def _from_parent(tmp_path) -> Path:
    """``/workspace`` holding the clone as ``onlinemap/`` (a link to this checkout), as after ``cd /workspace && git clone``."""
    parent = tmp_path / "workspace"
    parent.mkdir()
    (parent / "onlinemap").symlink_to(REPO, target_is_directory=True)
    return parent


def test_from_the_parent_folder_with_home_unset_or_empty(script_env, tmp_path):
    """`cd /workspace && ./onlinemap/runpod_setup.sh`: the clone folder must not shadow the package, HOME may be
    unset (cron, env -i) or empty, and the home is the volume's onlinemap-home, not the clone."""
    import pwd

    parent = _from_parent(tmp_path)
    env = {k: v for k, v in script_env.items() if k not in ("HOME", "ONLINEMAP_HOME")}
    env["ONLINEMAP_VOLUME"] = str(parent)
    proc = subprocess.run(["bash", "./onlinemap/runpod_setup.sh", "--dry-run"], cwd=parent, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "unbound variable" not in proc.stderr
    assert f"onlinemap home: {parent / 'onlinemap-home'}" in proc.stdout
    assert "== setup stages" in proc.stdout and "needs the driver venv" not in proc.stdout   # it really planned
    assert not (parent / "onlinemap-home").exists()                                        # a dry run writes nothing

    env["HOME"] = ""
    empty = subprocess.run(["bash", "./onlinemap/runpod_setup.sh", "--dry-run"], cwd=parent, env=env,
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert empty.returncode == 0 and "/.onlinemap" not in empty.stdout, empty.stdout[-2000:] + empty.stderr[-2000:]
    env["ONLINEMAP_VOLUME"] = str(tmp_path / "no-volume")      # off a pod, HOME empty: the account's home
    plan = subprocess.run([sys.executable, "-I", str(REPO / "onlinemap" / "paths.py"), "home"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert plan.stdout.strip() == str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".onlinemap")


def test_a_home_inside_the_clone_is_refused(script_env):
    env = dict(script_env, ONLINEMAP_HOME=str(REPO / "home"))
    proc = _run([], env)
    assert proc.returncode == 2 and "source checkout" in proc.stderr
    assert not (REPO / "home").exists()


def test_quick_test_from_the_parent_folder(script_env, tmp_path, synth_root):
    parent = _from_parent(tmp_path)
    env = dict(script_env, NUSCENES_ROOT=str(synth_root), QUICK_TEST_SAMPLES="1")
    proc = subprocess.run(["bash", "./onlinemap/quick_test_models.sh", "reference"], cwd=parent, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("reference") and " ok " in proc.stdout and "Traceback" not in proc.stderr
