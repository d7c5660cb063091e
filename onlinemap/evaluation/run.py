"""Evaluate one run directory: the tasks its predictions cover, written to ``metrics.json``.

Reads ``run.json`` (``model``, ``settings.dataroot``, ``settings.version``, ``status``) and
``predictions.jsonl``; runs detection when any prediction has ``detections_3d``, mapping for
``map_elements`` and planning for ``plan``; writes ``metrics.json`` atomically. One nuScenes
instance is shared by the tasks (loading the tables dominates small evaluations).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from onlinemap.errors import DatasetError, ResultsError
from onlinemap.fileio import read_json, write_json_atomic

__all__ = ["evaluate_run", "METRICS_FILE", "METRICS_SCHEMA_VERSION"]

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
METRICS_SCHEMA_VERSION = 1
DEFAULT_VERSION = "v1.0-trainval"


def evaluate_run(run_dir: Path, dataroot: Path | None = None, version: str | None = None, *,
                 collision: str = "raster") -> dict:
    """Evaluate ``run_dir`` against nuScenes and write ``run_dir/metrics.json``; return its content.

    ``dataroot`` / ``version`` override what run.json recorded. ``collision`` picks the planning
    collision test: ``"raster"`` (VAD's, default) or ``"exact"`` (see docs/evaluation.md). Raises ``ResultsError`` when
    run.json is unreadable or there is no valid prediction, ``DatasetError`` when the dataroot is
    missing or lacks a predicted sample token.
    """
    from onlinemap.evaluation.detection import evaluate_detection, load_nuscenes
    from onlinemap.evaluation.mapping import evaluate_mapping
    from onlinemap.evaluation.planning import evaluate_planning
    from onlinemap.evaluation.predictions import PREDICTIONS_FILE, iter_predictions

    run_dir = Path(run_dir)
    try:
        run = read_json(run_dir / "run.json")
    except FileNotFoundError as exc:
        raise ResultsError(f"{run_dir} has no run.json", hint="pass a run directory under results/") from exc
    except ValueError as exc:
        raise ResultsError(f"{run_dir / 'run.json'} is not valid JSON: {exc}") from exc
    settings = run.get("settings") or {}
    dataroot = dataroot or settings.get("dataroot")
    version = version or settings.get("version") or DEFAULT_VERSION
    if not dataroot:
        raise DatasetError("run.json records no dataroot", hint="pass dataroot= (CLI: --dataroot)")
    if run.get("status") not in (None, "ok"):
        log.warning("%s has status %r: evaluating the samples it finished", run_dir, run.get("status"))

    preds = list(iter_predictions(run_dir))
    if not preds:
        raise ResultsError(f"no valid predictions in {run_dir / PREDICTIONS_FILE}",
                           hint="did the run finish any sample? see its log.txt")
    # the last prediction of a sample wins (a resumed run may repeat one)
    preds = list({p["sample_token"]: p for p in preds}.values())

    started = time.perf_counter()
    nusc = load_nuscenes(Path(dataroot), version)
    unknown = [p["sample_token"] for p in preds if p["sample_token"] not in nusc._token2ind["sample"]]
    if unknown:
        raise DatasetError(f"{len(unknown)} of {len(preds)} predicted samples are not in {version} at {dataroot}, "
                           f"e.g. {unknown[0]}", hint="evaluate against the dataroot/version the run used")
    metrics: dict = {"schema_version": METRICS_SCHEMA_VERSION, "model": run.get("model"),
                     "dataroot": str(dataroot), "version": version, "samples": len(preds), "timings_s": {}}
    tasks = (("detection", "detections_3d", lambda ps: evaluate_detection(ps, Path(dataroot), version,
                                                                         run_dir / "detection", nusc=nusc)),
             ("mapping", "map_elements", lambda ps: evaluate_mapping(ps, Path(dataroot), version, nusc=nusc)),
             ("planning", "plan", lambda ps: evaluate_planning(ps, Path(dataroot), version, nusc=nusc,
                                                                   collision=collision)))
    for name, key, fn in tasks:
        # a sample whose model emits the key at all takes part, even with an empty list
        subset = [p for p in preds if key in p]
        if not subset:
            continue
        t0 = time.perf_counter()
        metrics[name] = fn(subset)
        metrics["timings_s"][name] = round(time.perf_counter() - t0, 3)
    metrics["timings_s"]["total"] = round(time.perf_counter() - started, 3)
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    return metrics
