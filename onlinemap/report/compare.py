"""Pick runs and turn each into one flat comparison row; write ``comparison_summary.json``.

Design note: a row is a *flat* dict (``p50_ms``, ``torch_max_allocated_mb``,
``torch_max_allocated_reason``, ``det_NDS`` …) so the same rows feed the terminal table, the CSV,
the JSON file, the markdown summary and the plots, and load into pandas as they are. A figure that
was not measured stays ``None`` next to its reason, never 0. Accuracy comes from the run's
``metrics.json`` (written by ``onlinemap eval``) when present; otherwise the accuracy keys are
``None`` and ``has_metrics`` is False.

Only light modules are imported here: ``api.list_runs`` uses :func:`load_headline` for the
accuracy columns of ``onlinemap results``.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import logging
from pathlib import Path
from typing import Iterable, Sequence

from onlinemap import paths
from onlinemap.errors import ResultsError, UsageError
from onlinemap.fileio import iter_jsonl, read_json, write_json_atomic

__all__ = ["SUMMARY_FILE", "CSV_FILE", "SUMMARY_SCHEMA_VERSION", "MEMORY_KEYS", "ACCURACY_KEYS", "ROW_KEYS",
           "select_runs", "headline_metrics", "load_headline", "comparison_row", "comparison_rows",
           "forward_samples", "default_report_dir", "write_comparison", "rows_to_csv"]

log = logging.getLogger(__name__)

SUMMARY_FILE = "comparison_summary.json"
CSV_FILE = "comparison.csv"
SUMMARY_SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"   # = onlinemap.evaluation.run.METRICS_FILE (not imported: it pulls numpy in)

# value key in summary.memory -> (row key, reason key in summary.memory, label for people)
MEMORY_KEYS = {
    "torch_max_allocated_mb": ("torch_reason", "torch peak allocated"),
    "nvml_device_delta_peak_mb": ("nvml_device_reason", "NVML device delta"),
    "nvml_process_used_peak_mb": ("nvml_process_reason", "NVML process"),
    "host_rss_peak_mb": ("host_reason", "host RSS peak"),
}

# flat accuracy key -> (metrics.json section, path inside it), the headline numbers per task
ACCURACY_KEYS = {
    "det_mAP": ("detection", ("mAP",)),
    "det_NDS": ("detection", ("NDS",)),
    "map_mAP": ("mapping", ("mAP",)),
    "plan_L2_1s": ("planning", ("L2", "1s")),
    "plan_L2_2s": ("planning", ("L2", "2s")),
    "plan_L2_3s": ("planning", ("L2", "3s")),
    "plan_collision_1s": ("planning", ("collision", "1s")),
    "plan_collision_2s": ("planning", ("collision", "2s")),
    "plan_collision_3s": ("planning", ("collision", "3s")),
}

def _variant(rec):
    """The env variant a run used (run.json model_spec.variant; runs before variants existed: paper)."""
    if (rec.env or {}).get("kind") == "host":
        return None
    return (rec.model_spec or {}).get("variant") or (rec.env or {}).get("variant") or "paper"


ROW_KEYS = (["run_id", "model", "kind", "status", "created", "device", "backend", "variant", "gpu", "env_kind", "lock_hash", "measured",
             "p50_ms", "p90_ms", "p99_ms", "mean_ms", "fps"]
            + [k for key in MEMORY_KEYS for k in (key, key[:-3] + "_reason")]
            + ["has_metrics", "eval_samples"] + list(ACCURACY_KEYS) + ["reproduction", "path"])


# ------------------------------------------------------------------------------------ selecting runs
def _split_models(models: str | Sequence[str] | None) -> list[str] | None:
    """``"A,B"`` / ``["A", "B"]`` -> names; ``None``/``"all"`` -> None (every model)."""
    if models is None:
        return None
    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models) if m and m.strip()]
    return None if not names or any(n.lower() == "all" for n in names) else names


def select_runs(run_ids: Sequence[str] | None = None, *, latest: bool = False,
                models: str | Sequence[str] | None = None, results_root: Path | None = None) -> list[Path]:
    """The run directories to work on, in a stable order.

    - ``run_ids``: each resolved with ``find_run`` (a unique prefix is enough), in the order given;
    - else, with ``latest`` or ``models``: the newest run with status ``ok`` of each model and backend (``models``
      ``"A,B"`` or a list; ``None``/``"all"``: every model with an ok run), ordered by model name.
      A named model without an ok run is skipped with a warning.

    Raises UsageError when both or neither are given, ResultsError when nothing matches.
    """
    from onlinemap.runs.store import effective_status, find_run, iter_runs

    if run_ids and (latest or models):
        raise UsageError("give run ids or --latest/--models, not both")
    if run_ids:
        return [find_run(r, results_root) for r in run_ids]
    if not (latest or models):
        raise UsageError("no runs given", "pass run ids (prefixes are enough) or --latest [--models A,B|all]")
    wanted = _split_models(models)
    newest: dict[tuple, Path] = {}   # per model, backend and env variant: torch/onnxruntime, paper/modern side by side
    for run_dir, rec in iter_runs(results_root):   # newest first
        key = (rec.model.lower(), (rec.settings or {}).get("backend") or "torch", _variant(rec))
        if key in newest or effective_status(rec) != "ok":
            continue
        if wanted is None or key[0] in {w.lower() for w in wanted}:
            newest[key] = run_dir
    for name in wanted or []:
        if name.lower() not in {k[0] for k in newest}:
            log.warning("no ok run of %s: skipped", name)
    if not newest:
        what = "any model" if wanted is None else ", ".join(wanted)
        first = wanted[0] if wanted else "reference"
        raise ResultsError(f"no ok run of {what} under {Path(results_root) if results_root else paths.results_dir()}",
                           f"run one first: onlinemap test --model {first}", exit_code=2)
    return [newest[k] for k in sorted(newest)]


# ---------------------------------------------------------------------------------------- accuracy
def _dig(data, path: Iterable[str]):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def headline_metrics(metrics: dict | None) -> dict:
    """The headline numbers of a metrics.json (``det_mAP``, ``det_NDS``, ``map_mAP``, ``plan_L2_*``,
    ``plan_collision_*``): None where a task was not evaluated or a number is undefined."""
    metrics = metrics or {}
    return {key: _dig(metrics.get(section), path) for key, (section, path) in ACCURACY_KEYS.items()}


def load_headline(run_dir: Path) -> dict | None:
    """:func:`headline_metrics` of ``run_dir/metrics.json`` plus ``eval_samples``; None without the file."""
    path = Path(run_dir) / METRICS_FILE
    try:
        metrics = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s unreadable (%s): accuracy left out", path, exc)
        return None
    out = headline_metrics(metrics if isinstance(metrics, dict) else None)
    out["eval_samples"] = metrics.get("samples") if isinstance(metrics, dict) else None
    return out


# --------------------------------------------------------------------------------------------- rows
def comparison_row(run_dir: Path) -> dict:
    """One flat row for one run: identity, latency, the four memory numbers (+ reasons), accuracy, env, GPU."""
    from onlinemap.runs.store import effective_status, load_run, with_crash_summary

    run_dir = Path(run_dir)
    # a crashed run (its driver died before writing a summary) gets one computed from its files, as in `results`
    rec = with_crash_summary(run_dir, load_run(run_dir))
    summ = rec.summary or {}
    fwd = (summ.get("latency_ms") or {}).get("forward") or {}
    mem = summ.get("memory") or {}
    gpu = rec.gpu or {}
    env = rec.env or {}
    row: dict = {"run_id": rec.run_id, "model": rec.model, "kind": rec.kind, "status": effective_status(rec),
                 "created": rec.created, "device": (rec.settings or {}).get("device"),
                 "backend": (rec.settings or {}).get("backend") or "torch", "variant": _variant(rec),
                 "gpu": gpu.get("name") if gpu.get("available") else None,
                 "env_kind": env.get("kind"), "lock_hash": env.get("lock_hash"),
                 "measured": (summ.get("samples") or {}).get("measured"),
                 "p50_ms": fwd.get("p50"), "p90_ms": fwd.get("p90"), "p99_ms": fwd.get("p99"),
                 "mean_ms": fwd.get("mean"), "fps": fwd.get("fps", summ.get("fps"))}
    for key, (reason_key, _label) in MEMORY_KEYS.items():
        value = mem.get(key)
        row[key] = value
        row[key[:-3] + "_reason"] = None if value is not None else (mem.get(reason_key) or "not recorded")
    head = load_headline(run_dir)
    row["has_metrics"] = head is not None
    row["eval_samples"] = (head or {}).get("eval_samples")
    for key in ACCURACY_KEYS:
        row[key] = (head or {}).get(key)
    rep = (rec.tags or {}).get("reproduction") if isinstance(rec.tags, dict) else None
    # `onlinemap reproduce` records its verdict here (onlinemap/reproduce.py); None for other runs
    row["reproduction"] = rep.get("verdict") if isinstance(rep, dict) else None
    row["path"] = str(run_dir)
    return {k: row.get(k) for k in ROW_KEYS}


def comparison_rows(run_dirs: Iterable[Path]) -> list[dict]:
    """:func:`comparison_row` for each run directory, in order."""
    return [comparison_row(d) for d in run_dirs]


def forward_samples(run_dir: Path) -> list[float]:
    """Per-sample forward_ms of a run's measured samples (warm-up and failed samples left out)."""
    return [float(s["forward_ms"]) for s in iter_jsonl(Path(run_dir) / "samples.jsonl")
            if not s.get("warmup") and s.get("ok", True) and isinstance(s.get("forward_ms"), (int, float))]


# ------------------------------------------------------------------------------------------ writing
def default_report_dir() -> Path:
    """A new ``ONLINEMAP_HOME/reports/<UTC timestamp>[-N]/`` (created)."""
    root = paths.ensure_dir(paths.home() / "reports")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise ResultsError(f"could not create a report directory under {root}")


def rows_to_csv(rows: Sequence[dict]) -> str:
    """The rows as CSV text (header = ROW_KEYS; None -> empty cell)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_KEYS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in ROW_KEYS})
    return buf.getvalue()


def write_comparison(rows: Sequence[dict], out_dir: Path) -> dict[str, Path]:
    """Write ``comparison_summary.json`` (``{"schema_version", "generated_by", "created", "runs": rows}``)
    and ``comparison.csv`` into ``out_dir``; return their paths."""
    from onlinemap import __version__

    out_dir = paths.ensure_dir(Path(out_dir))
    summary = {"schema_version": SUMMARY_SCHEMA_VERSION,
               "generated_by": f"onlinemap {__version__} (onlinemap compare RUN_ID… / onlinemap report)",
               "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "keys": ROW_KEYS, "runs": list(rows)}
    json_path, csv_path = out_dir / SUMMARY_FILE, out_dir / CSV_FILE
    write_json_atomic(json_path, summary)
    csv_path.write_text(rows_to_csv(rows), encoding="utf-8")
    return {"summary": json_path, "csv": csv_path}
