"""A load cache for ``om.results()``: the run files stay the truth, the cache only saves re-reading them.

Design note. Reading 100,000 ``run.json`` files on every ``om.results()`` takes minutes, and the
history only grows. So the loaded frames are kept under ``<results>/.cache/<frame>/`` (``iter_runs``
skips dot-folders) in **pieces**: each piece holds the rows of a contiguous range of run folders
(names sort by time; about ``PIECE_RUNS`` runs a piece) with the key each run was read under:
``(mtime_ns, size)`` of its ``run.json`` (and of its ``samples.jsonl`` for the samples frame). A
load lists the run folders, stats those files, reads every piece, and rebuilds only the pieces
whose runs changed, were added or removed, or hold a run whose record says ``running`` (its
status and samples move under our feet, and ``crashed`` is derived from a live pid, so it is
always re-read); in a rebuilt piece only those runs are re-read. A new run lands in the newest
piece, so one new run rewrites one small file, not the whole frame (issue 16: the single-file
cache cost 3.5x a cached load per new run). A piece that grows past twice ``PIECE_RUNS`` is split.

Pieces are pickles of pandas frames, written to a temp file in the same folder and moved into
place with ``os.replace``, so several processes (CLI, notebook, cron, other pods on the volume) may
rebuild at once: each writes complete files, the last one wins, and a piece another process
removed is rebuilt by the next load. A piece that cannot be read (corrupt, truncated, written by
another onlinemap/pandas version) is rebuilt with a warning; deleting ``.cache/`` is always safe.
The pickles are only ever read from the user's own results folder (``ONLINEMAP_HOME``). Parquet
(pyarrow) was measured against pickle for these pieces and not adopted: docs/measurement.md.
"""
from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from onlinemap import paths
from onlinemap.errors import ResultsError
from onlinemap.fileio import write_bytes_atomic
from onlinemap.runs import schema as rs

if TYPE_CHECKING:
    import pandas

__all__ = ["CACHE_DIR", "CACHE_VERSION", "RUNS_CACHE", "SAMPLES_CACHE", "PIECE_RUNS", "cached_runs_frame",
           "cached_samples_frame", "clear_cache"]

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"
CACHE_VERSION = 2
RUNS_CACHE = "runs"            # folders under CACHE_DIR, one piece file per range of run folders
SAMPLES_CACHE = "samples"
PIECE_RUNS = 2000
PIECE_SUFFIX = ".pkl"
_DIR_COL = "_run_dir"          # internal: the run folder's name (the path is rebuilt from the root on load)


def _stamp() -> tuple:
    """What a cache piece must match to be used: our format, the run schema and the pandas version."""
    import pandas as pd

    return (CACHE_VERSION, rs.SCHEMA_VERSION, pd.__version__)


def _file_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _scan(root: Path, with_samples: bool) -> dict[str, tuple]:
    """{run folder name: key} for every folder under ``root`` that holds a run.json."""
    keys = {}
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return keys
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        run_key = _file_key(os.path.join(entry.path, rs.RUN_FILE))
        if run_key is None:
            continue
        if with_samples:
            keys[entry.name] = run_key + (_file_key(os.path.join(entry.path, rs.SAMPLES_FILE)) or (0, -1))
        else:
            keys[entry.name] = run_key
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


def _piece_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.name.endswith(PIECE_SUFFIX) and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def _pieces(folder: Path) -> list[dict]:
    """The readable pieces in ``folder``, oldest range first (each with its ``path``)."""
    files = _piece_files(folder)
    out = []
    for path in files:
        data = _read_piece(path)
        if data is not None and data["keys"]:
            data["path"] = path
            out.append(data)
    return out


def _update(root: Path, cache_name: str, with_samples: bool,
            read_run: Callable[[Path], tuple], make_frame: Callable) -> list:
    """Bring the pieces up to date; returns the pieces' frames, newest range first.

    ``read_run(run_dir)`` returns (what one run contributes or None, whether it is running);
    ``make_frame(old_frame or None, reused names, {name: new part})`` builds one piece's frame,
    rows newest first.
    """
    from bisect import bisect_right

    folder = root / CACHE_DIR / cache_name
    keys = _scan(root, with_samples)
    names = sorted(keys)
    pieces = _pieces(folder) if keys else []
    firsts = [min(p["keys"]) for p in pieces]
    assigned: list[list[str]] = [[] for _ in pieces] or [[]]
    for name in names:   # the piece whose range holds it; a name older than every piece goes to the oldest
        assigned[max(bisect_right(firsts, name) - 1, 0)].append(name)
    if not pieces:
        assigned = [names[i:i + PIECE_RUNS] for i in range(0, len(names), PIECE_RUNS)]
        pieces = [None] * len(assigned)
    frames, keep_files = [], set()
    for piece, members in zip(pieces, assigned):
        old_keys = piece["keys"] if piece else {}
        running = piece["running"] if piece else set()
        bad = piece["bad"] if piece else {}
        for name, message in bad.items():
            if name in keys and keys[name] == old_keys.get(name):
                log.warning("skipping %s: %s", name, message)
        fresh = (piece is not None and not running and len(members) == len(old_keys)
                 and all(old_keys.get(n) == keys[n] for n in members))
        if fresh:
            keep_files.add(piece["path"].name)
            frames.append(piece["frame"])
            continue
        if not members:
            continue
        stale = [n for n in members if old_keys.get(n) != keys[n] or n in running]
        stale_set = set(stale)
        member_set = set(members)
        # a run that failed to read and did not change stays skipped (with its warning above)
        new_bad = {n: m for n, m in bad.items() if n in member_set and n not in stale_set}
        reused = [n for n in members if n not in stale_set and n not in new_bad]
        parts, new_running = {}, set()
        for name in sorted(stale, reverse=True):
            try:
                part, is_running = read_run(root / name)
            except ResultsError as exc:
                log.warning("skipping %s: %s", name, exc.message)
                new_bad[name] = exc.message
                continue
            if is_running:
                new_running.add(name)
            if part is not None:
                parts[name] = part
        frame = make_frame(piece["frame"] if piece else None, reused, parts)
        # split a piece that grew too large, so that later changes rewrite small files
        chunks = [members] if len(members) <= 2 * PIECE_RUNS else \
            [members[i:i + PIECE_RUNS] for i in range(0, len(members), PIECE_RUNS)]
        for chunk in chunks:
            part_frame = frame if len(chunks) == 1 else \
                frame[frame[_DIR_COL].isin(set(chunk))].reset_index(drop=True) if not frame.empty else frame
            cset = set(chunk)
            data = {"stamp": _stamp(), "keys": {n: keys[n] for n in chunk}, "running": new_running & cset,
                    "bad": {n: m for n, m in new_bad.items() if n in cset}, "frame": part_frame}
            name = chunk[0] + PIECE_SUFFIX
            keep_files.add(name)
            _write_piece(folder / name, data)
            frames.append(part_frame)
    for path in _piece_files(folder):   # ranges that moved or emptied, and unreadable pieces
        if path.name not in keep_files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
    # pieces were visited oldest range first; each piece's rows are newest first
    return [f for f in reversed(frames) if f is not None and not f.empty]


def _concat(frames: list) -> "pandas.DataFrame":
    import pandas as pd

    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]


def _finish(frame: "pandas.DataFrame", root: Path, model: str | None, with_path: bool) -> "pandas.DataFrame":
    if frame.empty:
        return frame.drop(columns=[_DIR_COL], errors="ignore")
    if model:
        frame = frame[frame["model"].astype(str).str.lower() == model.lower()]
        if frame.empty:
            import pandas as pd

            return pd.DataFrame()     # as the plain reader: no rows, no columns
    if with_path:
        frame = frame.assign(path=str(root) + os.sep + frame[_DIR_COL].astype(str))
    return frame.drop(columns=[_DIR_COL]).reset_index(drop=True)


def _order(frame: "pandas.DataFrame") -> "pandas.DataFrame":
    """Rows newest run folder first (names sort by time), as the plain reader lists them; a run's rows keep their order."""
    if frame.empty:
        return frame
    return frame.sort_values(_DIR_COL, ascending=False, kind="stable").reset_index(drop=True)


def cached_runs_frame(root: Path | None = None, *, model: str | None = None) -> "pandas.DataFrame":
    """One row per run (as ``load_runs_frame``), re-reading only the runs that changed since the last load."""
    import pandas as pd

    from onlinemap.runs.load import raw_row

    root = Path(root) if root else paths.results_dir()

    def read_run(run_dir: Path):
        row, is_running = raw_row(run_dir)
        row[_DIR_COL] = run_dir.name
        return row, is_running

    def make_frame(old, reused, parts):
        new = pd.DataFrame(list(parts.values()))
        if not new.empty:
            new["created"] = pd.to_datetime(new["created"], utc=True, errors="coerce")
        pieces = [f for f in (old[old[_DIR_COL].isin(set(reused))] if old is not None and not old.empty and reused
                              else None, new) if f is not None and not f.empty]
        return _compact(_order(_concat(pieces)))

    frame = _concat(_update(root, RUNS_CACHE, False, read_run, make_frame))
    for col in frame.columns:     # back to the plain reader's plain strings (the values are the same objects)
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object)
    return _finish(frame, root, model, with_path=True)


def _compact(frame: "pandas.DataFrame") -> "pandas.DataFrame":
    """Columns of repeated strings as categories in the cached piece: pickled as small integer codes
    plus each distinct string once, they load several times faster than 2,000 string objects a
    column (most of the 151 columns repeat: host, env, versions, settings). Only columns with no
    missing value, so turning them back into objects gives exactly the plain reader's values."""
    import pandas as pd

    for col in frame.columns:
        values = frame[col]
        if values.dtype != object or len(values) < 8:
            continue
        try:
            distinct = values.nunique(dropna=False)
        except TypeError:          # lists and dicts are not hashable: left as they are
            continue
        if distinct <= len(values) // 4 and pd.api.types.infer_dtype(values, skipna=False) == "string":
            frame[col] = values.astype("category")
    return frame


def cached_samples_frame(root: Path | None = None, *, model: str | None = None) -> "pandas.DataFrame":
    """One row per sample (as ``load_samples_frame``), from per-range cached pieces."""
    import pandas as pd

    from onlinemap.fileio import iter_jsonl
    from onlinemap.runs.store import load_run

    root = Path(root) if root else paths.results_dir()

    def read_run(run_dir: Path):
        rec = load_run(run_dir)
        rows = list(iter_jsonl(run_dir / rs.SAMPLES_FILE))
        if not rows:
            return None, rec.status == "running"
        head = {"run_id": rec.run_id, "model": rec.model}
        return [{**head, **r, _DIR_COL: run_dir.name} for r in rows], rec.status == "running"

    def make_frame(old, reused, parts):
        pieces = []
        if old is not None and not old.empty and reused:
            pieces.append(old[old[_DIR_COL].isin(set(reused))])
        if parts:
            # one DataFrame from every new row at once: 10k small frames + concat is several times slower
            pieces.append(pd.DataFrame([row for rows in parts.values() for row in rows]))
        frame = _order(_concat([p for p in pieces if not p.empty]))
        # run ids and models repeat on every sample row: categories make the pickle small and fast
        for col in ("run_id", "model", _DIR_COL):
            if col in frame and frame[col].dtype == object:
                frame[col] = frame[col].astype("category")
        return frame

    frame = _concat(_update(root, SAMPLES_CACHE, True, read_run, make_frame))
    out = _finish(frame, root, model, with_path=False)
    for col in ("run_id", "model"):
        if col in out and isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object)
    return out
