"""The run listing behind ``onlinemap results`` and ``om.list_runs()``: one flat dict per run, newest first.

Kept apart from api.py so that the command imports only the run store (not the runner, the model
registry or pandas): at 100,000 runs it prints its 30 rows within a second, interpreter start
included (issue 16). Only the newest ``limit`` run folders are read (names sort by time).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["list_runs"]


def list_runs(*, model: str | None = None, results_root: Path | None = None,
              limit: int | None = None) -> list[dict]:
    """Runs on disk, newest first, with their effective status; ``limit``: stop after that many rows."""
    from onlinemap.runs.store import effective_status, iter_runs

    if model:
        from onlinemap.registry.discover import find_model

        model = find_model(model).name      # an unknown name is an error, not "no runs yet"
    rows = []
    for run_dir, rec in iter_runs(results_root, model=model):
        summ = rec.summary or {}
        fwd = (summ.get("latency_ms") or {}).get("forward") or {}
        mem = summ.get("memory") or {}
        rows.append({"run_id": rec.run_id, "model": rec.model, "kind": rec.kind, "status": effective_status(rec),
                     "created": rec.created, "device": (rec.settings or {}).get("device"),
                     "measured": (summ.get("samples") or {}).get("measured"), "p50_ms": fwd.get("p50"),
                     "p90_ms": fwd.get("p90"), "fps": summ.get("fps"),
                     "torch_max_allocated_mb": mem.get("torch_max_allocated_mb"),
                     "nvml_device_delta_peak_mb": mem.get("nvml_device_delta_peak_mb"),
                     "host_rss_peak_mb": mem.get("host_rss_peak_mb"),
                     "error": (rec.error or {}).get("message"), "path": str(run_dir)})
        rows[-1].update(_accuracy_columns(run_dir))
        if limit and len(rows) >= limit:   # before the generator opens the next folder
            break
    return rows


def _accuracy_columns(run_dir: Path) -> dict:
    """det_mAP / det_NDS / map_mAP / plan_L2_3s from the run's metrics.json (None without one)."""
    from onlinemap.report.compare import load_headline

    head = load_headline(run_dir) or {}
    return {k: head.get(k) for k in ("det_mAP", "det_NDS", "map_mAP", "plan_L2_3s")}
