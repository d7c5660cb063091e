"""Tests for onlinemap.telemetry.stats.latency_stats (pure computation, nothing to fake)."""
from __future__ import annotations

import math
import statistics

import pytest

from onlinemap.telemetry.stats import LATENCY_KEYS, latency_stats

np = pytest.importorskip("numpy")


def test_empty_gives_count_zero_and_none_elsewhere():
    out = latency_stats([])
    assert out["count"] == 0
    assert all(out[k] is None for k in LATENCY_KEYS if k != "count")


def test_one_value():
    out = latency_stats([40.0])
    assert out["count"] == 1 and out["mean"] == out["p99"] == out["min"] == out["max"] == 40.0
    assert out["fps"] == 25.0 and out["stdev"] is None and out["cv_pct"] is None


def test_linear_percentiles_and_sample_stdev():
    values = [10.0, 12.0, 11.0, 50.0, 13.0, 12.5, 11.5, 10.5, 12.0, 14.0]
    out = latency_stats(values)
    for q in (50, 90, 95, 99):
        assert out[f"p{q}"] == pytest.approx(float(np.percentile(values, q)))
    # by hand for linear interpolation: p90 = v[8] + 0.1 * (v[9] - v[8]) on the sorted list
    s = sorted(values)
    assert out["p90"] == pytest.approx(s[8] + 0.1 * (s[9] - s[8]))
    assert out["stdev"] == pytest.approx(statistics.stdev(values))
    assert out["mean"] == pytest.approx(statistics.mean(values))
    assert out["fps"] == pytest.approx(1000.0 / statistics.mean(values))
    assert (out["min"], out["max"], out["count"]) == (10.0, 50.0, 10)
    assert all(isinstance(out[k], float) for k in LATENCY_KEYS if k != "count")


def test_fps_matches_mmdet3d_definition():
    """mmdet3d benchmark.py: fps = samples / summed seconds; with batch 1 that is 1000 / mean."""
    values = [20.0, 25.0, 30.0, 45.0]
    assert latency_stats(values)["fps"] == pytest.approx(len(values) / (sum(values) / 1000.0))


def test_accepts_any_iterable():
    assert latency_stats(iter([1, 2, 3]))["p50"] == 2.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_rejects_non_durations(bad):
    with pytest.raises(ValueError):
        latency_stats([1.0, bad])
