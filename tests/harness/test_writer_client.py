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


def test_a_measured_sample_is_sent_as_raw_times_and_written_as_its_full_line(tmp_path):
    """measured() takes the worker's clock readings; the writer rounds them into the documented line."""
    preds, samples = tmp_path / "predictions.jsonl", tmp_path / "samples.jsonl"
    out = writer.Client(str(preds), str(samples))
    out.touch()
    out.prediction({"sample_token": "t0"})
    out.measured((0, "t0", "s0", True, 10.0, 10.0012345678, 10.0212345678, 10.0222345678,
                  20.000012345, None, 0.0123456, 1700000000.25))
    out.measured((1, "t1", None, False, 1.0, 1.001, 1.021, 1.022, 20.0, 19.87654321, 0.01, 1700000000.5))
    out.close()
    first, second = _lines(samples)
    assert list(first) == ["index", "sample_token", "scene_token", "warmup", "ok", "data_ms", "forward_ms",
                           "forward_cuda_ms", "convert_ms", "total_ms", "write_ms", "t"]
    assert first == {"index": 0, "sample_token": "t0", "scene_token": "s0", "warmup": True, "ok": True,
                     "data_ms": round(0.0012345678 * 1000, 4), "forward_ms": 20.0,
                     "forward_cuda_ms": None, "convert_ms": round((10.0222345678 - 10.0212345678) * 1000, 4),
                     "total_ms": round((10.0222345678 - 10.0) * 1000, 4), "write_ms": 0.0123,
                     "t": 1700000000.25}
    assert first == writer.measured_row((0, "t0", "s0", True, 10.0, 10.0012345678, 10.0212345678,
                                         10.0222345678, 20.000012345, None, 0.0123456, 1700000000.25))
    assert second["forward_cuda_ms"] == 19.8765 and second["scene_token"] is None and not second["warmup"]
    assert [p["sample_token"] for p in _lines(preds)] == ["t0"]


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


def test_a_reported_failure_is_raised_by_a_later_row_without_waiting_for_close(tmp_path, monkeypatch):
    """row() looks at the report pipe every CHECK_EVERY_S, not every sample (a system call each)."""
    import select

    monkeypatch.setattr(writer, "CHECK_EVERY_S", 0.0)
    out = writer.Client(str(tmp_path / "p.jsonl"), str(tmp_path / "s.jsonl"))
    out.touch()
    out.prediction({"sample_token": "bad", "score": float("nan")})
    out.row({"index": 0})
    assert select.select([out._report_fd], [], [], 60)[0], "the writer never reported the NaN"
    with pytest.raises(writer.WriteFailed) as info:
        out.prediction({"sample_token": "next"})
        out.row({"index": 1})
    assert info.value.report["index"] == 0
    with pytest.raises(writer.WriteFailed):
        out.close()


def test_a_dead_writer_is_a_write_failure_at_the_next_row(tmp_path):
    out = writer.Client(str(tmp_path / "p.jsonl"), str(tmp_path / "s.jsonl"))
    out.touch()
    out.proc.kill()
    out.proc.wait()
    with pytest.raises(writer.WriteFailed, match="writer"):
        out.prediction({"sample_token": "a"})
        out.row({"index": 0})


def test_a_vector_write_cut_short_sends_the_rest(tmp_path, monkeypatch):
    """writev on a pipe returns short only when a signal interrupts it; the rest then goes out whole."""
    preds, samples = tmp_path / "predictions.jsonl", tmp_path / "samples.jsonl"
    out = writer.Client(str(preds), str(samples))
    out.touch()
    real = writer.os.writev

    def short(fd, parts):
        return real(fd, [parts[0], parts[1][:5]])      # the first header and 5 bytes, then "a signal"

    monkeypatch.setattr(writer.os, "writev", short)
    out.prediction({"sample_token": "t0", "x": [0.5] * 100})
    out.row({"index": 0, "sample_token": "t0"})
    monkeypatch.undo()
    out.close()
    assert _lines(preds) == [{"sample_token": "t0", "x": [0.5] * 100}]
    assert _lines(samples) == [{"index": 0, "sample_token": "t0"}]
