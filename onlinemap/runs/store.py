"""Run directories: creation, the run.json lifecycle, listing, and crash detection.

One directory per run means no two writers ever share a file, so the CLI, a notebook and the
nightly job can run at once, also from several pods on one network volume. ``run.json`` is
written atomically at the start (``running``) and at the end (final status). A ``running`` record
whose driver process is gone (same host, pid dead or reused) is reported as ``crashed``, with a
summary computed from its files (never written back); one from another host is left as
``running``, since we cannot see that host's processes.
"""
from __future__ import annotations

import datetime as _dt
import errno
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from onlinemap import paths
from onlinemap.errors import ResultsError
from onlinemap.fileio import decode_json, overwrite_json_in_place, write_json_atomic
from onlinemap.runs.migrate import upgrade
from onlinemap.runs.schema import RUN_FILE, SCHEMA_VERSION, RunRecord, record_type_errors

__all__ = ["utc_now", "new_run_dir", "save_run", "load_run", "load_raw", "iter_runs", "effective_status", "find_run",
           "driver_identity", "with_crash_summary"]

log = logging.getLogger(__name__)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def driver_identity() -> dict:
    """pid + its start time + host: enough to tell later whether this driver is still alive."""
    import psutil

    me = psutil.Process()
    return {"pid": me.pid, "pid_create_time": me.create_time(), "hostname": socket.gethostname()}


def new_run_dir(model: str, root: Path | None = None) -> tuple[str, Path]:
    """Create a fresh, empty run directory ``<UTC time>-<model>-<random>`` and return (run_id, path)."""
    import secrets

    root = paths.ensure_dir(Path(root) if root else paths.results_dir())
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for _ in range(10):
        run_id = f"{stamp}-{paths.check_safe_name(model, 'model name')}-{secrets.token_hex(3)}"
        path = root / run_id
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return run_id, path
    raise ResultsError(f"could not create a unique run directory under {root}")


#: bytes reserved by the first run.json write, so that the final status fits even on a full disk
RUN_FILE_RESERVE = 256 * 1024


def save_run(run_dir: Path, record: RunRecord) -> None:
    """Write run.json atomically; on a full disk fall back to the reserved space, else a one-line ResultsError."""
    path = Path(run_dir) / RUN_FILE
    data = record.to_dict()
    try:
        write_json_atomic(path, data, pad_to=RUN_FILE_RESERVE if record.status == "running" else 0)
    except OSError as exc:
        if exc.errno == errno.ENOSPC and overwrite_json_in_place(path, data):
            log.warning("disk full: %s rewritten in place (its reserved space)", path)
            return
        raise ResultsError(f"cannot write {Path(run_dir) / RUN_FILE}: {exc.strerror or exc}",
                           "free disk space under ONLINEMAP_HOME (df -h) and re-run; finished samples are kept") from None


def load_run(run_dir: Path) -> RunRecord:
    """Read a run.json; refuse a newer schema; raise ResultsError for a corrupt file."""
    return RunRecord.from_dict(load_raw(run_dir))


def load_raw(run_dir: Path | str) -> dict:
    """The run.json of ``run_dir`` as a plain dict, upgraded and type-checked (what :func:`load_run` wraps)."""
    path = os.path.join(run_dir, RUN_FILE)
    try:
        with open(path, "rb") as fh:
            data = decode_json(fh.read())
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing", "this is not a run directory") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})", "the file is corrupt; remove the run directory") from None
    if not isinstance(data, dict) or "run_id" not in data:
        raise ResultsError(f"{path}: not a run record", "the file is corrupt; remove the run directory")
    version = data.get("schema_version", 0)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {version} is newer than this onlinemap ({SCHEMA_VERSION})",
                           "upgrade onlinemap (git pull && pip install -e .)")
    data = upgrade(data)
    wrong = record_type_errors(data)
    if wrong:
        raise ResultsError(f"{path}: not a valid run record ({'; '.join(wrong[:3])})",
                           "the file was edited or damaged; fix it or remove the run directory")
    return data


def effective_status(record: RunRecord) -> str:
    """The status to show: ``crashed`` for a running record whose driver on this host is gone."""
    if record.status != "running":
        return record.status
    drv = record.driver or {}
    if drv.get("hostname") != socket.gethostname() or not drv.get("pid"):
        return "running"
    import psutil

    try:
        proc = psutil.Process(int(drv["pid"]))
        if drv.get("pid_create_time") and abs(proc.create_time() - float(drv["pid_create_time"])) > 1.0:
            return "crashed"  # the pid was reused by another process
        return "running" if proc.status() != psutil.STATUS_ZOMBIE else "crashed"
    except psutil.NoSuchProcess:
        return "crashed"
    except psutil.Error:
        return "running"


def with_crash_summary(run_dir: Path, record: RunRecord) -> RunRecord:
    """Give a ``crashed`` run (no summary: its driver died) one computed from its files, in memory only."""
    if not record.summary and effective_status(record) == "crashed":
        from onlinemap.runs.summary import summary_from_disk

        try:
            record.summary = summary_from_disk(Path(run_dir))
        except (OSError, ValueError) as exc:
            log.warning("cannot summarise crashed run %s: %s", Path(run_dir).name, exc)
    return record


def _run_names(root: Path) -> list[str]:
    """The names in the results folder that may be runs, in no order (one ``os.listdir``, no stat)."""
    try:
        return [n for n in os.listdir(root) if not n.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


#: names picked by a partial selection before the rest is sorted (a listing rarely reads more)
_NEWEST_BATCH = 256


def _newest_first(names: list[str]) -> Iterator[str]:
    """``names`` newest first (names sort by time), sorting only as far as the caller reads.

    At 100k runs, ``onlinemap results`` reads 31 runs: a full sort of the names cost more than
    reading them, so the newest few come from ``heapq.nlargest`` and the rest are sorted only
    when reached.
    """
    import heapq

    top = heapq.nlargest(_NEWEST_BATCH, names)
    yield from top
    if len(top) < len(names):
        cut = top[-1]
        yield from sorted((n for n in names if n < cut), reverse=True)


def iter_runs(root: Path | None = None, model: str | None = None) -> Iterator[tuple[Path, RunRecord]]:
    """(run_dir, record) for each readable run, newest first; unreadable runs are skipped with a warning."""
    root = Path(root) if root else paths.results_dir()
    for name in _newest_first(_run_names(root)):
        run_dir = root / name
        if not os.path.isfile(os.path.join(root, name, RUN_FILE)):   # also skips plain files
            continue
        try:
            record = load_run(run_dir)
        except ResultsError as exc:
            log.warning("skipping %s: %s", run_dir.name, exc.message)
            continue
        if model and record.model.lower() != model.lower():
            continue
        yield run_dir, with_crash_summary(run_dir, record)


def count_run_dirs(root: Path | None = None) -> int:
    """How many entries of the results folder may be runs (names only: nothing is read, stat'ed or sorted)."""
    return len(_run_names(Path(root) if root else paths.results_dir()))


def find_run(run_id: str, root: Path | None = None) -> Path:
    """The directory of ``run_id`` (a unique prefix is enough), or a ResultsError."""
    root = Path(root) if root else paths.results_dir()
    paths.check_safe_name(run_id, "run id")
    exact = root / run_id
    if (exact / RUN_FILE).exists():
        return exact
    matches = sorted(p for p in root.glob(f"{run_id}*") if (p / RUN_FILE).exists()) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ResultsError(f"no run {run_id!r} under {root}", "list runs with `onlinemap results`", exit_code=2)
    raise ResultsError(f"run id {run_id!r} is ambiguous ({len(matches)} runs match)", "give more of the id",
                       exit_code=2)
