"""The results cache: same frames as the plain reader, invalidated on change, corrupt cache rebuilt."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest

from onlinemap.runs.cache import CACHE_DIR, RUNS_CACHE, SAMPLES_CACHE
from onlinemap.runs.load import load_runs_frame, load_samples_frame

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_results_load import write_history  # noqa: E402


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "results"
    write_history(r, 24, 6)
    return r


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False,
                                  check_categorical=False)


def _bump(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))


def test_cached_frames_match_the_plain_reader(root):
    for model in (None, "MapTR", "mapTR", "nosuch"):
        _same(load_runs_frame(root, model=model), load_runs_frame(root, model=model, cache=False))
        _same(load_samples_frame(root, model=model), load_samples_frame(root, model=model, cache=False))
    assert (root / CACHE_DIR / RUNS_CACHE).exists() and (root / CACHE_DIR / SAMPLES_CACHE).exists()
    # a second load is served from the cache and still identical
    _same(load_runs_frame(root), load_runs_frame(root, cache=False))
    _same(load_samples_frame(root), load_samples_frame(root, cache=False))


def test_cache_follows_changes_new_and_removed_runs(root):
    runs = load_runs_frame(root)
    samples = load_samples_frame(root)
    victim = sorted(p for p in root.iterdir() if not p.name.startswith("."))[3]
    rec = json.loads((victim / "run.json").read_text())
    rec["status"] = "failed"
    rec["summary"]["fps"] = 123.5
    (victim / "run.json").write_text(json.dumps(rec))
    _bump(victim / "run.json")
    with open(victim / "samples.jsonl", "a") as fh:
        fh.write(json.dumps({"index": 99, "sample_token": "x" * 32, "warmup": False, "ok": True, "forward_ms": 1.0})
                 + "\n")
    new = root / "29990101-000000-PETR-aaaaaa"
    new.mkdir()
    (new / "run.json").write_text(json.dumps(dict(rec, run_id=new.name, model="PETR", status="ok")))
    gone = sorted(p for p in root.iterdir() if not p.name.startswith("."))[0]
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()

    after = load_runs_frame(root)
    _same(after, load_runs_frame(root, cache=False))
    row = after[after["run_id"] == victim.name].iloc[0]
    assert row["status"] == "failed" and row["summary.fps"] == 123.5
    assert new.name in set(after["run_id"]) and gone.name not in set(after["run_id"])
    assert len(after) == len(runs)
    assert after["run_id"].iloc[0] == new.name          # newest first, as the plain reader
    after_s = load_samples_frame(root)
    _same(after_s, load_samples_frame(root, cache=False))
    assert len(after_s) == len(samples) + 1 - 6


def test_corrupt_or_foreign_cache_is_ignored_and_rebuilt(root, caplog):
    expected = load_runs_frame(root, cache=False)
    load_runs_frame(root)
    cache = root / CACHE_DIR / RUNS_CACHE
    cache.write_bytes(b"\x80\x05garbage")
    _same(load_runs_frame(root), expected)
    assert "unreadable results cache" in caplog.text
    import pickle

    cache.write_bytes(pickle.dumps({"stamp": ("other",), "frame": None}))
    _same(load_runs_frame(root), expected)
    with open(cache, "rb") as fh:
        assert pickle.load(fh)["stamp"] != ("other",)        # rewritten in our format


def test_running_runs_are_always_reread(root):
    victim = sorted(p for p in root.iterdir() if not p.name.startswith("."))[5]
    rec = json.loads((victim / "run.json").read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rec.update(status="running", driver={"pid": os.getpid(), "hostname": socket.gethostname()})
    (victim / "run.json").write_text(json.dumps(rec))
    assert load_runs_frame(root).set_index("run_id").loc[victim.name, "status"] == "running"
    # the driver dies without touching run.json: the same file now reads as crashed
    rec["driver"]["pid"] = dead.pid
    st = os.stat(victim / "run.json")
    (victim / "run.json").write_text(json.dumps(rec).ljust(st.st_size)[: max(st.st_size, len(json.dumps(rec)))])
    os.utime(victim / "run.json", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load_runs_frame(root).set_index("run_id").loc[victim.name, "status"] == "crashed"


def test_unreadable_run_is_skipped_each_time_with_a_warning(root, caplog):
    bad = sorted(p for p in root.iterdir() if not p.name.startswith("."))[2]
    (bad / "run.json").write_text("{not json")
    assert bad.name not in set(load_runs_frame(root)["run_id"])
    caplog.clear()
    assert bad.name not in set(load_runs_frame(root)["run_id"])
    assert bad.name in caplog.text


def test_concurrent_writers_leave_a_valid_cache(root):
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path\n"
            "from onlinemap.runs.load import load_runs_frame, load_samples_frame\n"
            "for _ in range(3):\n"
            "    load_runs_frame(Path(sys.argv[1])); load_samples_frame(Path(sys.argv[1]))\n"
            "    import shutil; shutil.rmtree(Path(sys.argv[1]) / '.cache', ignore_errors=True)\n"
            "load_runs_frame(Path(sys.argv[1])); load_samples_frame(Path(sys.argv[1]))\n")
    repo = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root), repo]) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    leftovers = [p.name for p in (root / CACHE_DIR).iterdir() if p.name.endswith(".tmp")]
    assert not leftovers
    _same(load_runs_frame(root), load_runs_frame(root, cache=False))
    _same(load_samples_frame(root), load_samples_frame(root, cache=False))
