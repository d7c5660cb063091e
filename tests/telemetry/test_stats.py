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


def test_confidence_intervals_are_the_order_statistic_ones():
    # n = 100: the 95 % distribution-free interval of the median is (x_(40), x_(61)), of the
    # p90 (x_(84), x_(96)) (binomial tables; e.g. Conover, Practical Nonparametric Statistics)
    values = [float(v) for v in range(1, 101)]       # x_(k) = k
    out = latency_stats(values)
    assert out["p50_ci"] == [40.0, 61.0] and out["p90_ci"] == [84.0, 96.0]
    assert out["ci_confidence"] == 0.95
    assert out["p50_ci_rel_pct"] == pytest.approx(100 * (61 - 40) / 2 / 50.5)


def test_too_few_samples_give_no_interval():
    out = latency_stats([1.0, 2.0, 3.0, 4.0, 5.0])
    assert out["p50_ci"] is None and out["p90_ci"] is None and out["p50_ci_rel_pct"] is None
    assert latency_stats([float(v) for v in range(6)])["p50_ci"] == [0.0, 5.0]


def test_interval_covers_at_least_its_confidence():
    """Coverage by simulation on a skewed distribution: exact intervals never under-cover."""
    import random

    from onlinemap.harness.stability import quantile_ci

    rng = random.Random(7)
    true_p90 = -math.log(0.1)                        # exponential(1)
    covered = 0
    trials = 1500
    for _ in range(trials):
        lo, hi = quantile_ci(sorted(rng.expovariate(1.0) for _ in range(60)), 0.9)
        covered += lo <= true_p90 <= hi
    assert covered / trials >= 0.93     # 0.95 nominal, binomial noise of 1500 trials
