"""Runs and samples as pandas DataFrames (pandas is imported only here)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from onlinemap.fileio import iter_jsonl
from onlinemap.runs import schema as rs
from onlinemap.runs.store import effective_status, iter_runs

if TYPE_CHECKING:
    import pandas

_FIELDS = dataclasses.fields(rs.RunRecord)

__all__ = ["flatten", "record_row", "raw_row", "load_runs_frame", "load_samples_frame"]


def flatten(data: dict, prefix: str = "", out: dict | None = None) -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists and empty dicts stay as values. Written into one dict
    (no per-level copies). Nested plain dicts only (what JSON gives): the exact type test is the
    cheapest, and this runs once per nested block of every run of a first load."""
    if out is None:
        out = {}
    for key, value in data.items():
        if value and type(value) is dict:
            flatten(value, prefix + key + ".", out)
        else:
            out[prefix + key] = value
    return out


def record_row(rec: "rs.RunRecord") -> dict:
    """The flat row of one run: its fields flattened straight from the loaded record.

    Not ``rec.to_dict()``: ``dataclasses.asdict`` deep-copies every nested dict and list, which
    was 70 % of a first ``om.results()`` (issue 16). The fields are plain dicts, so the flat keys
    are the same; ``flatten`` builds new dicts and never changes the record.
    """
    return flatten({f.name: getattr(rec, f.name) for f in _FIELDS})


def _defaults() -> dict:
    out = {}
    for f in _FIELDS:
        if f.default is not dataclasses.MISSING:
            out[f.name] = lambda v=f.default: v
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory
    return out


_DEFAULTS = _defaults()


def raw_row(run_dir: Path | str) -> tuple[dict, bool]:
    """(the flat row of ``run_dir``'s run, whether it is ``running``), flattened from the raw dict.

    The upgraded, type-checked dict of run.json is flattened directly (no RunRecord, no
    ``dataclasses.asdict`` copies): the same keys and values as :func:`record_row` of the loaded
    record, missing fields given their defaults. A ``running`` record goes the long way, since
    its status (``crashed``?) and summary are computed from the live process and the files.
    """
    from onlinemap.runs.store import load_raw, with_crash_summary

    data = load_raw(run_dir)
    if data.get("status", "running") == "running":
        rec = with_crash_summary(run_dir, rs.RunRecord.from_dict(data))
        row = record_row(rec)
        row["status"] = effective_status(rec)
        return row, True
    row = flatten({f.name: (data[f.name] if f.name in data else _DEFAULTS[f.name]()) for f in _FIELDS})
    return row, False


def load_runs_frame(root: Path | None = None, *, model: str | None = None, cache: bool = True) -> "pandas.DataFrame":
    """One row per run; ``cache=True`` re-reads only the runs that changed (results/cache.py)."""
    if cache:
        from onlinemap.runs.cache import cached_runs_frame

        return cached_runs_frame(root, model=model)
    import pandas as pd

    rows = []
    for run_dir, rec in iter_runs(root, model=model):
        row = record_row(rec)
        row["status"] = effective_status(rec)
        row["path"] = str(run_dir)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["created"] = pd.to_datetime(frame["created"], utc=True, errors="coerce")
    return frame


def load_samples_frame(root: Path | None = None, *, model: str | None = None,
                       cache: bool = True) -> "pandas.DataFrame":
    """One row per sample; ``cache=True`` re-reads only the runs that changed (results/cache.py)."""
    if cache:
        from onlinemap.runs.cache import cached_samples_frame

        return cached_samples_frame(root, model=model)
    import pandas as pd

    frames = []
    for run_dir, rec in iter_runs(root, model=model):
        rows = list(iter_jsonl(run_dir / rs.SAMPLES_FILE))
        if rows:
            f = pd.DataFrame(rows)
            f.insert(0, "model", rec.model)
            f.insert(0, "run_id", rec.run_id)
            frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
