"""``quick_test_models.sh`` / ``onlinemap setup quick-test``: a smoke test per installed model, one line each.

A model counts as installed when its env and weights checks pass (the data check is the run's own
business). Each line: ``MODEL ok|failed|not-installed  p50 … ms  peak … MiB  reason``. The exit code is
1 when any named or installed model failed (a named model that is not installed fails too), else 0.
Output is plain text with no tty assumptions, so it is safe from cron.
"""
from __future__ import annotations

from typing import Callable, Optional

__all__ = ["quick_test", "peak_memory_mb"]


def peak_memory_mb(summary: dict) -> Optional[float]:
    """The most meaningful peak: torch reserved/allocated on GPU, else the host RSS peak."""
    mem = (summary or {}).get("memory") or {}
    for key in ("torch_max_reserved_mb", "torch_max_allocated_mb", "nvml_device_delta_peak_mb", "host_rss_peak_mb"):
        if isinstance(mem.get(key), (int, float)):
            return float(mem[key])
    return None


def quick_test(models: list, *, samples: int = 5, dataroot=None, out: Callable[[str], None] = print) -> int:
    from onlinemap import api
    from onlinemap.errors import OnlinemapError
    from onlinemap.registry.discover import known_model_names

    named = bool(models)
    failures = 0
    for name in (models or known_model_names()):
        try:
            status = api.model_status(name, dataroot=dataroot)
        except OnlinemapError as exc:
            out(f"{name:<12} failed         {exc.one_line()}")
            failures += 1
            continue
        name = status["name"]
        if not status["installed"]:
            missing = "; ".join(c["detail"] for c in status["checks"] if not c["ok"] and c["step"] != "data")
            if named:
                out(f"{name:<12} failed         not installed: {missing}")
                failures += 1
            else:
                out(f"{name:<12} not-installed  {missing}")
            continue
        try:
            outcome = api.test(name, samples=samples, dataroot=dataroot, echo=False)
        except OnlinemapError as exc:
            out(f"{name:<12} failed         {exc.one_line()}")
            failures += 1
            continue
        rec = outcome.record.to_dict()
        summary = rec.get("summary") or {}
        p50 = (((summary.get("latency_ms") or {}).get("forward")) or {}).get("p50")
        peak = peak_memory_mb(summary)
        p50_s = f"p50 {p50:.1f} ms" if isinstance(p50, (int, float)) else "p50 n/a"
        peak_s = f"peak {peak:.0f} MiB" if peak is not None else "peak n/a"
        if outcome.status == "ok":
            out(f"{name:<12} ok             {p50_s}  {peak_s}  {outcome.run_dir}")
        else:
            err = rec.get("error") or {}
            out(f"{name:<12} failed         {outcome.status}: {err.get('message') or 'see log'}  {p50_s}  {peak_s}  "
                f"{outcome.run_dir}")
            failures += 1
    return 1 if failures else 0
