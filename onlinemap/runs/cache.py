"""A load cache for ``om.results()``: the run files stay the truth, the cache only saves re-reading them.

Design note. Reading 10,000 ``run.json`` files (and 500,000 sample lines) on every
``om.results()`` takes many seconds, and the history only grows. So the loaded frames are kept
under ``<results>/.cache/`` (``iter_runs`` skips dot-folders) together with the key each run was
read under: ``(mtime_ns, size)`` of its ``run.json`` (and of its ``samples.jsonl`` for the samples
frame). A load lists the run folders, stats those files, and re-reads only the runs whose key
changed, that are new, or whose record says ``running`` (their status and samples move under our
feet, and ``crashed`` is derived from a live pid, so they are always re-read). Removed runs drop
out. When nothing changed the cached frame is returned as is.

The cache is a pickle of pandas objects (pyarrow is not a dependency). It is written to a temp
file in the same folder and moved into place with ``os.replace``, so several processes (CLI,
notebook, cron, other pods on the volume) may rebuild it at once: each writes a complete file and
the last one wins. A cache that cannot be read (corrupt, truncated, written by another
onlinemap/pandas version) is ignored and rebuilt; deleting ``.cache/`` is always safe. The pickle
is only ever read from the user's own results folder (``ONLINEMAP_HOME``), never from elsewhere.
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

__all__ = ["CACHE_DIR", "CACHE_VERSION", "RUNS_CACHE", "SAMPLES_CACHE", "cached_runs_frame", "cached_samples_frame",
           "clear_cache"]

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"
CACHE_VERSION = 1
RUNS_CACHE = "runs.pkl"
SAMPLES_CACHE = "samples.pkl"
_DIR_COL = "_run_dir"          # internal: the run folder's name (the path is rebuilt from the root on load)


def _stamp() -> tuple:
    """What a cache file must match to be used: our format, the run schema and the pandas version."""
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


def _read_cache(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is simply rebuilt
        log.warning("ignoring the unreadable results cache %s (%s: %s); rebuilding it", path, type(exc).__name__, exc)
        return None
    if not isinstance(data, dict) or data.get("stamp") != _stamp():
        log.info("results cache %s is from another version; rebuilding it", path)
        return None
    return data


def _write_cache(path: Path, data: dict) -> None:
    """Atomic write; a failure only costs speed, so it is logged, never raised (no fsync: a cache)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL), fsync=False)
    except OSError as exc:
        log.warning("cannot write the results cache %s: %s", path, exc)


def clear_cache(root: Path | None = None) -> None:
    """Remove the cache files (they are rebuilt on the next load)."""
    cache = (Path(root) if root else paths.results_dir()) / CACHE_DIR
    for name in (RUNS_CACHE, SAMPLES_CACHE):
        try:
            (cache / name).unlink()
        except FileNotFoundError:
            pass


def _update(root: Path, cache_name: str, with_samples: bool,
            read_run: Callable[[Path], "pandas.DataFrame | dict | None"], build: Callable) -> tuple:
    """Shared incremental logic; returns (frame, keys, running set) after bringing the cache up to date.

    ``read_run(run_dir)`` returns what one run contributes (None when unreadable);
    ``build(old_frame, keep_dirs, new_parts, order)`` assembles the frame.
    """
    cache_path = root / CACHE_DIR / cache_name
    keys = _scan(root, with_samples)
    cached = _read_cache(cache_path) if keys else None
    old_keys: dict = cached["keys"] if cached else {}
    old_running: set = cached["running"] if cached else set()
    old_bad: dict = cached["bad"] if cached else {}
    stale = {name for name, key in keys.items()
             if old_keys.get(name) != key or name in old_running}
    removed = set(old_keys) - set(keys)
    for name, message in old_bad.items():
        if name in keys and name not in stale:
            log.warning("skipping %s: %s", name, message)
    if cached is not None and not stale and not removed:
        return cached["frame"], False
    parts, running, bad = {}, {n for n in old_running if n in keys and n not in stale}, \
        {n: m for n, m in old_bad.items() if n in keys and n not in stale}
    for name in sorted(stale, reverse=True):
        try:
            part, is_running = read_run(root / name)
        except ResultsError as exc:
            log.warning("skipping %s: %s", name, exc.message)
            bad[name] = exc.message
            continue
        if is_running:
            running.add(name)
        if part is not None:
            parts[name] = part
    keep = set(old_keys) - stale - removed - set(old_bad)
    order = sorted(keys, reverse=True)
    frame = build(cached["frame"] if cached else None, keep, parts, order)
    _write_cache(cache_path, {"stamp": _stamp(), "keys": keys, "running": running, "bad": bad, "frame": frame})
    return frame, True


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


def cached_runs_frame(root: Path | None = None, *, model: str | None = None) -> "pandas.DataFrame":
    """One row per run (as ``load_runs_frame``), re-reading only the runs that changed since the last load."""
    import pandas as pd

    from onlinemap.runs.load import record_row
    from onlinemap.runs.store import effective_status, load_run, with_crash_summary

    root = Path(root) if root else paths.results_dir()

    def read_run(run_dir: Path):
        rec = with_crash_summary(run_dir, load_run(run_dir))
        row = record_row(rec)
        row["status"] = effective_status(rec)
        row[_DIR_COL] = run_dir.name
        return row, rec.status == "running"

    def build(old, keep, parts, order):
        new = pd.DataFrame(list(parts.values()))
        if not new.empty:
            new["created"] = pd.to_datetime(new["created"], utc=True, errors="coerce")
        pieces = [f for f in (old[old[_DIR_COL].isin(keep)] if old is not None and not old.empty else None, new)
                  if f is not None and not f.empty]
        if not pieces:
            return pd.DataFrame()
        frame = pd.concat(pieces, ignore_index=True, sort=False) if len(pieces) > 1 else pieces[0]
        rank = {name: i for i, name in enumerate(order)}
        frame = frame.iloc[frame[_DIR_COL].map(rank).argsort(kind="stable")].reset_index(drop=True)
        return frame

    frame, _changed = _update(root, RUNS_CACHE, False, read_run, build)
    return _finish(frame, root, model, with_path=True)


def cached_samples_frame(root: Path | None = None, *, model: str | None = None) -> "pandas.DataFrame":
    """One row per sample (as ``load_samples_frame``), from per-run cached pieces kept in one file."""
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

    def build(old, keep, parts, order):
        pieces = []
        if old is not None and not old.empty and keep:
            pieces.append(old[old[_DIR_COL].isin(keep)])
        if parts:
            # one DataFrame from every new row at once: 10k small frames + concat is several times slower
            pieces.append(pd.DataFrame([row for rows in parts.values() for row in rows]))
        pieces = [p for p in pieces if not p.empty]
        if not pieces:
            return pd.DataFrame()
        frame = pd.concat(pieces, ignore_index=True, sort=False) if len(pieces) > 1 else pieces[0]
        rank = {name: i for i, name in enumerate(order)}
        codes = frame[_DIR_COL].map(rank).to_numpy()
        frame = frame.iloc[codes.argsort(kind="stable")].reset_index(drop=True)
        # run ids and models repeat on every sample row: categories make the pickle small and fast
        for col in ("run_id", "model", _DIR_COL):
            if col in frame and frame[col].dtype == object:
                frame[col] = frame[col].astype("category")
        return frame

    frame, _changed = _update(root, SAMPLES_CACHE, True, read_run, build)
    out = _finish(frame, root, model, with_path=False)
    for col in ("run_id", "model"):
        if col in out and isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object)
    return out
