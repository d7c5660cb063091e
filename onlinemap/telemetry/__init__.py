"""Driver-side measurement: NVML GPU memory, host process-tree RSS, machine facts, latency stats.

Modules: ``nvml`` (the NVML seam, device mapping, ``gpu_info``, ``preflight``), ``host``
(psutil process-tree tracking), ``sampler`` (``TelemetrySampler``, the thread the runner starts
per model process), ``hostinfo`` (``host_record`` for run.json), ``stats`` (``latency_stats``).
docs/measurement.md says what each figure means.

Importing this package (or any module in it) imports neither pynvml, psutil nor numpy and touches
no hardware: the names below are resolved on first use (module ``__getattr__``, as nox does).
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TelemetrySampler", "gpu_info", "preflight", "load_nvml", "resolve_device",
           "host_record", "latency_stats", "ProcessTreeTracker"]

_WHERE = {
    "TelemetrySampler": "sampler",
    "gpu_info": "nvml",
    "preflight": "nvml",
    "load_nvml": "nvml",
    "resolve_device": "nvml",
    "host_record": "hostinfo",
    "latency_stats": "stats",
    "ProcessTreeTracker": "host",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
