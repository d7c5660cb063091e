"""SkyPilot task YAML (parsed back with yaml) and merging returned result folders. SkyPilot itself is not run."""
from __future__ import annotations

import json
import shutil

import yaml

from onlinemap.registry import find_model
from onlinemap.sky import accelerators_for
from tests.conftest import run_cli


def test_tasks_yaml_per_model(om_home, tmp_path):
    out = tmp_path / "sky"
    proc = run_cli("sky", "tasks", "--models", "MapTR,StreamPETR,reference", "--out", str(out), "-n", "50")
    assert proc.returncode == 0, proc.stderr
    maptr = yaml.safe_load((out / "sky-maptr.yaml").read_text())
    acc = maptr["resources"]["accelerators"]
    assert set(acc) == {"RTX3090", "A6000", "RTX4090", "A100", "A100-80GB", "L40S"} and "H100" not in acc
    assert maptr["resources"]["cloud"] == "runpod"
    assert "./runpod_setup.sh --models MapTR" in maptr["setup"]
    assert "onlinemap bench --models MapTR --samples 50" in maptr["run"]
    assert maptr["workdir"] and maptr["envs"]["ONLINEMAP_HOME"]
    stream = yaml.safe_load((out / "sky-streampetr.yaml").read_text())
    assert "H100" not in stream["resources"]["accelerators"]
    ref = yaml.safe_load((out / "sky-reference.yaml").read_text())
    assert set(ref["resources"]["accelerators"]) == {"RTX3090", "A6000", "RTX4090", "A100"}
    assert accelerators_for(find_model("StreamPETR")) == {k: 1 for k in stream["resources"]["accelerators"]}


def test_merge_copies_new_runs_skips_present_refuses_invalid(om_home, tmp_path):
    assert run_cli("test", "--model", "reference", "-n", "2", "--warmup", "0", "--device", "cpu").returncode == 0
    results = om_home / "results"
    (run,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    returned = tmp_path / "returned"
    returned.mkdir()
    shutil.copytree(run, returned / run.name)                           # already present at home
    other = returned / (run.name[:-6] + "abcdef")
    shutil.copytree(run, other)
    rec = json.loads((other / "run.json").read_text())
    rec["run_id"] = other.name
    (other / "run.json").write_text(json.dumps(rec))
    bad = returned / "20250101-000000-reference-badbad"
    bad.mkdir()
    (bad / "run.json").write_text("{truncated")
    newer = returned / "20250101-000000-reference-future"
    shutil.copytree(run, newer)
    (newer / "run.json").write_text(json.dumps(dict(rec, run_id=newer.name, schema_version=999)))

    proc = run_cli("sky", "merge", str(returned), "--json")
    assert proc.returncode == 4
    rep = json.loads(proc.stdout)
    assert rep["copied"] == [other.name] and rep["present"] == [run.name]
    assert sorted(r["path"] for r in rep["refused"]) == sorted([str(bad), str(newer)])
    assert (results / other.name / "samples.jsonl").read_text() == (other / "samples.jsonl").read_text()
    assert not (results / bad.name).exists() and not list(results.glob(".merge-*"))
    again = run_cli("sky", "merge", str(other), "--json")           # one run folder as DIR
    assert again.returncode == 0 and json.loads(again.stdout)["present"] == [other.name]
    listed = run_cli("results", "--json")
    assert {r["run_id"] for r in json.loads(listed.stdout)} == {run.name, other.name}
