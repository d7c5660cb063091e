"""Bad input: a readable line, a documented exit code, and nothing written where it should not be."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize("name", ["../../etc/passwd", "reference/../x", "a;rm -rf ~", "$(touch /tmp/om-pwned)"])
def test_model_names_with_separators_or_metacharacters_are_unknown_models(om_home, name):
    proc = run_cli("test", "--model", name, "--device", "cpu")
    assert proc.returncode == 2 and "unknown model" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not Path("/tmp/om-pwned").exists() and not (om_home / "results").exists()


@pytest.mark.parametrize("token", ["../../../etc/passwd", "x; touch /tmp/om-pwned", "`id`"])
def test_sample_tokens_with_separators_or_metacharacters_are_not_in_the_dataset(om_home, token):
    proc = run_cli("test", "--model", "reference", "--sample-token", token, "--device", "cpu")
    assert proc.returncode == 3 and "is not in" in proc.stderr
    assert not Path("/tmp/om-pwned").exists() and not (om_home / "results").exists()


def test_run_ids_cannot_point_outside_the_results(om_home):
    proc = run_cli("eval", "../../etc")
    assert proc.returncode == 2 and "invalid run id" in proc.stderr


def test_a_dataroot_that_is_not_nuscenes(om_home, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    proc = run_cli("test", "--model", "reference", "--dataroot", str(tmp_path / "photos"), "--device", "cpu")
    assert proc.returncode == 3 and "is not a nuScenes dataroot" in proc.stderr


def test_incomplete_nuscenes_tables(om_home, tmp_path, synth_root):
    import shutil

    root = tmp_path / "partial"
    shutil.copytree(synth_root / "v1.0-mini", root / "v1.0-mini")
    (root / "v1.0-mini" / "ego_pose.json").unlink()
    proc = run_cli("test", "--model", "reference", "--dataroot", str(root), "--device", "cpu")
    assert proc.returncode == 3 and "missing ego_pose.json" in proc.stderr


@pytest.mark.parametrize("args, code, text", [
    (["--samples", "-1"], 2, "out of range"),
    (["--samples", "99999999"], 2, "out of range"),
    (["--warmup", "-5"], 2, "out of range"),
    (["--samples", "5000"], 3, "has 40 samples"),
])
def test_negative_or_absurd_sample_counts(om_home, args, code, text):
    proc = run_cli("test", "--model", "reference", "--device", "cpu", *args)
    assert proc.returncode == code and text in proc.stderr


def test_gpus_naming_a_gpu_that_does_not_exist(om_home):
    proc = run_cli("bench", "--models", "reference", "--gpus", "7", "--samples", "1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_malformed_environment_yml_is_one_line(om_home, tmp_path):
    pack = tmp_path / "envs" / "Toy"
    pack.mkdir(parents=True)
    (pack / "model.toml").write_text('schema_version = 1\nname = "Toy"\ntask = "map"\noutputs = ["map_elements"]\n'
                                     'env_kind = "conda"\n[repo]\nurl = "https://example.invalid/t"\n'
                                     'commit = "0123456789abcdef0123456789abcdef01234567"\n[config]\ndefault = "c.py"\n'
                                     '[checkpoint]\nfile = "t.pth"\nurl = "https://example.invalid/t.pth"\n')
    (pack / "demo.py").write_text("class Adapter(object):\n    pass\n")
    (pack / "environment.yml").write_text("name: toy\ndependencies: [python=3.8\n  - : :\n")
    proc = run_cli("env", "create", "Toy", "--skip-weights", env={"ONLINEMAP_ENVS": str(tmp_path / "envs")})
    assert proc.returncode == 4 and "environment.yml" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
