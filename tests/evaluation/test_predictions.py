"""Schema checks of standard predictions and the tolerant predictions.jsonl reader."""
from __future__ import annotations

import json
import logging

from onlinemap.evaluation.predictions import iter_predictions, load_schema, validate_prediction

GOOD = {"sample_token": "a" * 32, "model": "reference",
        "detections_3d": [{"label": "car", "score": 0.5, "center": [1, 2, 3], "size": [1.9, 4.6, 1.7], "yaw": 0.1,
                           "velocity": [None, None], "frame": "global"}],
        "map_elements": [{"label": "divider", "score": 0.3, "points": [[0, 0], [1, 1]], "frame": "ego"}],
        "plan": {"waypoints": [[1, 0], [2, 0]], "dt": 0.5}}


def test_valid_prediction_has_no_errors():
    assert load_schema()["title"].startswith("onlinemap standard prediction")
    assert validate_prediction(GOOD) == []


def test_errors_name_the_field():
    bad = json.loads(json.dumps(GOOD))
    bad["detections_3d"][0]["size"][1] = 0
    bad["detections_3d"][0]["label"] = "tank"
    del bad["model"]
    errors = validate_prediction(bad)
    assert any(e.startswith("detections_3d/0/size/1:") for e in errors)
    assert any(e.startswith("detections_3d/0/label:") for e in errors)
    assert any("'model' is a required property" in e for e in errors)


def test_iter_predictions_skips_invalid_lines_with_a_warning(tmp_path, caplog):
    lines = [json.dumps(GOOD), "{not json", json.dumps({"sample_token": "b" * 32}),
             json.dumps(dict(GOOD, sample_token="c" * 32))]
    (tmp_path / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        got = list(iter_predictions(tmp_path))
    assert [p["sample_token"] for p in got] == ["a" * 32, "c" * 32]
    assert "'model' is a required property" in caplog.text
    assert list(iter_predictions(tmp_path / "missing")) == []
