"""The results store's fast paths keep the plain reader's answer (issue 16, "The results store at scale").

Each fast path is checked for what it could get wrong, never for speed: the column tables give
the plain reader's frame dtype for dtype (also when pieces disagree on a column), a rewrite
that keeps run.json's size and mtime is still seen, the process pool builds the same pieces and
passes its warnings on, the GC state is restored, the listing reads names newest first past its
partial selection, and ``onlinemap results`` imports neither the runner nor pandas.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

from onlinemap.runs import cache as cache_mod
from onlinemap.runs import columnar
from onlinemap.runs import store as store_mod
from onlinemap.runs.load import load_runs_frame, load_samples_frame

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_results_load import write_history  # noqa: E402


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(cache_mod, "PIECE_RUNS", 5)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "results"
    write_history(r, 24, 4)
    return r


def _runs(root):
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def _exact(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns in the same order, same dtypes, same values."""
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_dtype=True)


def test_cached_frames_have_the_plain_readers_dtypes(root):
    plain, plain_s = load_runs_frame(root, cache=False), load_samples_frame(root, cache=False)
    for _ in range(2):                               # the load that builds the pieces, then one from them
        _exact(load_runs_frame(root), plain)
        _exact(load_samples_frame(root), plain_s)
    assert str(plain["model"].dtype) == str(load_runs_frame(root)["model"].dtype)   # str, not category


def test_pieces_that_disagree_on_a_column_still_give_the_plain_frame(root):
    """A block only newer runs have, numbers in one piece and nulls in another, a dropped field."""
    runs = _runs(root)
    for i, run in enumerate(runs):
        rec = json.loads((run / "run.json").read_text())
        if i >= 18:
            rec["tags"] = {"owner": "ci", "n": i}             # only in the newest pieces
            rec["summary"]["memory"]["nvml_process_used_peak_mb"] = 100.0 + i
        if i < 5:
            del rec["gpu"]["uuid"]                          # absent from the oldest piece
            rec["exit_code"] = None
        (run / "run.json").write_text(json.dumps(rec))
    plain = load_runs_frame(root, cache=False)
    _exact(load_runs_frame(root), plain)
    _exact(load_runs_frame(root), plain)
    assert plain["summary.memory.nvml_process_used_peak_mb"].dtype == "float64"


def test_columnar_round_trip_of_odd_columns():
    frame = pd.DataFrame({
        "s": ["a", "b", None, "a"] * 4, "o": [[1], {}, None, "x"] * 4, "n": [1.5, None, 2.0, 3.0] * 4,
        "b": [True, False] * 8, "t": pd.to_datetime(["2025-01-01T00:00:00+00:00"] * 16, utc=True),
        "u": [f"id{i}" for i in range(16)]})
    table = columnar.encode(frame)
    kinds = {name: kind for name, kind, *_ in table["columns"]}
    assert kinds["s"] == columnar.CODES and kinds["u"] == columnar.ARRAY     # repeated vs distinct strings
    _exact(columnar.stack([table]), frame)
    _exact(columnar.stack([table, columnar.encode(frame.iloc[:3])]),
           pd.concat([frame, frame.iloc[:3]], ignore_index=True))


def test_a_same_size_rewrite_within_one_timestamp_is_seen(root):
    """Every writer replaces run.json through a new file: the inode tells a rewrite that kept the
    size and (within the file system's timestamp tick) the mtime; (mtime, size) alone missed it."""
    load_runs_frame(root)
    victim = _runs(root)[7]
    path = victim / "run.json"
    st = os.stat(path)
    rec = json.loads(path.read_text())
    assert rec["settings"]["device"] == "cuda:0"
    rec["settings"]["device"] = "cuda:1"              # same length: same size
    tmp = victim / ".run.json.new"                   # replaced through a new file, as save_run does
    tmp.write_text(json.dumps(rec, indent=2))
    os.replace(tmp, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    assert load_runs_frame(root).set_index("run_id").loc[victim.name, "settings.device"] == "cuda:1"


def test_an_in_place_rewrite_with_the_mtime_set_back_is_seen(root):
    """A hand edit in place (same inode, same size) whose mtime was then restored (``touch -r``,
    ``cp -p``): the change time still moved, and the key holds it; (mtime, size) missed this."""
    load_runs_frame(root)
    victim = _runs(root)[12]
    path = victim / "run.json"
    st = os.stat(path)
    text = path.read_text()
    assert '"device": "cuda:0"' in text
    with open(path, "r+") as fh:                     # in place: same file, same inode
        fh.write(text.replace('"device": "cuda:0"', '"device": "cuda:7"'))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert load_runs_frame(root).set_index("run_id").loc[victim.name, "settings.device"] == "cuda:7"


def test_the_pool_builds_the_same_pieces_and_passes_its_warnings_on(root, monkeypatch, caplog):
    import concurrent.futures
    import multiprocessing

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    bad = _runs(root)[3]
    (bad / "run.json").write_text("{not json")
    expected = load_runs_frame(root, cache=False)
    cache_mod.clear_cache(root)
    started = []

    class Recording(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            started.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "POOL_MIN_RUNS", 1)
    monkeypatch.setattr(cache_mod, "build_workers", lambda: 2)
    monkeypatch.setattr(cache_mod, "_may_fork", lambda: True)    # threads other tests left behind
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recording)
    with caplog.at_level(logging.WARNING):
        got = load_runs_frame(root)
    assert started == [2]
    _exact(got, expected)
    assert f"skipping {bad.name}" in caplog.text          # logged here, though read in a worker
    assert multiprocessing.active_children() == []          # the workers are gone
    _exact(load_runs_frame(root), expected)                 # and their pieces serve the next load
    assert started == [2]


_PARENT = os.getpid()
_REAL_REBUILD = cache_mod._rebuild


def _killed_in_a_worker(job):
    """Dies as a worker the kernel killed (out of memory); in the test's own process, the real build."""
    if os.getpid() != _PARENT:
        os.kill(os.getpid(), 9)
    return _REAL_REBUILD(job)


def test_a_killed_worker_falls_back_to_building_here(root, monkeypatch, caplog):
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    expected = load_runs_frame(root, cache=False)
    monkeypatch.setattr(cache_mod, "POOL_MIN_RUNS", 1)
    monkeypatch.setattr(cache_mod, "build_workers", lambda: 2)
    monkeypatch.setattr(cache_mod, "_rebuild", _killed_in_a_worker)
    monkeypatch.setattr(cache_mod, "_may_fork", lambda: True)    # threads other tests left behind
    with caplog.at_level(logging.WARNING):
        _exact(load_runs_frame(root), expected)
    assert "building the results cache in this process" in caplog.text


def test_no_pool_from_a_threaded_process(root, monkeypatch):
    """fork() of a process with other threads (a Jupyter kernel) can deadlock: built in-process."""
    import concurrent.futures

    def refuse(*a, **k):
        raise AssertionError("a pool was started from a threaded process")

    monkeypatch.setattr(cache_mod, "POOL_MIN_RUNS", 1)
    monkeypatch.setattr(cache_mod, "build_workers", lambda: 2)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        _exact(load_runs_frame(root), load_runs_frame(root, cache=False))
    finally:
        stop.set()
        other.join()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_gc_state_is_restored(root, enabled):
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        load_runs_frame(root)
        load_runs_frame(root)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_run_json_that_msgspec_refuses_reads_as_json_reads_it(root):
    """NaN literals and integers past 64 bits are valid for Python's json: the same record either way."""
    run = _runs(root)[2]
    rec = json.loads((run / "run.json").read_text())
    rec["summary"]["fps"] = float("nan")
    rec["tags"] = {"big": 2 ** 70}
    (run / "run.json").write_text(json.dumps(rec))
    data = store_mod.load_raw(run)
    assert data["tags"]["big"] == 2 ** 70 and data["summary"]["fps"] != data["summary"]["fps"]
    row = load_runs_frame(root).set_index("run_id").loc[run.name]
    assert row["tags.big"] == 2 ** 70


def test_newest_first_past_the_partial_selection(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "_NEWEST_BATCH", 3)
    names = [f"2025010{i % 10}-{i:06d}-m-x" for i in range(40)]
    assert list(store_mod._newest_first(list(names))) == sorted(names, reverse=True)
    assert list(store_mod._newest_first([])) == []
    write_history(tmp_path, 9, 1)
    (tmp_path / "zz-not-a-run").write_text("")
    got = [d.name for d, _ in store_mod.iter_runs(tmp_path)]
    assert got == sorted((p.name for p in tmp_path.iterdir() if p.is_dir()), reverse=True)


def test_the_results_command_imports_neither_the_runner_nor_pandas(root):
    code = ("import sys; sys.argv = ['onlinemap', 'results', '--limit', '3']\n"
            "from onlinemap.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('LOADED', sorted(m for m in ('onlinemap.api', 'onlinemap.runner', 'pandas', 'numpy',"
            " 'jsonschema') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ONLINEMAP_RESULTS=str(root)))
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout
    assert "21 older run folders not shown" in proc.stdout


def test_runs_added_one_by_one_keep_the_plain_frame(root, monkeypatch):
    """New runs are put in front of the newest piece's table without re-encoding it: after each
    one (a column only it has, nulls where the piece has numbers, a new model) the cached frame
    is still exactly the plain reader's, and so is the samples frame."""
    load_runs_frame(root)
    load_samples_frame(root)
    appended = []
    real = columnar.concat_tables
    monkeypatch.setattr(columnar, "concat_tables", lambda a, b: appended.append(a["rows"]) or real(a, b))
    template = json.loads((_runs(root)[-1] / "run.json").read_text())
    samples = (_runs(root)[-1] / "samples.jsonl").read_text()
    variants = [lambda r: r, lambda r: r["summary"].update(fps=None), lambda r: r.update(model="TopoMLP"),
                lambda r: r["tags"].update(owner="ci"), lambda r: r["settings"].update(device="cpu")]
    for i, change in enumerate(variants):
        rec = json.loads(json.dumps(template))
        change(rec)
        d = root / f"29990101-{i:06d}-{rec['model']}-bbbbbb"
        d.mkdir()
        rec["run_id"] = d.name
        (d / "run.json").write_text(json.dumps(rec))
        if i % 2:
            (d / "samples.jsonl").write_text(samples)
        _exact(load_runs_frame(root), load_runs_frame(root, cache=False))
        _exact(load_samples_frame(root), load_samples_frame(root, cache=False))
    _exact(load_runs_frame(root), load_runs_frame(root, cache=False))       # and from the pieces as written
    # each new run went in front of the newest piece: 5 runs rows, 2 of them with samples
    assert len(appended) == len(variants) + 2
