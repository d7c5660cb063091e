"""The regression rule: a slowdown beyond a factor that is also significant (asv's rule, for a history).

asv (``asv compare``/``continuous``) calls a benchmark worse when the ratio of the new to the old
figure exceeds a factor (default 1.1) *and*, where raw samples exist, a Mann-Whitney U test says
the difference is real (p < 0.002). We apply the same two-part rule against a history:

* **Latency** (``forward_ms`` of every measured sample). The baseline is the median of the
  history runs' medians (robust to one odd night); the ratio is the current median over it. The
  test is a one-sided Mann-Whitney U of the current run's raw samples against the pooled raw
  samples of the history runs. Both must agree: ratio > factor and p < alpha. The factor keeps a
  tiny but significant shift (a few percent between two nights is normal) from being flagged; the
  test keeps a big but noisy ratio from a short run from being flagged.
* **Memory** has one value per run (a peak), so there is no per-run sample to test. The ratio is
  the current peak over the history's median, and "significant" uses the history's spread: the
  current peak must also exceed every value of the window. With n earlier runs and nothing
  changed, a peak beats all of them with probability 1/(n+1), and it must also be ``factor``
  above their median.

Fewer than ``min_history`` earlier runs: the figures are reported, never flagged. Improvements
(the mirror rule) are reported too, never an error.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Sequence

__all__ = ["Verdict", "latency_verdict", "memory_verdict", "mann_whitney_p", "DEFAULT_FACTOR", "DEFAULT_ALPHA"]

DEFAULT_FACTOR = 1.1     # asv compare/continuous default
DEFAULT_ALPHA = 0.002    # asv: Mann-Whitney U p < 0.002 when raw samples exist


@dataclass
class Verdict:
    """One metric of one model, judged against its history."""

    metric: str
    status: str                  # regressed | improved | ok | no-history | unmeasured
    current: float | None = None
    baseline: float | None = None
    ratio: float | None = None
    p_value: float | None = None
    history_runs: int = 0
    note: str = ""

    @property
    def regressed(self) -> bool:
        return self.status == "regressed"

    def to_dict(self) -> dict:
        return asdict(self)


def mann_whitney_p(current: Sequence[float], reference: Sequence[float], alternative: str) -> float:
    """One-sided Mann-Whitney U p-value (scipy's, asymptotic with tie and continuity correction)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(list(current), list(reference), alternative=alternative, method="asymptotic").pvalue)


def latency_verdict(current: Sequence[float], history: Sequence[Sequence[float]], *, factor: float = DEFAULT_FACTOR,
                    alpha: float = DEFAULT_ALPHA, min_history: int = 3, metric: str = "forward_ms") -> Verdict:
    """Judge the current run's raw latency samples against the raw samples of earlier runs (one list each)."""
    current = [float(v) for v in current if v is not None]
    history = [[float(v) for v in run if v is not None] for run in history]
    history = [run for run in history if run]
    if not current:
        return Verdict(metric, "unmeasured", history_runs=len(history), note="no measured sample in this run")
    cur = statistics.median(current)
    if not history:
        return Verdict(metric, "no-history", current=cur, note="no earlier comparable run")
    base = statistics.median(statistics.median(run) for run in history)
    ratio = cur / base if base > 0 else None
    verdict = Verdict(metric, "ok", current=cur, baseline=base, ratio=ratio, history_runs=len(history))
    if len(history) < min_history:
        verdict.status = "no-history"
        verdict.note = f"{len(history)} earlier run(s) < min_history {min_history}: reported, not judged"
        return verdict
    if ratio is None:
        return verdict
    pooled = [v for run in history for v in run]
    if ratio > factor:
        verdict.p_value = mann_whitney_p(current, pooled, "greater")
        if verdict.p_value < alpha:
            verdict.status = "regressed"
        else:
            verdict.note = f"ratio {ratio:.3f} > {factor} but not significant (p={verdict.p_value:.3g} >= {alpha})"
    elif ratio < 1.0 / factor:
        verdict.p_value = mann_whitney_p(current, pooled, "less")
        if verdict.p_value < alpha:
            verdict.status = "improved"
    return verdict


def memory_verdict(metric: str, current: float | None, history: Sequence[float | None], *,
                   factor: float = DEFAULT_FACTOR, min_history: int = 3) -> Verdict:
    """Judge one run-level peak against the peaks of earlier runs (ratio to their median + beyond their range)."""
    values = [float(v) for v in history if v is not None]
    if current is None:
        return Verdict(metric, "unmeasured", history_runs=len(values), note="not measured in this run")
    if not values:
        return Verdict(metric, "no-history", current=current, note="no earlier comparable run")
    base = statistics.median(values)
    ratio = current / base if base > 0 else None
    verdict = Verdict(metric, "ok", current=current, baseline=base, ratio=ratio, history_runs=len(values))
    if len(values) < min_history:
        verdict.status = "no-history"
        verdict.note = f"{len(values)} earlier run(s) < min_history {min_history}: reported, not judged"
    elif ratio is not None and ratio > factor and current > max(values):
        verdict.status = "regressed"
        verdict.note = f"above every one of the last {len(values)} runs (max {max(values):.1f})"
    elif ratio is not None and ratio < 1.0 / factor and current < min(values):
        verdict.status = "improved"
    return verdict
