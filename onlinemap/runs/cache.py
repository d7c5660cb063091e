"""A load cache for ``om.results()``: the run files stay the truth, the cache only saves re-reading them.

Design note. Reading 100,000 ``run.json`` files on every ``om.results()`` takes minutes, and the
history only grows. So the loaded frames are kept under ``<results>/.cache/<frame>/`` (``iter_runs``
skips dot-folders) in **pieces**: each piece holds the rows of a contiguous range of run folders
(names sort by time; about ``PIECE_RUNS`` runs a piece) with the key each run was read under:
``(ctime_ns, size, inode)`` of its ``run.json`` (and of its ``samples.jsonl`` for the samples
frame). The change time moves on every write and cannot be set back (``os.utime`` sets the
mtime, and moves the ctime), and our writers replace run.json through a new file, whose new
inode tells a rewrite even within one timestamp tick. A load lists the run folders, stats those
files, reads every piece, and rebuilds only the pieces whose runs changed, were added or removed,
or hold a run whose record says ``running`` (its status and samples move under our feet, and
``crashed`` is derived from a live pid, so it is always re-read); in a rebuilt piece only those
runs are re-read. A new run lands in the newest piece; runs newer than all of a piece's are
encoded alone and put in front of its table (runs/columnar.py ``concat_tables``), so one new
run costs milliseconds, not a re-encoded piece nor the whole frame (issue 16: the single-file
cache cost 3.5x a cached load per new run). A piece that grows past twice ``PIECE_RUNS`` is split.

Why stat every run and not trust a folder-level signature: a finished run's run.json is
rewritten later by known writers (``onlinemap reproduce`` and the scheduler add tags) and by
hand, and a folder's mtime does not change when a file in it is rewritten in place; one stat per
run is the cheapest check that sees all of these (docs/measurement.md section 8 has its cost).

Pieces are pickles of column tables (runs/columnar.py: repeated strings as codes), written to a
temp file in the same folder and moved into place with ``os.replace``, so several processes (CLI,
notebook, cron, other pods on the volume) may rebuild at once: each writes complete files, the
last one wins, and a piece another process removed is rebuilt by the next load. A piece that
cannot be read (corrupt, truncated, written by another onlinemap/pandas version) is rebuilt with a
warning; deleting ``.cache/`` is always safe. The pickles are only ever read from the user's own
results folder (``ONLINEMAP_HOME``). Parquet (pyarrow) was measured against pickle for these
pieces and not adopted: docs/measurement.md.

When many pieces must be built (a first load), they are built by a pool of processes, one per CPU
this process may use (``os.sched_getaffinity`` and the cgroup's CPU quota), each reading its own
range of run folders; only from a single-threaded process (``fork`` of a threaded one, e.g. a
Jupyter kernel, can deadlock), else in this process.
"""
from __future__ import annotations

import gc
import logging
import os
import pickle
from bisect import bisect_left
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from onlinemap import paths
from onlinemap.errors import ResultsError
from onlinemap.fileio import write_bytes_atomic
from onlinemap.runs import columnar
from onlinemap.runs import schema as rs

if TYPE_CHECKING:
    import pandas

__all__ = ["CACHE_DIR", "CACHE_VERSION", "RUNS_CACHE", "SAMPLES_CACHE", "PIECE_RUNS", "cached_runs_frame",
           "cached_samples_frame", "clear_cache", "build_workers"]

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"
CACHE_VERSION = 3
RUNS_CACHE = "runs"            # folders under CACHE_DIR, one piece file per range of run folders
SAMPLES_CACHE = "samples"
PIECE_RUNS = 2000
PIECE_SUFFIX = ".pkl"
POOL_MIN_RUNS = 4000           # fewer runs to read than this: built in this process (a pool costs ~0.5 s to start)
_DIR_COL = "_run_dir"          # internal: the run folder's name (the path is rebuilt from the root on load)


def _stamp() -> tuple:
    """What a cache piece must match to be used: our format, the run schema and the pandas version."""
    import pandas as pd

    return (CACHE_VERSION, rs.SCHEMA_VERSION, pd.__version__)


@contextmanager
def _no_gc():
    """No cyclic GC while unpickling or building many objects that form no cycles (lists and dicts
    of run.json values): each collection walks every live container, which at 100,000 runs cost
    more than the load itself. Reference counting still frees everything; the previous state returns."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _scan(root: Path, with_samples: bool) -> dict[str, tuple]:
    """{run folder name: key} for every folder under ``root`` that holds a run.json.

    One ``stat`` a run, relative to an open descriptor of ``root`` (no full-path walk each time);
    a plain file named like a run fails its stat (ENOTDIR) like a folder without run.json.
    """
    keys = {}
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return keys
    stat, run_file, samples_file = os.stat, "/" + rs.RUN_FILE, "/" + rs.SAMPLES_FILE
    try:
        for name in os.listdir(fd):
            if name[0] == ".":
                continue
            try:
                st = stat(name + run_file, dir_fd=fd)
            except OSError:
                continue
            key = (st.st_ctime_ns, st.st_size, st.st_ino)
            if with_samples:
                try:
                    st = stat(name + samples_file, dir_fd=fd)
                    key += (st.st_ctime_ns, st.st_size, st.st_ino)
                except OSError:
                    key += (0, -1, 0)
            keys[name] = key
    finally:
        os.close(fd)
    return keys


def _read_piece(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except FileNotFoundError:
        return None            # another process replaced it meanwhile: rebuilt below
    except Exception as exc:  # noqa: BLE001 - any unreadable piece is simply rebuilt
        log.warning("ignoring the unreadable results cache piece %s (%s: %s); rebuilding it", path,
                    type(exc).__name__, exc)
        return None
    if not isinstance(data, dict) or data.get("stamp") != _stamp() or not isinstance(data.get("keys"), dict):
        log.info("results cache piece %s is from another version; rebuilding it", path)
        return None
    return data


def _write_piece(path: Path, data: dict) -> None:
    """Atomic write; a failure only costs speed, so it is logged, never raised (no fsync: a cache)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL), fsync=False)
    except OSError as exc:
        log.warning("cannot write the results cache %s: %s", path, exc)


def clear_cache(root: Path | None = None) -> None:
    """Remove the cache pieces (they are rebuilt on the next load)."""
    import shutil

    cache = (Path(root) if root else paths.results_dir()) / CACHE_DIR
    for name in (RUNS_CACHE, SAMPLES_CACHE):
        shutil.rmtree(cache / name, ignore_errors=True)


def _piece_files(folder: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith(PIECE_SUFFIX) and not n.startswith("."))
    except FileNotFoundError:
        return []


def _pieces(folder: Path) -> list[dict]:
    """The readable pieces in ``folder``, oldest range first (each with its file ``name``)."""
    out = []
    for name in _piece_files(folder):
        data = _read_piece(folder / name)
        if data is not None and data["keys"]:
            data["name"] = name
            out.append(data)
    return out


# --- reading runs into rows (module level: pool workers call them by name) ---

def _runs_part(root: str, name: str):
    from onlinemap.runs.load import raw_row

    row, is_running = raw_row(os.path.join(root, name))
    # the run id is the folder's name but for copied folders: one string object for both, so
    # that the piece's pickle stores it once
    row[_DIR_COL] = row["run_id"] if row.get("run_id") == name else name
    return row, is_running


def _runs_frame(old, reused, parts) -> "pandas.DataFrame":
    import pandas as pd

    new = pd.DataFrame(list(parts.values()))
    if not new.empty:
        new["created"] = pd.to_datetime(new["created"], utc=True, errors="coerce")
    # new rows first: the columns then come in the order the plain reader gives (newest row first)
    return _order(_concat([f for f in (new, _kept(old, reused)) if f is not None and not f.empty]))


def _samples_part(root: str, name: str):
    from onlinemap.fileio import iter_jsonl
    from onlinemap.runs.store import load_run

    run_dir = os.path.join(root, name)
    rec = load_run(run_dir)
    rows = list(iter_jsonl(os.path.join(run_dir, rs.SAMPLES_FILE)))
    if not rows:
        return None, rec.status == "running"
    head = {"run_id": rec.run_id, "model": rec.model}
    return [{**head, **r, _DIR_COL: name} for r in rows], rec.status == "running"


def _samples_frame(old, reused, parts) -> "pandas.DataFrame":
    import pandas as pd

    pieces = []
    if parts:
        # one DataFrame from every new row at once: 10k small frames + concat is several times slower
        pieces.append(pd.DataFrame([row for rows in parts.values() for row in rows]))
    pieces.append(_kept(old, reused))
    return _order(_concat([p for p in pieces if p is not None and not p.empty]))


_KINDS = {RUNS_CACHE: (_runs_part, _runs_frame, False), SAMPLES_CACHE: (_samples_part, _samples_frame, True)}


def _kept(old: "pandas.DataFrame | None", reused: list[str]):
    if old is None or old.empty or not reused:
        return None
    return old[old[_DIR_COL].isin(set(reused))]


def _concat(frames: list) -> "pandas.DataFrame":
    import pandas as pd

    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]


def _order(frame: "pandas.DataFrame") -> "pandas.DataFrame":
    """Rows newest run folder first (names sort by time), as the plain reader lists them; a run's rows keep their order."""
    if frame.empty or frame[_DIR_COL].is_monotonic_decreasing:
        return frame
    return frame.sort_values(_DIR_COL, ascending=False, kind="stable").reset_index(drop=True)


def _rebuild(job: dict) -> tuple[list[tuple[str, dict]], list[str]]:
    """Re-read one piece's stale runs and write its piece file(s): ([(file name, table)], warnings).

    ``job``: root, folder, kind, members (names in range, sorted), keys (theirs), stale (to read),
    reused (rows to keep from ``old``, the piece's table or None), bad (runs still unreadable),
    append (the stale runs are all new and newer than the piece's: their rows go in front). Warnings are returned, not logged, so that a pool worker's reach the caller's log.
    """
    read_run, make_frame, _ = _KINDS[job["kind"]]
    root = str(job["root"])
    new_bad, warnings = dict(job["bad"]), []
    parts, new_running = {}, set()
    with _no_gc():
        for name in sorted(job["stale"], reverse=True):
            try:
                part, is_running = read_run(root, name)
            except ResultsError as exc:
                warnings.append(f"skipping {name}: {exc.message}")
                new_bad[name] = exc.message
                continue
            if is_running:
                new_running.add(name)
            if part is not None:
                parts[name] = part
        if job["append"]:
            # only runs newer than all of the piece's, none of its own changed: encode the new
            # rows and put them in front of the piece's table (a new run costs milliseconds)
            table = job["old"]
            if parts:
                table = columnar.concat_tables(columnar.encode(make_frame(None, [], parts)), table)
            return [_write_table(job, table, job["members"], new_running, new_bad)], warnings
        old = columnar.stack([job["old"]]) if job["old"] is not None and job["reused"] else None
        frame = make_frame(old, job["reused"], parts)
    members = job["members"]
    # split a piece that grew too large, so that later changes rewrite small files
    chunks = [members] if len(members) <= 2 * PIECE_RUNS else \
        [members[i:i + PIECE_RUNS] for i in range(0, len(members), PIECE_RUNS)]
    out = []
    for chunk in chunks:
        part_frame = frame if len(chunks) == 1 or frame.empty else \
            frame[frame[_DIR_COL].isin(set(chunk))].reset_index(drop=True)
        out.append(_write_table(job, columnar.encode(part_frame), chunk, new_running, new_bad))
    return out, warnings


def _write_table(job: dict, table: dict, chunk: list[str], running: set, bad: dict) -> tuple[str, dict]:
    """Write the piece of runs ``chunk`` (sorted) holding ``table``: (its file name, the table)."""
    cset = set(chunk)
    data = {"stamp": _stamp(), "keys": {n: job["keys"][n] for n in chunk}, "running": running & cset,
            "bad": {n: m for n, m in bad.items() if n in cset}, "table": table}
    name = chunk[0] + PIECE_SUFFIX
    _write_piece(job["folder"] / name, data)
    return name, table


def build_workers() -> int:
    """Processes for building pieces: the CPUs this process may use (affinity, then cgroup quota)."""
    from onlinemap.telemetry.hostinfo import usable_cpus

    return usable_cpus()


def _may_fork() -> bool:
    """Only a single-threaded process forks: a threaded one's child may inherit a lock held forever."""
    import threading

    return threading.active_count() == 1


def _run_jobs(jobs: list[dict]) -> list:
    """Each job's result, in order: in a fork pool when the jobs are many runs and this process may fork."""
    workers = min(build_workers(), len(jobs))
    if workers > 1 and sum(len(j["stale"]) for j in jobs) >= POOL_MIN_RUNS and _may_fork():
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                return list(pool.map(_rebuild, jobs))
        except (OSError, BrokenProcessPool) as exc:   # no processes to spare, a worker killed (memory): here
            log.warning("building the results cache in this process instead of %d (%s)", workers, exc)
    return [_rebuild(job) for job in jobs]


def _update(root: Path, kind: str) -> list[dict]:
    """Bring the pieces of the ``kind`` frame up to date; returns their tables, newest range first."""
    folder = root / CACHE_DIR / kind
    keys = _scan(root, _KINDS[kind][2])
    names = sorted(keys)
    pieces = _pieces(folder) if keys else []
    if pieces:
        # each piece takes the names from its first one up to the next piece's first (names are
        # sorted); a name older than every piece goes to the oldest
        starts = [0] + [bisect_left(names, min(p["keys"])) for p in pieces[1:]] + [len(names)]
        assigned = [names[a:b] for a, b in zip(starts, starts[1:])]
    else:
        assigned = [names[i:i + PIECE_RUNS] for i in range(0, len(names), PIECE_RUNS)]
        pieces = [None] * len(assigned)
    slots, jobs, keep_files = [], [], set()
    for piece, members in zip(pieces, assigned):
        old_keys = piece["keys"] if piece else {}
        running = piece["running"] if piece else set()
        bad = piece["bad"] if piece else {}
        for name, message in bad.items():
            if name in keys and keys[name] == old_keys.get(name):
                log.warning("skipping %s: %s", name, message)
        # unchanged: the same number of runs, each old one still there with its key (a C-level
        # comparison of the items), and none beyond this range's newest (so the same runs)
        fresh = (piece is not None and not running and len(members) == len(old_keys)
                 and old_keys.items() <= keys.items() and max(old_keys) <= members[-1])
        if fresh:
            keep_files.add(piece["name"])
            slots.append([piece["table"]])
            continue
        if not members:
            continue
        stale = [n for n in members if old_keys.get(n) != keys[n] or n in running]
        stale_set = set(stale)
        member_set = set(members)
        # a run that failed to read and did not change stays skipped (with its warning above)
        still_bad = {n: m for n, m in bad.items() if n in member_set and n not in stale_set}
        reused = [n for n in members if n not in stale_set and n not in still_bad]
        # only new runs, all newer than the piece's own, and none of those changed or removed
        append = (piece is not None and not running and stale and len(members) <= 2 * PIECE_RUNS
                  and len(members) - len(stale) == len(old_keys) and min(stale) > max(old_keys))
        slots.append(len(jobs))
        jobs.append({"root": root, "folder": folder, "kind": kind, "members": members,
                     "keys": {n: keys[n] for n in members}, "stale": stale, "reused": reused,
                     "old": piece["table"] if piece else None, "bad": still_bad, "append": append})
    results = _run_jobs(jobs) if jobs else []
    tables = []
    for slot in slots:
        if isinstance(slot, int):
            written, warnings = results[slot]
            for message in warnings:
                log.warning("%s", message)
            keep_files.update(name for name, _ in written)
            slot = [table for _, table in written]
        tables.extend(slot)
    for name in _piece_files(folder):   # ranges that moved or emptied, and unreadable pieces
        if name not in keep_files:
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
    # pieces were visited oldest range first; each piece's rows are newest first
    return tables[::-1]


def _frame(root: Path, kind: str) -> "pandas.DataFrame":
    # one GC pause for the whole load: re-enabled between its steps, the collector would walk the
    # pieces' objects already loaded (at 100k runs, about a million lists and dicts) each time
    with _no_gc():
        return columnar.stack(_update(root, kind))


def _only_model(frame: "pandas.DataFrame", model: str | None) -> "pandas.DataFrame":
    if frame.empty or not model:
        return frame
    frame = frame[frame["model"].astype(str).str.lower() == model.lower()].reset_index(drop=True)
    if frame.empty:
        import pandas as pd

        return pd.DataFrame()     # as the plain reader: no rows, no columns
    return frame


def cached_runs_frame(root: Path | None = None, *, model: str | None = None) -> "pandas.DataFrame":
    """One row per run (as ``load_runs_frame``), re-reading only the runs that changed since the last load."""
    root = Path(root) if root else paths.results_dir()
    frame = _only_model(_frame(root, RUNS_CACHE), model)
    if frame.empty:
        return frame.drop(columns=[_DIR_COL], errors="ignore")
    prefix = str(root) + os.sep
    # the folder name becomes the path, in its place (last, as the plain reader's "path")
    frame[_DIR_COL] = prefix + frame[_DIR_COL]
    return frame.rename(columns={_DIR_COL: "path"})


def cached_samples_frame(root: Path | None = None, *, model: str | None = None) -> "pandas.DataFrame":
    """One row per sample (as ``load_samples_frame``), from per-range cached pieces."""
    root = Path(root) if root else paths.results_dir()
    frame = _only_model(_frame(root, SAMPLES_CACHE), model)
    return frame.drop(columns=[_DIR_COL], errors="ignore")
