"""One night: lock, run each configured model on the fixed samples, compare with history, report.

The steps (nox's workflow idea, each a small function): take the lock (a second start is refused
and names the holder) -> note a crashed previous night (stale lock, nightly runs left
``running``) -> for each model, run it unless this night's state file says it already finished
(``--force`` re-runs) -> judge each model's run against its history on the same GPU type
and the same dataset: dataroot, version, sample-list hash (regress.py) -> write ``ONLINEMAP_HOME/nightly/<night>/report.md`` + trend PNGs -> exit code:
0 nothing regressed or failed, 1 a regression or a failed/skipped model, 130 interrupted,
75 another nightly holds the lock.
"""
from __future__ import annotations

import datetime as _dt
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from onlinemap import paths
from onlinemap.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, OnlinemapError
from onlinemap.fileio import iter_jsonl, read_json, write_json_atomic
from onlinemap.nightly.config import NightlyConfig
from onlinemap.nightly.lock import NightlyLock
from onlinemap.nightly.regress import Verdict, latency_verdict, memory_verdict

__all__ = ["NightlyResult", "ModelNight", "run_nightly", "nightly_dir", "gpu_key", "STATE_FILE", "REPORT_FILE",
           "MEMORY_METRICS",
           "dataset_key", "sample_list_hash"]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
REPORT_FILE = "report.md"
STATE_VERSION = 1
# run-level memory peaks judged each night (summary.memory.<name>); unmeasured ones are skipped
MEMORY_METRICS = ("torch_max_allocated_mb", "nvml_device_delta_peak_mb", "host_rss_peak_mb")
COMPLETED = ("ok", "failed", "timeout")   # a restart the same night does not re-run these


def nightly_dir() -> Path:
    return paths.home() / "nightly"


@dataclass
class ModelNight:
    """One model's night: its run, whether it was re-used from an earlier start, and its verdicts."""

    model: str
    status: str                       # ok | failed | timeout | interrupted | skipped
    run_id: str | None = None
    run_dir: str | None = None
    reused: bool = False
    reason: str | None = None
    gpu: str | None = None
    verdicts: list = field(default_factory=list)
    history: list = field(default_factory=list)   # [(created, p50 ms, {metric: peak})] oldest first

    @property
    def regressed(self) -> bool:
        return any(v.regressed for v in self.verdicts)

    def to_dict(self) -> dict:
        return {"model": self.model, "status": self.status, "run_id": self.run_id, "run_dir": self.run_dir,
                "reused": self.reused, "reason": self.reason, "gpu": self.gpu,
                "verdicts": [v.to_dict() for v in self.verdicts]}


@dataclass
class NightlyResult:
    night: str
    directory: Path
    models: list = field(default_factory=list)
    crashed_previous: dict | None = None          # the stale lock record, if the last job died
    crashed_runs: list = field(default_factory=list)
    interrupted: bool = False
    report: Path | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if any(m.regressed or m.status != "ok" for m in self.models):
            return EXIT_FAILED
        return EXIT_OK


def gpu_key(row) -> str:
    """The machine class a figure belongs to: the GPU name, or ``cpu:<model>`` for CPU runs."""
    get = row.get
    device = get("settings.device") or ""
    if str(device).startswith("cuda") and get("gpu.name"):
        return str(get("gpu.name"))
    return f"cpu:{get('host.cpu_model') or 'unknown'}"


def sample_list_hash(run_dir: Path) -> str | None:
    """sha256 (16 hex) of the run's planned sample tokens in order (job.json), warm-up included; None if unreadable."""
    import hashlib

    try:
        samples = read_json(Path(run_dir) / "job.json").get("samples") or []
    except (OSError, ValueError, AttributeError):
        return None
    tokens = [s.get("token") for s in samples if isinstance(s, dict)]
    return hashlib.sha256("\n".join(map(str, tokens)).encode()).hexdigest()[:16] if tokens else None


def dataset_key(row) -> tuple:
    """The data a figure was measured on: (dataroot, version, sample-list hash). Nights on other data never compare."""
    get = row.get
    return (str(get("settings.dataroot") or ""), str(get("settings.version") or ""), sample_list_hash(get("path")))


def _measured_forward(run_dir: Path) -> list[float]:
    return [s["forward_ms"] for s in iter_jsonl(Path(run_dir) / "samples.jsonl")
            if s.get("ok") and not s.get("warmup") and s.get("forward_ms") is not None]


def _load_state(path: Path) -> dict:
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {"schema_version": STATE_VERSION, "models": {}}
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        return {"schema_version": STATE_VERSION, "models": {}}
    return data


def _crashed_runs(results_root: Path | None) -> list[dict]:
    """Nightly runs whose driver died while they were ``running`` (store.effective_status says ``crashed``)."""
    from onlinemap.runs.store import effective_status, iter_runs

    out = []
    for run_dir, rec in iter_runs(results_root):
        if rec.kind == "nightly" and rec.status == "running" and effective_status(rec) == "crashed":
            out.append({"run_id": rec.run_id, "model": rec.model, "night": (rec.tags or {}).get("nightly"),
                        "path": str(run_dir)})
    return out


def _run_one(name: str, config: NightlyConfig, night: str, results_root: Path | None, echo: bool):
    from onlinemap.registry import find_model
    from onlinemap.runner import RunSettings, run_model
    from onlinemap.api import _device

    spec = find_model(name)
    settings = RunSettings(kind="nightly", samples=config.samples, warmup=config.warmup,
                           dataroot=Path(config.dataroot).expanduser() if config.dataroot else None,
                           version=config.version or None, device=_device(config.device),
                           sample_tokens=list(config.sample_tokens), timeout_s=config.timeout_s,
                           inactivity_s=config.inactivity_s, echo=echo, options=dict(config.options), tags={"nightly": night})
    return run_model(spec, settings, results_root=results_root)


def _judge(entry: ModelNight, runs, config: NightlyConfig) -> None:
    """Fill entry.verdicts/history from the runs frame (history: same model, nightly, ok, same GPU type)."""
    import pandas as pd

    if entry.run_id is None or runs.empty:
        return
    current = runs[runs["run_id"] == entry.run_id]
    if current.empty:
        return
    cur = current.iloc[0]
    entry.gpu = gpu_key(cur)
    same = runs[(runs["model"] == entry.model) & (runs["kind"] == "nightly") & (runs["status"] == "ok")
                & (runs["run_id"] != entry.run_id) & (runs["created"] < cur["created"])]
    same = same[same.apply(gpu_key, axis=1) == entry.gpu] if not same.empty else same
    data = dataset_key(cur)
    same = same[[dataset_key(row) == data for _, row in same.iterrows()]] if not same.empty else same
    same = same.sort_values("created").tail(config.history)
    history_samples = [_measured_forward(Path(p)) for p in same["path"]]
    entry.verdicts.append(latency_verdict(_measured_forward(Path(cur["path"])), history_samples,
                                          factor=config.factor, alpha=config.alpha, min_history=config.min_history))
    for metric in MEMORY_METRICS:
        col = f"summary.memory.{metric}"
        value = cur.get(col)
        value = None if value is None or pd.isna(value) else float(value)
        hist = [] if col not in same else [float(v) for v in same[col] if v is not None and not pd.isna(v)]
        if value is None and not hist:
            continue
        entry.verdicts.append(memory_verdict(metric, value, hist, factor=config.factor,
                                             min_history=config.min_history))
    for _, row in pd.concat([same, current]).iterrows():
        fwd = _measured_forward(Path(row["path"]))
        entry.history.append((row["created"], statistics.median(fwd) if fwd else None,
                              {m: row.get(f"summary.memory.{m}") for m in MEMORY_METRICS},
                              row["run_id"] == entry.run_id))


def run_nightly(config: NightlyConfig, *, force: bool = False, night: str | None = None,
                results_root: Path | None = None, echo: bool = False, plots: bool = True,
                lock_path: Path | None = None) -> NightlyResult:
    """Run one night as ``config`` says; see the module docstring. Raises NightlyLockedError when locked."""
    from onlinemap.registry.discover import resolve_model_names

    night = night or _dt.date.today().isoformat()
    paths.check_safe_name(night, "night")
    names = resolve_model_names(config.models)
    directory = paths.ensure_dir(nightly_dir() / night)
    result = NightlyResult(night=night, directory=directory)
    with NightlyLock(lock_path or nightly_dir() / ".lock", night=night) as lock:
        if lock.stale:
            result.crashed_previous = lock.stale
            log.warning("the previous nightly job (pid %s on %s, started %s) did not finish: it crashed or was killed",
                        lock.stale.get("pid"), lock.stale.get("hostname"), lock.stale.get("started"))
        result.crashed_runs = _crashed_runs(results_root)
        state_path = directory / STATE_FILE
        state = _load_state(state_path)
        state.update(schema_version=STATE_VERSION, night=night, config=config.to_dict())
        for name in names:
            done = state["models"].get(name) or {}
            if not force and done.get("status") in COMPLETED and done.get("run_id"):
                log.info("%s already ran tonight (%s, %s): not re-run (use --force)", name, done["status"], done["run_id"])
                result.models.append(ModelNight(name, done["status"], run_id=done["run_id"], run_dir=done.get("run_dir"),
                                                reused=True, reason=done.get("reason")))
                continue
            try:
                outcome = _run_one(name, config, night, results_root, echo)
            except KeyboardInterrupt:
                result.interrupted = True
                break
            except OnlinemapError as exc:
                entry = ModelNight(name, "skipped", reason=exc.one_line())
            else:
                entry = ModelNight(name, outcome.status, run_id=outcome.run_id, run_dir=str(outcome.run_dir),
                                   reason=(outcome.record.error or {}).get("message"))
            result.models.append(entry)
            state["models"][name] = {"status": entry.status, "run_id": entry.run_id, "run_dir": entry.run_dir,
                                     "reason": entry.reason, "finished": _dt.datetime.now().isoformat(timespec="seconds")}
            write_json_atomic(state_path, state)
            if entry.status == "interrupted":
                result.interrupted = True
                break
        from onlinemap.runs.load import load_runs_frame

        runs = load_runs_frame(results_root)
        for entry in result.models:
            if entry.status == "ok":
                _judge(entry, runs, config)
        from onlinemap.nightly.report import write_report

        result.report = write_report(result, config, plots=plots)
        state["result"] = {"exit_code": result.exit_code, "report": str(result.report)}
        write_json_atomic(state_path, state)
    return result
