"""The run record (``run.json``) and the names of the files beside it.

``run.json`` carries the whole context a figure depends on, so a result can be compared months
later on another pod. It is versioned (``schema_version``): readers refuse a newer version with a
one-line "upgrade onlinemap", and upgrade older ones through ``update_to_N`` in migrate.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["SCHEMA_VERSION", "RUN_FILE", "SAMPLES_FILE", "PREDICTIONS_FILE", "EVENTS_FILE", "LOG_FILE", "JOB_FILE",
           "TELEMETRY_FILE", "METRICS_FILE", "STATUSES", "FINAL_STATUSES", "RunRecord", "record_type_errors"]

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
PREDICTIONS_FILE = "predictions.jsonl"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"
JOB_FILE = "job.json"
TELEMETRY_FILE = "telemetry.csv"
METRICS_FILE = "metrics.json"

# "crashed" is never written: readers derive it from a "running" record whose driver is gone.
STATUSES = ("running", "ok", "failed", "interrupted", "timeout", "crashed")
FINAL_STATUSES = ("ok", "failed", "interrupted", "timeout")


@dataclass
class RunRecord:
    """Everything ``run.json`` holds. Unmeasured numbers are None with a reason, never 0."""

    run_id: str
    model: str
    status: str = "running"
    schema_version: int = SCHEMA_VERSION
    kind: str = "test"                      # test | bench | nightly
    created: str = ""                       # ISO-8601 UTC
    finished: str | None = None
    settings: dict = field(default_factory=dict)
    model_spec: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    driver: dict = field(default_factory=dict)     # pid, pid_create_time, hostname, onlinemap version
    host: dict = field(default_factory=dict)
    gpu: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)   # inside the model env: python, torch, cuda, mm*
    summary: dict = field(default_factory=dict)
    error: dict | None = None
    exit_code: int | None = None
    tags: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_TEXT = ("run_id", "model", "status", "kind", "created")
_BLOCKS = ("settings", "model_spec", "env", "driver", "host", "gpu", "versions", "summary", "tags")
_SUMMARY_BLOCKS = ("samples", "latency_ms", "memory", "telemetry", "predictions")


def record_type_errors(data: dict) -> list[str]:
    """What in a run.json has the wrong type for the readers (``"summary": "oops"``, ``"model": null``).

    Readers index these fields without checking; a record that fails here is skipped with a
    warning, like a corrupt file, instead of crashing a listing of every run.
    """
    errors = []

    def kind(value) -> str:
        return "null" if value is None else type(value).__name__

    for key in _TEXT:
        if key in data and not isinstance(data[key], str):
            errors.append(f"{key} is {kind(data[key])}, not a string")
    if "model" not in data:
        errors.append("model is missing")
    if isinstance(data.get("status"), str) and data["status"] not in STATUSES:
        errors.append(f"status {data['status']!r} is none of {', '.join(STATUSES)}")
    for key in _BLOCKS:
        if key in data and not isinstance(data[key], dict):
            errors.append(f"{key} is {kind(data[key])}, not an object")
    for key, types in (("finished", (str,)), ("error", (dict,)), ("exit_code", (int,))):
        value = data.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            errors.append(f"{key} is {kind(value)}")
    summary = data.get("summary")
    if isinstance(summary, dict):
        for key in _SUMMARY_BLOCKS:
            if summary.get(key) is not None and not isinstance(summary[key], dict):
                errors.append(f"summary.{key} is {kind(summary[key])}, not an object")
        latency = summary.get("latency_ms")
        if isinstance(latency, dict):
            errors += [f"summary.latency_ms.{k} is {kind(v)}, not an object"
                       for k, v in latency.items() if v is not None and not isinstance(v, dict)]
    return errors
