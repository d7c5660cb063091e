"""The results cache: same frames as the plain reader, invalidated on change, corrupt pieces rebuilt,
one new run rewrites one piece (run with 5 runs a piece, so that 24 runs make several)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest

from onlinemap.runs import cache as cache_mod
from onlinemap.runs.cache import CACHE_DIR, RUNS_CACHE, SAMPLES_CACHE
from onlinemap.runs.load import load_runs_frame, load_samples_frame

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_results_load import write_history  # noqa: E402


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(cache_mod, "PIECE_RUNS", 5)


def _pieces(root, which=RUNS_CACHE):
    return {p.name: p.stat().st_mtime_ns for p in (root / CACHE_DIR / which).iterdir()}


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
    pieces = sorted((root / CACHE_DIR / RUNS_CACHE).iterdir())
    assert len(pieces) == 5                              # 24 runs, 5 a piece
    pieces[2].write_bytes(b"\x80\x05garbage")
    _same(load_runs_frame(root), expected)
    assert "unreadable results cache piece" in caplog.text
    import pickle

    pieces[1].write_bytes(pickle.dumps({"stamp": ("other",), "frame": None}))
    pieces[3].write_bytes(b"")                           # truncated to nothing
    _same(load_runs_frame(root), expected)
    for piece in pieces[1:4]:
        with open(piece, "rb") as fh:
            assert pickle.load(fh)["stamp"] == cache_mod._stamp()   # rewritten in our format


def test_one_new_run_rewrites_only_the_newest_piece(root):
    load_runs_frame(root)
    load_samples_frame(root)
    before, before_s = _pieces(root), _pieces(root, SAMPLES_CACHE)
    newest = sorted(p for p in root.iterdir() if not p.name.startswith("."))[-1]
    new = root / "29990101-000000-PETR-aaaaaa"
    new.mkdir()
    rec = json.loads((newest / "run.json").read_text())
    (new / "run.json").write_text(json.dumps(dict(rec, run_id=new.name, model="PETR")))
    (new / "samples.jsonl").write_text((newest / "samples.jsonl").read_text())
    _same(load_runs_frame(root), load_runs_frame(root, cache=False))
    _same(load_samples_frame(root), load_samples_frame(root, cache=False))
    for old, now in ((before, _pieces(root)), (before_s, _pieces(root, SAMPLES_CACHE))):
        changed = {n for n in now if old.get(n) != now[n]}
        assert changed == {max(old)} and set(now) == set(old)   # the newest piece, and nothing else


def test_a_piece_that_grows_is_split(root):
    load_runs_frame(root)
    newest = sorted(p for p in root.iterdir() if not p.name.startswith("."))[-1]
    rec = json.loads((newest / "run.json").read_text())
    for i in range(12):
        d = root / f"29990101-{i:06d}-PETR-aaaaaa"
        d.mkdir()
        (d / "run.json").write_text(json.dumps(dict(rec, run_id=d.name)))
    _same(load_runs_frame(root), load_runs_frame(root, cache=False))
    assert len(_pieces(root)) > 5 and all(
        len(cache_mod._read_piece(p)["keys"]) <= 10 for p in (root / CACHE_DIR / RUNS_CACHE).iterdir())


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
