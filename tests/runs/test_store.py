"""Run directories: atomic run.json, crash detection, tolerant listing, versioning."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from onlinemap.errors import ResultsError
from onlinemap.fileio import JsonlWriter, iter_jsonl, write_json_atomic
from onlinemap.runs.schema import RunRecord
from onlinemap.runs.store import driver_identity, effective_status, find_run, iter_runs, load_run, new_run_dir, save_run


def make_run(root, model="m", status="ok", driver=None):
    run_id, path = new_run_dir(model, root)
    save_run(path, RunRecord(run_id=run_id, model=model, status=status, driver=driver or driver_identity()))
    return run_id, path


def test_run_json_round_trips_and_leaves_no_temp_files(tmp_path):
    run_id, path = make_run(tmp_path)
    assert load_run(path).run_id == run_id
    assert sorted(p.name for p in path.iterdir()) == ["run.json"]


def test_a_running_record_whose_driver_died_is_crashed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ident = driver_identity()
    _, path = make_run(tmp_path, status="running", driver={**ident, "pid": dead.pid})
    assert effective_status(load_run(path)) == "crashed"
    _, alive = make_run(tmp_path, status="running")
    assert effective_status(load_run(alive)) == "running"
    _, reused = make_run(tmp_path, status="running", driver={**ident, "pid_create_time": ident["pid_create_time"] - 100})
    assert effective_status(load_run(reused)) == "crashed"
    _, remote = make_run(tmp_path, status="running", driver={**ident, "hostname": "another-pod"})
    assert effective_status(load_run(remote)) == "running"


def test_listing_skips_corrupt_runs_with_a_warning(tmp_path, caplog):
    make_run(tmp_path, model="a")
    _, bad = make_run(tmp_path, model="b")
    (bad / "run.json").write_text('{"run_id": "x", "mod')
    _, newer = make_run(tmp_path, model="c")
    data = json.loads((newer / "run.json").read_text())
    data["schema_version"] = 99
    (newer / "run.json").write_text(json.dumps(data))
    runs = [rec.model for _, rec in iter_runs(tmp_path)]
    assert runs == ["a"]
    assert "unreadable" in caplog.text and "newer than this onlinemap" in caplog.text


def test_find_run_by_prefix(tmp_path):
    run_id, path = make_run(tmp_path)
    assert find_run(run_id[:-2], tmp_path) == path
    with pytest.raises(ResultsError, match="no run"):
        find_run("zzz", tmp_path)
    with pytest.raises(Exception, match="invalid run id"):
        find_run("../etc", tmp_path)


def test_jsonl_reader_drops_a_truncated_last_line(tmp_path):
    path = tmp_path / "s.jsonl"
    with JsonlWriter(path) as w:
        w.write({"a": 1})
        w.write({"a": 2})
    with open(path, "a") as fh:
        fh.write('{"a": 3, "b"')
    assert [r["a"] for r in iter_jsonl(path)] == [1, 2]


def test_jsonl_lines_parse_exactly_as_json_loads_would(tmp_path):
    """The msgspec decoder is only a fast path: what it refuses (NaN literals, json.loads extensions)
    still parses through json.loads, and what neither parses is skipped, as before."""
    path = tmp_path / "mixed.jsonl"
    lines = ['{"a": 1, "t": 1796177576.1532757}', '{"a": NaN}', '{"a": -Infinity}', '{"a": 1e400}',
             '{"a": 12345678901234567890123}', '{"a": "\\ud800"}', 'not json', '[1, 2]', '{"a": {"b": [null, true]}}']
    path.write_text("\n".join(lines) + "\n")
    want = [json.loads(line) for line in lines if line != "not json" and isinstance(json.loads(line), dict)]
    got = list(iter_jsonl(path, warn=False))
    assert len(got) == len(want) == 7
    for g, w in zip(got, want):
        assert json.dumps(g, allow_nan=True) == json.dumps(w, allow_nan=True)


def test_atomic_write_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"ok": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"bad": float("nan")})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_save_run_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    """A full disk cannot be made here without root-only mounts; the OSError is injected into the write."""
    import onlinemap.runs.store as store

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_json_atomic", full)
    with pytest.raises(ResultsError, match="No space left on device") as err:
        store.save_run(tmp_path, RunRecord(run_id="r", model="m"))
    assert "free disk space" in err.value.hint
