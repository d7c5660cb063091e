"""The ``summary`` block of run.json, computed from samples.jsonl, predictions.jsonl and telemetry.

Figures follow docs/measurement.md: warm-up samples are excluded from every latency statistic;
forward, data loading and conversion are summarised apart; model load and the first call are
reported on their own; memory keeps the four named numbers with a reason where one is missing.
"""
from __future__ import annotations

from pathlib import Path

from onlinemap.fileio import iter_jsonl
from onlinemap.harness import events as ev
from onlinemap.runs import schema as rs

__all__ = ["summarize_run", "summary_from_disk", "TIMED_FIELDS", "CRASHED_NOTE"]

# the telemetry figures lifted into summary.memory (the whole record stays in summary.telemetry)
MEMORY_FROM_TELEMETRY = ("nvml_device_used_peak_mb", "nvml_device_baseline_mb", "nvml_device_delta_peak_mb",
                         "nvml_device_reason", "nvml_process_used_peak_mb", "nvml_process_reason", "host_rss_peak_mb",
                         "host_cpu_time_s", "host_reason")
TIMED_FIELDS = {"forward": "forward_ms", "data": "data_ms", "convert": "convert_ms", "total": "total_ms",
                "write": "write_ms", "forward_cuda": "forward_cuda_ms"}


def _validate_predictions(run_dir: Path, expected: list[str]) -> dict:
    from onlinemap.evaluation.predictions import validate_prediction

    valid = invalid = 0
    first_error = None
    seen = []
    for pred in iter_jsonl(run_dir / rs.PREDICTIONS_FILE):
        errors = validate_prediction(pred)
        seen.append(pred.get("sample_token"))
        if errors:
            invalid += 1
            first_error = first_error or f"{pred.get('sample_token')}: {errors[0]}"
        else:
            valid += 1
    mismatched = sum(1 for a, b in zip(seen, expected) if a != b)
    if mismatched:
        invalid += mismatched
        first_error = first_error or f"{mismatched} prediction(s) carry a sample_token other than the sample run"
    return {"valid": valid, "invalid": invalid, "first_error": first_error}


def summarize_run(run_dir: Path, lifecycle: dict, telemetry: dict | None) -> tuple[dict, int]:
    """(summary dict, number of invalid predictions) for the run in ``run_dir``."""
    from onlinemap.telemetry.stats import latency_stats

    samples = [s for s in iter_jsonl(run_dir / rs.SAMPLES_FILE) if s.get("ok")]
    measured = [s for s in samples if not s.get("warmup")]
    latency = {}
    for name, key in TIMED_FIELDS.items():
        values = [s[key] for s in measured if s.get(key) is not None]
        if name == "forward_cuda" and not values:
            latency[name] = None
            continue
        latency[name] = latency_stats(values)
    first = samples[0] if samples else None
    loaded = lifecycle.get(ev.LOADED) or {}
    finished = lifecycle.get(ev.FINISHED) or {}
    torch_mem = lifecycle.get(ev.MEMORY) or {"torch_max_allocated_mb": None, "torch_max_reserved_mb": None,
                                             "reason": "the model process did not report memory"}
    memory = {"torch_max_allocated_mb": torch_mem.get("torch_max_allocated_mb"),
              "torch_max_reserved_mb": torch_mem.get("torch_max_reserved_mb"),
              "torch_reason": torch_mem.get("reason"), "model_alloc_mb": loaded.get("model_alloc_mb")}
    tel = telemetry or {}
    off = None if telemetry else "telemetry off"
    for key in MEMORY_FROM_TELEMETRY:
        memory[key] = tel.get(key)
        if key.endswith("_reason") and off:
            memory[key] = off
    predictions = _validate_predictions(run_dir, [s.get("sample_token") for s in samples])
    summary = {
        "samples": {"measured": len(measured), "warmup": len(samples) - len(measured), "ok": len(samples),
                    "stop_reason": finished.get("stop_reason")},
        "latency_ms": latency,
        "fps": latency["forward"]["fps"],
        "import_s": loaded.get("import_s"),
        "model_load_s": loaded.get("load_s"),
        "first_call_ms": first.get("forward_ms") if first else None,
        "wall_s": finished.get("wall_s"),
        "memory": memory,
        "telemetry": telemetry or {"reason": "telemetry off"},
        "predictions": predictions,
    }
    return summary, predictions["invalid"]


CRASHED_NOTE = "computed from the files on disk: the driver died before it could summarise the run"


def summary_from_disk(run_dir: Path) -> dict:
    """The summary of a run whose driver died (``crashed``): from samples, predictions and events.

    The driver's telemetry died with it, so its figures are None with that reason. Nothing is
    written back: run.json stays as the dead driver left it and the run stays ``crashed``.
    """
    lifecycle = {}
    for event in iter_jsonl(run_dir / rs.EVENTS_FILE, warn=False):
        lifecycle[event.get("event")] = event
    summary, _invalid = summarize_run(run_dir, lifecycle, None)
    lost = "the driver died: its telemetry was lost"
    for key in MEMORY_FROM_TELEMETRY:
        if key.endswith("_reason"):
            summary["memory"][key] = lost
    summary["telemetry"] = {"reason": lost}
    summary["note"] = CRASHED_NOTE
    return summary
