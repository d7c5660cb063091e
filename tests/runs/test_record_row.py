"""``record_row`` (the flat row of one run, without ``dataclasses.asdict``'s deep copies) gives the
same keys and values as flattening ``to_dict()``, and leaves the record untouched."""
from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

from onlinemap.runs.load import flatten, record_row
from onlinemap.runs.schema import RunRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_results_load import _run_json  # noqa: E402  (the benchmark's realistic run.json)


def test_record_row_equals_flattened_asdict_and_copies_nothing_back():
    rec = RunRecord.from_dict(_run_json(3, "PETR", "2025-01-01T00:00:00+00:00", "r3", random.Random(1)))
    before = copy.deepcopy(rec)
    row = record_row(rec)
    assert row == flatten(rec.to_dict()) and len(row) > 100
    row["summary.fps"] = -1.0
    assert rec == before


def test_raw_row_equals_record_row_of_the_loaded_record(tmp_path):
    import json

    from onlinemap.runs.load import raw_row
    from onlinemap.runs.store import load_run

    data = _run_json(5, "VAD", "2025-01-01T00:00:00+00:00", "r5", random.Random(2))
    for drop in ((), ("tags", "versions", "error", "finished")):     # missing fields get their defaults
        d = {k: v for k, v in data.items() if k not in drop}
        (tmp_path / "run.json").write_text(json.dumps(d))
        row, running = raw_row(tmp_path)
        expected = record_row(load_run(tmp_path))
        expected["status"] = "ok"
        assert not running and row == expected and list(row) == list(expected)
