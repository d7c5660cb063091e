"""`onlinemap data synth` never destroys a user's data, and nothing suggests running it over a user's path."""
from __future__ import annotations

import hashlib
import json

from onlinemap.data.synth import MARKER, write_synthetic_nuscenes
from tests.conftest import run_cli


def _tree(root):
    """Every path under root with the sha256 of its content (folders: None)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _user_dataset(root):
    """A small hand-made dataset in the nuScenes layout (what a user's real data looks like to synth)."""
    (root / "v1.0-mini").mkdir(parents=True)
    (root / "v1.0-mini" / "sample.json").write_text(json.dumps([{"token": f"s{i}"} for i in range(80)]))
    (root / "maps" / "expansion").mkdir(parents=True)
    (root / "maps" / "expansion" / "boston-seaport.json").write_text('{"version": "1.3"}')
    (root / "samples" / "CAM_FRONT").mkdir(parents=True)
    (root / "samples" / "CAM_FRONT" / "a.jpg").write_bytes(b"\xff\xd8 real image")


def test_synth_over_a_non_synthetic_dataset_refuses_and_changes_nothing(tmp_path, om_home):
    root = tmp_path / "nuscenes"
    _user_dataset(root)
    before = _tree(root)
    out = run_cli("data", "synth", str(root), "--scenes", "1", "--samples-per-scene", "2")
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not written by `onlinemap data synth`" in lines[0] and "Traceback" not in out.stderr
    assert _tree(root) == before


def test_synth_refuses_any_foreign_folder_and_a_file(tmp_path, om_home):
    (tmp_path / "home-like").mkdir()
    (tmp_path / "home-like" / "notes.txt").write_text("mine")
    assert run_cli("data", "synth", str(tmp_path / "home-like"), "--scenes", "1",
                   "--samples-per-scene", "2").returncode == 2
    assert (tmp_path / "home-like" / "notes.txt").read_text() == "mine"
    (tmp_path / "afile").write_text("x")
    assert run_cli("data", "synth", str(tmp_path / "afile"), "--scenes", "1",
                   "--samples-per-scene", "2").returncode == 2


def test_synth_replaces_its_own_dataset_without_stale_files(tmp_path):
    root = tmp_path / "synth"
    write_synthetic_nuscenes(root, scenes=2, samples_per_scene=2, seed=1)
    old_images = {p.name for p in (root / "samples" / "CAM_FRONT").iterdir()}
    (root / "nuscenes_infos_val.pkl").write_bytes(b"derived file of the user's")   # not synth's: kept
    info = write_synthetic_nuscenes(root, scenes=1, samples_per_scene=3, seed=2)
    assert info["samples"] == 3
    assert len(list((root / "samples" / "CAM_FRONT").iterdir())) == 3
    assert not old_images & {p.name for p in (root / "samples" / "CAM_FRONT").iterdir()} - old_images
    assert not (root / "can_bus" / "scene-0916_pose.json").exists()       # the dropped scene's files are gone
    assert (root / "nuscenes_infos_val.pkl").read_bytes() == b"derived file of the user's"


def test_an_interrupted_write_can_be_redone(tmp_path):
    root = tmp_path / "synth"
    root.mkdir()
    (root / MARKER).write_text(json.dumps({"synthetic": True, "complete": False, "entries": ["samples"]}))
    (root / "samples").mkdir()
    (root / "samples" / "half.jpg").write_bytes(b"x")
    write_synthetic_nuscenes(root, scenes=1, samples_per_scene=2)
    assert not (root / "samples" / "half.jpg").exists()
    assert json.loads((root / MARKER).read_text())["complete"] is True


def test_readiness_never_suggests_synth_over_a_user_path(tmp_path, monkeypatch, om_home):
    from onlinemap.readiness import check_model
    from onlinemap.registry import find_model

    spec = find_model("reference")
    user = tmp_path / "root-like"
    user.mkdir()
    monkeypatch.setenv("NUSCENES_ROOT", str(user))        # a path that is not nuScenes
    data = [c for c in check_model(spec) if c.step == "data"][0]
    assert not data.ok and "data synth" not in (data.fix or "")
    data = [c for c in check_model(spec, user) if c.step == "data"][0]
    assert "data synth" not in (data.fix or "")
    monkeypatch.delenv("NUSCENES_ROOT")                   # the default synthetic folder, not written yet
    data = [c for c in check_model(spec) if c.step == "data"][0]
    assert not data.ok and data.fix == "onlinemap data synth"
