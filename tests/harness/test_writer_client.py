"""The worker's end of the result writer (harness/writer.py Client), against the real writer process."""
import json

import pytest

from onlinemap.harness import writer


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_prediction_goes_with_its_row_and_before_it(tmp_path):
    preds, samples = tmp_path / "predictions.jsonl", tmp_path / "samples.jsonl"
    out = writer.Client(str(preds), str(samples))
    out.touch()
    for i in range(3):
        out.prediction({"sample_token": f"t{i}", "x": [i, 0.5]})
        out.row({"index": i, "sample_token": f"t{i}"})
    out.close()
    assert [p["sample_token"] for p in _lines(preds)] == ["t0", "t1", "t2"]
    assert [r["index"] for r in _lines(samples)] == [0, 1, 2]


def test_a_prediction_without_its_row_is_still_written_at_close(tmp_path):
    """prediction() holds the frame until its row; close() (or the next prediction) sends it."""
    preds, samples = tmp_path / "predictions.jsonl", tmp_path / "samples.jsonl"
    out = writer.Client(str(preds), str(samples))
    out.touch()
    out.prediction({"sample_token": "a"})
    out.prediction({"sample_token": "b"})
    out.close()
    assert [p["sample_token"] for p in _lines(preds)] == ["a", "b"]
    assert samples.read_text() == ""


def test_a_nan_prediction_fails_the_write_at_its_row(tmp_path):
    preds, samples = tmp_path / "predictions.jsonl", tmp_path / "samples.jsonl"
    out = writer.Client(str(preds), str(samples))
    out.touch()
    out.prediction({"sample_token": "ok"})
    out.row({"index": 0})
    out.prediction({"sample_token": "bad", "score": float("nan")})
    out.row({"index": 1})
    with pytest.raises(writer.WriteFailed) as info:
        out.close()
    assert info.value.report["index"] == 1 and info.value.report["type"] == "ValueError"
    assert [p["sample_token"] for p in _lines(preds)] == ["ok"]
