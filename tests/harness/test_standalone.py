"""An adapter runs without the driver: `python envs/<Model>/demo.py … --out pred.json`."""
from __future__ import annotations

import json
import subprocess
import sys

from onlinemap.evaluation.predictions import validate_prediction
from onlinemap.harness import nuscenes_index
from tests.conftest import REPO

DEMO = REPO / "envs" / "reference" / "demo.py"


def test_reference_demo_writes_one_valid_prediction(synth_root, tmp_path):
    token = nuscenes_index.ordered_samples(str(synth_root), "v1.0-mini")[3]["token"]
    out = tmp_path / "pred.json"
    proc = subprocess.run([sys.executable, str(DEMO), "--dataroot", str(synth_root), "--sample-token", token,
                           "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pred = json.loads(out.read_text())
    assert pred["sample_token"] == token and validate_prediction(pred) == []
    assert len(pred["detections_3d"]) == 50 and len(pred["map_elements"]) == 20


def test_reference_is_deterministic_across_processes(synth_root, tmp_path):
    token = nuscenes_index.ordered_samples(str(synth_root), "v1.0-mini")[0]["token"]
    outs = []
    for i in range(2):
        out = tmp_path / f"p{i}.json"
        subprocess.run([sys.executable, str(DEMO), "--dataroot", str(synth_root), "--sample-token", token,
                        "--device", "cpu", "--out", str(out)], check=True, capture_output=True, timeout=120)
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]


def test_unknown_token_exits_3_with_one_line(synth_root, tmp_path):
    proc = subprocess.run([sys.executable, str(DEMO), "--dataroot", str(synth_root), "--sample-token", "nope",
                           "--device", "cpu", "--out", str(tmp_path / "p.json")], capture_output=True, text=True)
    assert proc.returncode == 3 and "sample token 'nope' is not in" in proc.stderr
