"""Summary statistics of per-sample latencies, the one definition every report uses.

Percentiles use numpy's default linear interpolation (numpy ``method="linear"``, R type 7), as
optimum-benchmark's ``Latency.from_values``. ``stdev`` is the sample standard deviation (n - 1, as
``statistics.stdev``), None below two values. ``fps = 1000 / mean``: with batch 1 that is
samples / summed time, mmdet3d benchmark.py's "Overall fps" over the same samples. numpy is
imported when called.

Uncertainty: ``p50_ci`` and ``p90_ci`` are 95 % distribution-free order-statistic intervals
(:mod:`onlinemap.harness.stability`: exact binomial coverage for any continuous distribution, no
resampling, no seed), ``[lo, hi]`` in ms, None when there are too few samples (the p50 needs 6,
the p90 needs 36). ``p50_ci_rel_pct`` is the p50 interval's half-width in % of the median, the
figure the precision stop rule (``--ci-target``) compares with.
"""
from __future__ import annotations

import math
from typing import Iterable

from onlinemap.harness.stability import DEFAULT_CONFIDENCE, p50_relative_halfwidth, quantile_ci

__all__ = ["latency_stats", "LATENCY_KEYS", "CI_KEYS"]

#: keys of :func:`latency_stats`' result, all in ms except count, fps and cv_pct
LATENCY_KEYS = ("count", "mean", "p50", "p90", "p95", "p99", "stdev", "min", "max", "fps", "cv_pct")
#: the uncertainty keys after them: intervals (lists) may be None on few samples
CI_KEYS = ("p50_ci", "p90_ci", "p50_ci_rel_pct", "ci_confidence")


def latency_stats(values_ms: Iterable[float]) -> dict:
    """count, mean, p50/p90/p95/p99, stdev, min, max (ms), fps and cv_pct (stdev/mean, %).

    An empty input gives count 0 and None elsewhere. NaN, infinite or negative values raise
    ValueError: a latency that is not a finite duration is a bug upstream, not a sample.
    """
    values = [float(v) for v in values_ms]
    for v in values:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"latency values must be finite and >= 0 ms, got {v!r}")
    out: dict = {k: None for k in LATENCY_KEYS + CI_KEYS}
    out["count"] = len(values)
    out["ci_confidence"] = DEFAULT_CONFIDENCE
    if not values:
        return out
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    p50, p90, p95, p99 = (float(x) for x in np.percentile(arr, [50, 90, 95, 99]))
    stdev = float(arr.std(ddof=1)) if arr.size >= 2 else None
    out.update(mean=mean, p50=p50, p90=p90, p95=p95, p99=p99, stdev=stdev,
               min=float(arr.min()), max=float(arr.max()),
               fps=(1000.0 / mean) if mean > 0 else None,
               cv_pct=(100.0 * stdev / mean) if stdev is not None and mean > 0 else None)
    ordered = sorted(values)
    for key, q in (("p50_ci", 0.5), ("p90_ci", 0.9)):
        ci = quantile_ci(ordered, q, DEFAULT_CONFIDENCE)
        out[key] = None if ci is None else [float(ci[0]), float(ci[1])]
    rel = p50_relative_halfwidth(ordered, DEFAULT_CONFIDENCE)
    out["p50_ci_rel_pct"] = None if rel is None else 100.0 * rel
    return out
