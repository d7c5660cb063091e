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
from onlinemap.runs.fastcheck import fast_token

__all__ = ["summarize_run", "summary_from_disk", "PredictionCheck", "TIMED_FIELDS", "CRASHED_NOTE"]

# the telemetry figures lifted into summary.memory (the whole record stays in summary.telemetry)
MEMORY_FROM_TELEMETRY = ("nvml_device_used_peak_mb", "nvml_device_baseline_mb", "nvml_device_delta_peak_mb",
                         "nvml_device_reason", "nvml_process_used_peak_mb", "nvml_process_reason", "host_rss_peak_mb",
                         "host_cpu_time_s", "host_reason")
TIMED_FIELDS = {"forward": "forward_ms", "data": "data_ms", "convert": "convert_ms", "total": "total_ms",
                "write": "write_ms", "forward_cuda": "forward_cuda_ms"}


class PredictionCheck:
    """Schema checks of predictions one at a time, so the runner can feed each line as the worker
    appends it: the summary is then ready when the worker exits, instead of re-reading and
    re-validating all of predictions.jsonl afterwards (+1.5 ms per sample, issue 16)."""

    def __init__(self) -> None:
        from onlinemap.evaluation.predictions import validate_prediction

        self._validate = validate_prediction     # the compiled validator, once per driver
        self.valid = self.invalid = 0
        self.first_error: str | None = None
        self.seen: list = []

    def feed_line(self, line: bytes) -> None:
        """One raw line of predictions.jsonl: the msgspec fast path (runs/fastcheck.py), else parse + check."""
        token = fast_token(line)
        if token is not None:
            self.seen.append(token)
            self.valid += 1
            return
        import json

        try:
            pred = json.loads(line)
        except ValueError:
            return                               # as iter_jsonl: a line that does not parse is skipped
        self.feed(pred)

    def feed(self, pred) -> None:
        if not isinstance(pred, dict):
            return                               # as iter_jsonl: only JSON objects are predictions
        errors = self._validate(pred)
        self.seen.append(pred.get("sample_token"))
        if errors:
            self.invalid += 1
            self.first_error = self.first_error or f"{pred.get('sample_token')}: {errors[0]}"
        else:
            self.valid += 1

    def result(self, expected: list[str]) -> dict:
        invalid, first_error = self.invalid, self.first_error
        mismatched = sum(1 for a, b in zip(self.seen, expected) if a != b)
        if mismatched:
            invalid += mismatched
            first_error = first_error or f"{mismatched} prediction(s) carry a sample_token other than the sample run"
        return {"valid": self.valid, "invalid": invalid, "first_error": first_error}


def _validate_predictions(run_dir: Path, expected: list[str]) -> dict:
    check = PredictionCheck()
    for pred in iter_jsonl(run_dir / rs.PREDICTIONS_FILE):
        check.feed(pred)
    return check.result(expected)


def temporal_split(samples: list[dict]) -> dict:
    """Forward statistics of a temporal model: each scene's first frame apart from the rest.

    A frame is a scene's first when its ``scene_token`` differs from the sample before it in the
    run (warm-up included): the model then has no history (StreamPETR's memory queue, VAD's
    previous BEV are reset), so its cost is not the steady state's. Measured samples only.
    """
    from onlinemap.telemetry.stats import latency_stats

    first, steady, prev = [], [], object()
    for s in samples:
        scene = s.get("scene_token")
        is_first = scene != prev
        prev = scene
        if s.get("warmup") or s.get("forward_ms") is None:
            continue
        (first if is_first else steady).append(s["forward_ms"])
    return {"scene_first_forward": latency_stats(first), "steady_forward": latency_stats(steady),
            "rule": "a scene's first frame: scene_token differs from the previous sample's"}


def summarize_run(run_dir: Path, lifecycle: dict, telemetry: dict | None,
                  temporal: bool = False, predictions: PredictionCheck | None = None) -> tuple[dict, int]:
    """(summary dict, number of invalid predictions) for the run in ``run_dir``.

    ``temporal``: the pack keeps state across a scene's samples; ``summary.temporal`` then splits
    the forward time into scene-first and steady frames (None otherwise). ``predictions``: the
    check the runner fed while the model ran (else predictions.jsonl is read and checked here).
    """
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
              "torch_reason": torch_mem.get("reason"), "model_alloc_mb": loaded.get("model_alloc_mb"),
              "worker_rss_peak_mb": torch_mem.get("worker_rss_peak_mb")}
    tel = telemetry or {}
    off = None if telemetry else "telemetry off"
    for key in MEMORY_FROM_TELEMETRY:
        memory[key] = tel.get(key)
        if key.endswith("_reason") and off:
            memory[key] = off
    expected = [s.get("sample_token") for s in samples]
    predictions = (predictions.result(expected) if predictions is not None
                   else _validate_predictions(run_dir, expected))
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
        "temporal": temporal_split(samples) if temporal else None,
        "paced_hz": finished.get("paced_hz"),
        "paced_late": finished.get("paced_late"),
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
