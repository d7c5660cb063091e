"""Distribution-free confidence intervals for quantiles, and the precision stop rule.

Lives in the harness because the worker decides when a run stops (it owns the sample loop);
the driver's statistics (``onlinemap.telemetry.stats``) use the same functions. Standard library
only, Python 3.7 syntax: this runs inside the model envs.

The interval is the order-statistic (binomial) one: for the q-quantile of any continuous
distribution, the number of the n samples below it is Binomial(n, q), so the sorted samples
``x[l-1] .. x[u-1]`` cover it with probability ``P(l <= B < u)``, exactly, whatever the
distribution. Ranks are chosen as the tightest equal-tailed pair with each tail <= (1 - c) / 2.
No resampling, no seed; too few samples for the confidence asked gives None. The ranks depend
only on (n, q, confidence), so they are cached: a run summary asks the same ones for every timed
field (the O(n) table was most of the driver's post-run time at 1,000 samples).
"""
import functools
import math

DEFAULT_CONFIDENCE = 0.95
METHOD = "order statistic (distribution-free binomial), equal tails"


def _binom_cdf_table(n, q):
    """P(B <= k) for k = 0..n, B ~ Binomial(n, q), via log-pmf (no overflow at large n)."""
    if q <= 0.0 or q >= 1.0:
        raise ValueError("q must be in (0, 1)")
    odds = math.log(q) - math.log1p(-q)
    lp = n * math.log1p(-q)          # log P(B = 0); the pmf is stepped in log space
    cdf, acc = [], 0.0
    for k in range(n + 1):
        acc += math.exp(lp)
        cdf.append(min(acc, 1.0))
        if k < n:
            lp += math.log((n - k) / (k + 1.0)) + odds
    return cdf


@functools.lru_cache(maxsize=64)
def quantile_ci_ranks(n, q, confidence=DEFAULT_CONFIDENCE):
    """1-based ranks (l, u) with P(X_(l) <= quantile <= X_(u)) >= confidence, or None if n is too small."""
    if n < 1:
        return None
    alpha = (1.0 - confidence) / 2.0
    cdf = _binom_cdf_table(n, q)
    # lower rank: the largest l with P(B <= l - 1) <= alpha
    l = 0
    while l < n and cdf[l] <= alpha:
        l += 1
    # upper rank: the smallest u with P(B >= u) = 1 - P(B <= u - 1) <= alpha
    u = n
    while u >= 1 and 1.0 - cdf[u - 1] <= alpha:
        u -= 1
    u += 1
    if l < 1 or u > n or l > u:
        return None
    return l, u


def quantile_ci(sorted_values, q, confidence=DEFAULT_CONFIDENCE):
    """(lo, hi) covering the q-quantile with at least ``confidence``; None when too few values."""
    ranks = quantile_ci_ranks(len(sorted_values), q, confidence)
    if ranks is None:
        return None
    return sorted_values[ranks[0] - 1], sorted_values[ranks[1] - 1]


def p50_relative_halfwidth(sorted_values, confidence=DEFAULT_CONFIDENCE):
    """Half the p50 interval's width over the median (0.01 = +-1 %); None when not computable."""
    ci = quantile_ci(sorted_values, 0.5, confidence)
    if ci is None:
        return None
    n = len(sorted_values)
    median = (sorted_values[(n - 1) // 2] + sorted_values[n // 2]) / 2.0
    if median <= 0:
        return None
    return (ci[1] - ci[0]) / 2.0 / median
