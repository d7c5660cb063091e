"""evaluate_run on a run directory: run.json + predictions.jsonl in, metrics.json out."""
from __future__ import annotations

import json

import numpy as np
import pytest

from onlinemap.errors import DatasetError, ResultsError
from onlinemap.evaluation.planning import future_trajectory
from onlinemap.evaluation.run import METRICS_SCHEMA_VERSION, evaluate_run

from .conftest import VERSION


def _write_run(run_dir, synth_root, preds, extra_lines=()):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"model": "test", "status": "ok",
                                                  "settings": {"dataroot": str(synth_root), "version": VERSION}}))
    lines = [json.dumps(p) for p in preds] + list(extra_lines)
    (run_dir / "predictions.jsonl").write_text("\n".join(lines) + "\n")


def test_evaluate_run_all_tasks_perfect(tmp_path, nusc, synth_root, gt_detections, gt_polylines):
    preds = []
    for s in nusc.sample:
        t = s["token"]
        fut = future_trajectory(nusc, t)
        p = {"sample_token": t, "model": "test", "detections_3d": gt_detections[t],
             "map_elements": [{"label": c, "score": 0.7, "points": np.asarray(line).tolist(), "frame": "ego"}
                              for c, lines in gt_polylines[t].items() for line in lines]}
        if fut is not None:
            p["plan"] = {"waypoints": fut.tolist(), "dt": 0.5}
        preds.append(p)
    run_dir = tmp_path / "run"
    _write_run(run_dir, synth_root, preds, extra_lines=['{"sample_token": "broken"}'])
    metrics = evaluate_run(run_dir)
    assert metrics["schema_version"] == METRICS_SCHEMA_VERSION
    assert metrics["samples"] == len(nusc.sample)
    assert metrics["detection"]["mAP"] == pytest.approx(1.0)
    assert metrics["detection"]["NDS"] == pytest.approx(1.0)
    assert metrics["mapping"]["mAP"] == pytest.approx(1.0)
    assert metrics["planning"]["L2"] == pytest.approx({"1s": 0.0, "2s": 0.0, "3s": 0.0})
    assert metrics["planning"]["collision"] == pytest.approx({"1s": 0.0, "2s": 0.0, "3s": 0.0})
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["detection"]["mAP"] == pytest.approx(1.0)


def test_evaluate_run_only_tasks_present(tmp_path, synth_root, gt_detections):
    tokens = list(gt_detections)[:4]
    _write_run(tmp_path, synth_root, [{"sample_token": t, "model": "m", "detections_3d": []} for t in tokens])
    metrics = evaluate_run(tmp_path)
    assert set(metrics) >= {"detection"} and "mapping" not in metrics and "planning" not in metrics
    assert metrics["detection"]["mAP"] == 0.0
    assert metrics["samples"] == 4


def test_evaluate_run_errors(tmp_path, synth_root, gt_detections):
    with pytest.raises(ResultsError, match="run.json"):
        evaluate_run(tmp_path / "nothing")
    _write_run(tmp_path / "empty", synth_root, [])
    with pytest.raises(ResultsError, match="no valid predictions"):
        evaluate_run(tmp_path / "empty")
    _write_run(tmp_path / "alien", synth_root, [{"sample_token": "e" * 32, "model": "m", "detections_3d": []}])
    with pytest.raises(DatasetError, match="not in"):
        evaluate_run(tmp_path / "alien")
    token = next(iter(gt_detections))
    _write_run(tmp_path / "noroot", synth_root, [{"sample_token": token, "model": "m", "detections_3d": []}])
    with pytest.raises(DatasetError, match="no nuScenes tables"):
        evaluate_run(tmp_path / "noroot", dataroot=tmp_path / "nowhere")
