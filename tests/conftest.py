"""Shared fixtures: a temporary ONLINEMAP_HOME, the synthetic dataset (built once), test model packs.

Test model packs (``tests/fixtures/envs/<name>/``) are small host-kind adapters that sleep, crash
or misbehave on purpose; they are exposed through ``ONLINEMAP_ENVS`` so the real registry,
launcher and harness run them exactly like a real model.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A synthetic nuScenes v1.0-mini dataset: 2 scenes x 20 samples, both straight (read-only for tests).

    Straight: the evaluation tests shift GT along the road in the ego frame. The default dataset
    (10 x 40, odd scenes turning) is too large for the suite; ``synth_turn_root`` has a turn.
    """
    from onlinemap.data.synth import write_synthetic_nuscenes

    root = tmp_path_factory.mktemp("nuscenes-synth")
    write_synthetic_nuscenes(root, scenes=2, samples_per_scene=20, seed=0, turns=False)
    return root


@pytest.fixture(scope="session")
def synth_turn_root(tmp_path_factory) -> Path:
    """A synthetic nuScenes v1.0-mini: 2 scenes x 16 samples; scene-0916 (mini_val) turns left 90 deg in 3 s."""
    from onlinemap.data.synth import write_synthetic_nuscenes

    root = tmp_path_factory.mktemp("nuscenes-synth-turn")
    write_synthetic_nuscenes(root, scenes=2, samples_per_scene=16, seed=0, turns=True)
    return root


@pytest.fixture(scope="session")
def synth_openlane_root(tmp_path_factory) -> Path:
    """A synthetic OpenLane-V2 subset A: 2 segments x 4 frames, val collection pickle (read-only for tests)."""
    from onlinemap.data.synth_openlane import write_synthetic_openlane

    root = tmp_path_factory.mktemp("openlane-v2-synth")
    write_synthetic_openlane(root, segments=2, frames_per_segment=4, seed=0)
    return root


@pytest.fixture
def om_home(tmp_path, monkeypatch, synth_root) -> Path:
    """A fresh ONLINEMAP_HOME whose default dataroot is the synthetic dataset; test packs visible."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ONLINEMAP_HOME", str(home))
    monkeypatch.setenv("NUSCENES_ROOT", str(synth_root))
    monkeypatch.setenv("ONLINEMAP_ENVS", str(FIXTURES / "envs"))
    monkeypatch.delenv("ONLINEMAP_RESULTS", raising=False)
    return home


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m onlinemap ARGS`` in a real subprocess with the current os.environ (+ env)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "onlinemap", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"onlinemap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def only_run_dir(home: Path) -> Path:
    runs = [p for p in (home / "results").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def copy_pack(name: str, dest_root: Path) -> Path:
    """Copy tests/fixtures/envs/<name> into dest_root (to edit it in a test)."""
    dest = dest_root / name
    shutil.copytree(FIXTURES / "envs" / name, dest)
    return dest
