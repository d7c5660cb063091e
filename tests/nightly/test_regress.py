"""The nightly rule on synthetic histories: a planted 20 % slowdown is caught, noise is not."""
from __future__ import annotations

import random

from onlinemap.nightly.regress import latency_verdict, memory_verdict


def _history(rng, runs=10, n=50, center=100.0, sd=4.0, run_sd=1.5):
    out = []
    for _ in range(runs):
        shift = rng.gauss(0, run_sd)          # run-to-run drift, as between two nights
        out.append([rng.gauss(center + shift, sd) for _ in range(n)])
    return out


def test_latency_planted_20_percent_slowdown_is_caught():
    for seed in range(50):
        rng = random.Random(seed)
        hist = _history(rng)
        current = [rng.gauss(120.0, 4.8) for _ in range(50)]
        v = latency_verdict(current, hist, factor=1.1, alpha=0.002)
        assert v.status == "regressed", (seed, v)
        assert 1.15 < v.ratio < 1.25 and v.p_value < 1e-6


def test_latency_noise_is_not_flagged():
    flagged = []
    for seed in range(200):
        rng = random.Random(1000 + seed)
        hist = _history(rng)
        current = [rng.gauss(100.0 + rng.gauss(0, 1.5), 4.0) for _ in range(50)]
        v = latency_verdict(current, hist)
        if v.status != "ok":
            flagged.append((seed, v))
    assert not flagged


def test_latency_big_ratio_on_few_noisy_samples_is_not_significant():
    rng = random.Random(3)
    hist = _history(rng, sd=30.0)
    current = [115.0, 190.0, 60.0]     # median 115: ratio > 1.1, but three wild samples prove nothing
    v = latency_verdict(current, hist)
    assert v.ratio > 1.1 and v.status == "ok" and "not significant" in v.note


def test_latency_small_significant_shift_is_not_flagged():
    rng = random.Random(4)
    hist = _history(rng, sd=1.0, run_sd=0.0)
    current = [rng.gauss(105.0, 1.0) for _ in range(200)]   # p tiny, but only 5 % slower
    assert latency_verdict(current, hist).status == "ok"


def test_latency_improvement_and_short_history():
    rng = random.Random(5)
    hist = _history(rng)
    assert latency_verdict([rng.gauss(80, 3) for _ in range(50)], hist).status == "improved"
    v = latency_verdict([rng.gauss(130, 3) for _ in range(50)], hist[:2], min_history=3)
    assert v.status == "no-history" and v.ratio > 1.2
    assert latency_verdict([], hist).status == "unmeasured"
    assert latency_verdict([100.0], []).status == "no-history"


def test_memory_rule_uses_history_median_and_spread():
    hist = [1000.0, 1010.0, 995.0, 1005.0, 1002.0]
    assert memory_verdict("torch_max_allocated_mb", 1200.0, hist).status == "regressed"
    assert memory_verdict("torch_max_allocated_mb", 1012.0, hist).status == "ok"        # new max, ratio 1.01
    # ratio > factor but within what the history has already seen: not significant
    spread = [600.0, 1400.0, 1000.0, 980.0, 1500.0]
    assert memory_verdict("host_rss_peak_mb", 1150.0, spread).status == "ok"
    assert memory_verdict("host_rss_peak_mb", None, hist).status == "unmeasured"
    assert memory_verdict("host_rss_peak_mb", 2000.0, hist[:2]).status == "no-history"
