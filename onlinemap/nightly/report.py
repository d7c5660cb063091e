"""The nightly report: ``report.md`` (verdict table, failures, crashed nights) and one trend PNG per model.

Plots use matplotlib's Agg backend (cron has no display). The report starts with a header saying
what made it and how to regenerate it (STYLE habit 5).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onlinemap.nightly.config import NightlyConfig
    from onlinemap.nightly.job import ModelNight, NightlyResult

__all__ = ["write_report", "plot_trend"]


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def plot_trend(entry: "ModelNight", path: Path) -> Path | None:
    """Forward p50 and memory peaks of the history window + tonight (marked) as a PNG."""
    if not entry.history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(entry.history)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    lat = [h[1] for h in entry.history]
    axes[0].plot(xs, lat, marker="o", color="tab:blue")
    for x, (_, p50, _, now) in zip(xs, entry.history):
        if now and p50 is not None:
            axes[0].plot([x], [p50], marker="*", markersize=14, color="tab:red", label="tonight")
    axes[0].set_title(f"{entry.model}: forward p50 (ms)")
    axes[0].set_xlabel("nightly run (oldest → newest)")
    for metric in ("torch_max_allocated_mb", "nvml_device_delta_peak_mb", "host_rss_peak_mb"):
        ys = [h[2].get(metric) for h in entry.history]
        if any(y is not None and y == y for y in ys):
            axes[1].plot(xs, [float("nan") if y is None else y for y in ys], marker="o", label=metric)
    axes[1].set_title(f"{entry.model}: memory peaks (MiB)")
    axes[1].set_xlabel("nightly run (oldest → newest)")
    for ax in axes:    # one tick per run: a one-point trend must not get ticks at -0.04 … 0.04
        ax.set_xticks(xs)
        ax.set_xlim(-0.5, len(xs) - 0.5)
    if axes[1].lines:
        axes[1].legend(fontsize=7)
    fig.suptitle(f"GPU type: {entry.gpu}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(result: "NightlyResult", config: "NightlyConfig", *, plots: bool = True) -> Path:
    """Write ``<night dir>/report.md`` (+ ``trend-<model>.png``) and return the markdown's path."""
    lines = [f"<!-- written by `onlinemap nightly` (onlinemap/nightly/report.py); re-run `onlinemap nightly --force` "
             f"to regenerate -->",
             f"# Nightly benchmark {result.night}", ""]
    verdict = "INTERRUPTED" if result.interrupted else (
        "REGRESSION" if any(m.regressed for m in result.models) else
        "FAILED" if any(m.status != "ok" for m in result.models) else "OK")
    lines += [f"**Result: {verdict}** (exit code {result.exit_code}).  Rule: median slowdown > x{config.factor} and "
              f"Mann-Whitney U p < {config.alpha} on raw samples; memory: > x{config.factor} the history median and "
              f"above every run of the window (last {config.history} nightly runs on the same GPU type; at least "
              f"{config.min_history} needed).", ""]
    if result.crashed_previous:
        c = result.crashed_previous
        lines += [f"> **The previous nightly job crashed**: pid {c.get('pid')} on {c.get('hostname')}, started "
                  f"{c.get('started')} (night {c.get('night')}) left its lock behind.", ""]
    if result.crashed_runs:
        lines += ["> **Crashed nightly runs** (left `running`, driver gone): " +
                  ", ".join(f"{r['model']} `{r['run_id']}`" for r in result.crashed_runs), ""]
    lines += ["| model | status | GPU type | metric | tonight | baseline | ratio | p | history | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for m in result.models:
        status = m.status + (" (earlier start)" if m.reused else "")
        if not m.verdicts:
            lines.append(f"| {m.model} | {status} | {m.gpu or 'n/a'} | | | | | | | {m.reason or ''} |")
        for v in m.verdicts:
            lines.append(f"| {m.model} | {status} | {m.gpu} | {v.metric} | {_fmt(v.current)} | {_fmt(v.baseline)} | "
                         f"{_fmt(v.ratio, 3)} | {'' if v.p_value is None else f'{v.p_value:.2g}'} | {v.history_runs} | "
                         f"**{v.status}**{' — ' + v.note if v.note else ''} |")
    lines.append("")
    failures = [m for m in result.models if m.status != "ok"]
    if failures:
        lines += ["## Failures", ""] + [f"- **{m.model}**: {m.status}: {m.reason or 'see the run log'}"
                                         + (f" (`{m.run_dir}`)" if m.run_dir else "") for m in failures] + [""]
    if plots:
        images = []
        for m in result.models:
            png = plot_trend(m, result.directory / f"trend-{m.model}.png")
            if png is not None:
                images.append(f"![{m.model} trend]({png.name})")
        if images:
            lines += ["## Trends", ""] + images + [""]
    lines += ["## Runs", ""] + [f"- {m.model}: `{m.run_id}`" for m in result.models if m.run_id] + [""]
    path = result.directory / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
