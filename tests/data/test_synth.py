"""The synthetic dataset loads through the real nuscenes-devkit; sample selection picks and checks samples."""
from __future__ import annotations

import json

import pytest

from onlinemap.data.selection import resolve_dataset, select_samples
from onlinemap.data.synth import MINI_SCENES, write_synthetic_nuscenes
from onlinemap.errors import DatasetError, UsageError


def test_devkit_loads_it_with_annotations_images_and_maps(synth_root):
    from nuscenes import NuScenes
    from nuscenes.utils.splits import create_splits_scenes

    nusc = NuScenes(version="v1.0-mini", dataroot=str(synth_root), verbose=False)
    assert len(nusc.scene) == 2 and len(nusc.sample) == 40
    assert {s["name"] for s in nusc.scene} == set(create_splits_scenes()["mini_val"])
    sample = nusc.sample[5]
    assert len(sample["anns"]) > 0
    for cam in ("CAM_FRONT", "CAM_BACK_LEFT", "LIDAR_TOP"):
        path, boxes, _ = nusc.get_sample_data(sample["data"][cam])
        assert (synth_root / path).exists() or path.endswith(".pcd.bin")
    ann = nusc.get("sample_annotation", sample["anns"][0])
    assert ann["category_name"] in {c["name"] for c in nusc.category} and ann["num_lidar_pts"] > 0
    # velocities come from linked annotations: moving objects have a finite one somewhere
    import numpy as np

    vel = [nusc.box_velocity(a) for s in nusc.sample for a in s["anns"]]
    assert any(np.isfinite(v).all() and np.linalg.norm(v[:2]) > 0.5 for v in vel)


def test_it_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_synthetic_nuscenes(a, scenes=1, samples_per_scene=3, seed=7)
    write_synthetic_nuscenes(b, scenes=1, samples_per_scene=3, seed=7)
    for table in ("sample", "sample_annotation", "ego_pose"):
        assert (a / "v1.0-mini" / f"{table}.json").read_text() == (b / "v1.0-mini" / f"{table}.json").read_text()


def test_scene_count_is_bounded_by_the_mini_split(tmp_path):
    with pytest.raises(ValueError):
        write_synthetic_nuscenes(tmp_path, scenes=len(MINI_SCENES) + 1)


def test_selection_takes_mini_val_first_in_driving_order(synth_root):
    root, version = resolve_dataset(synth_root)
    samples = select_samples(root, version, count=5, warmup=2)
    assert len(samples) == 7 and samples[0]["scene_name"] == "scene-0103"
    assert [s["index_in_scene"] for s in samples] == list(range(7))


def test_selection_errors(synth_root, tmp_path):
    root, version = resolve_dataset(synth_root)
    with pytest.raises(DatasetError, match="is not in"):
        select_samples(root, version, count=1, warmup=0, sample_tokens=["nosuchtoken"])
    with pytest.raises(DatasetError, match="has 40 samples, the run needs 105"):
        select_samples(root, version, count=100, warmup=5)
    with pytest.raises(UsageError):
        select_samples(root, version, count=-1, warmup=0)
    with pytest.raises(DatasetError, match="does not exist"):
        resolve_dataset(tmp_path / "nope")
    (tmp_path / "notnusc").mkdir()
    with pytest.raises(DatasetError, match="not a nuScenes dataroot"):
        resolve_dataset(tmp_path / "notnusc")


def test_explicit_tokens_keep_their_order_and_warm_up_on_them(synth_root):
    root, version = resolve_dataset(synth_root)
    tokens = [s["token"] for s in json.loads((synth_root / "v1.0-mini" / "sample.json").read_text())[:3]][::-1]
    samples = select_samples(root, version, count=3, warmup=2, sample_tokens=tokens)
    assert [s["token"] for s in samples] == tokens[:2] + tokens


def test_data_synth_default_size_follows_onlinemap_synth_size(tmp_path):
    """`onlinemap data synth DIR` without --scenes/--samples-per-scene writes $ONLINEMAP_SYNTH_SIZE (as setup's
    data stage does); an explicit option still wins, and a malformed value is one line, exit 2."""
    from tests.conftest import run_cli

    small = {"ONLINEMAP_SYNTH_SIZE": "1x3"}
    run_cli("data", "synth", str(tmp_path / "a"), env=small, check=True)
    marker = json.loads((tmp_path / "a" / "SYNTHETIC.json").read_text())
    assert (marker["scenes"], marker["samples"]) == (1, 3)
    run_cli("data", "synth", str(tmp_path / "b"), "--samples-per-scene", "2", env=small, check=True)
    assert json.loads((tmp_path / "b" / "SYNTHETIC.json").read_text())["samples"] == 2
    bad = run_cli("data", "synth", str(tmp_path / "c"), env={"ONLINEMAP_SYNTH_SIZE": "lots"})
    assert bad.returncode == 2 and "ONLINEMAP_SYNTH_SIZE='lots'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "c").exists()
