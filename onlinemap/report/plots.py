"""The report's PNG figures: latency distributions, memory, accuracy vs latency, latency over time.

matplotlib is imported inside each function with the Agg backend (no display, no Tk), so importing
this module costs nothing and reports render on a headless pod or in cron. Each function takes
comparison rows (``report/compare.py``), writes one PNG at a fixed DPI without
``bbox_inches="tight"`` (so the pixel size is what the function reports) and returns
``{"path", "size_px": (w, h), "axes": n_panels, "labels": [...]}`` — or None when there is
nothing to draw (for example no run has metrics yet).

Conventions: a number that was not measured is marked "n/a" on the figure, never drawn as 0;
warm-up samples are never in a distribution; a model that appears twice is labelled with a short
run id as well.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Sequence

from onlinemap.report.compare import MEMORY_KEYS

__all__ = ["DPI", "run_labels", "plot_latency", "plot_memory", "plot_accuracy_latency", "plot_latency_history",
           "ACCURACY_PANELS"]

DPI = 100
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")

# flat accuracy key -> (panel title, y label); higher is better for the first two, lower for L2
ACCURACY_PANELS = {
    "det_NDS": ("Detection NDS vs latency", "NDS (higher is better)"),
    "map_mAP": ("Map mAP vs latency", "Chamfer mAP (higher is better)"),
    "plan_L2_3s": ("Planning L2@3s vs latency", "L2 @ 3 s [m] (lower is better)"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, axes: int, labels: list[str]) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    w, h = fig.get_size_inches()
    size = (int(round(w * DPI)), int(round(h * DPI)))
    _pyplot().close(fig)
    return {"path": path, "size_px": size, "axes": axes, "labels": labels}


def run_labels(rows: Sequence[dict]) -> list[str]:
    """One label per row: the model name, plus the short run id where a model appears more than once."""
    names = [r["model"] for r in rows]
    return [f"{r['model']}\n{r['run_id'][-6:]}" if names.count(r["model"]) > 1 else r["model"] for r in rows]


def plot_latency(rows: Sequence[dict], samples: Sequence[Sequence[float]], path: Path) -> dict | None:
    """Box plot of per-sample forward latency per run, with every sample drawn as a dot (warm-up excluded).

    ``samples[i]`` are the measured forward_ms of ``rows[i]``. A log scale is used when medians
    differ by more than 20x, so a 5 ms model and a 500 ms model are both readable.
    """
    keep = [(r, s) for r, s in zip(rows, samples) if s]
    if not keep:
        return None
    plt = _pyplot()
    rows_k, data = [r for r, _ in keep], [list(s) for _, s in keep]
    labels = run_labels(rows_k)
    n = len(keep)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.3 * n + 3.0), 5.0), layout="constrained")
    ax.boxplot(data, showfliers=False, medianprops={"color": "black"}, widths=0.5)
    ax.set_xticks(range(1, n + 1), [f"{lab}\n(n={len(d)})" for lab, d in zip(labels, data)])
    for i, values in enumerate(data, 1):
        offsets = [((j * 0.6180339) % 1.0 - 0.5) * 0.3 for j in range(len(values))]   # deterministic jitter
        ax.scatter([i + o for o in offsets], values, s=12, alpha=0.6, color=COLORS[(i - 1) % len(COLORS)], zorder=3)
    medians = sorted(sorted(d)[len(d) // 2] for d in data)
    if medians[0] > 0 and medians[-1] / medians[0] > 20:
        ax.set_yscale("log")
        ax.set_ylabel("forward latency per sample [ms, log scale]")
    else:
        ax.set_ylabel("forward latency per sample [ms]")
        ax.set_ylim(bottom=0)
    ax.set_xlabel("model (measured samples)")
    ax.set_title("Forward latency per sample (warm-up excluded; box = quartiles, line = median)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path, 1, labels)


def plot_memory(rows: Sequence[dict], path: Path) -> dict | None:
    """Grouped bars of the four memory numbers per run; a null number is written "n/a" at the base, not drawn."""
    if not rows:
        return None
    plt = _pyplot()
    labels = run_labels(rows)
    n, k = len(rows), len(MEMORY_KEYS)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.6 * n + 3.0), 5.0), layout="constrained")
    width = 0.8 / k
    values = [[r.get(key) for key in MEMORY_KEYS] for r in rows]
    top = max([v for vs in values for v in vs if v is not None] or [1.0])
    for j, (key, (_reason, label)) in enumerate(MEMORY_KEYS.items()):
        xs = [i + (j - (k - 1) / 2) * width for i in range(n)]
        heights = [vs[j] for vs in values]
        drawn = [(x, h) for x, h in zip(xs, heights) if h is not None]
        ax.bar([x for x, _ in drawn], [h for _, h in drawn], width=width * 0.95, color=COLORS[j])
        for x, h in zip(xs, heights):
            if h is None:
                ax.text(x, top * 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=8, color=COLORS[j])
            else:
                ax.text(x, h, f"{h:.0f}", ha="center", va="bottom", fontsize=7)
    from matplotlib.patches import Patch

    ax.set_xticks(range(n), labels)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, top * 1.2)
    ax.set_ylabel("peak memory [MiB]")
    ax.set_xlabel("model")
    ax.set_title('Peak memory per model ("n/a" = not measured)')
    ax.legend(handles=[Patch(color=COLORS[j], label=label) for j, (_r, label) in enumerate(MEMORY_KEYS.values())],
              loc="upper left", fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    info = _save(fig, path, 1, labels)
    info["na"] = sum(v is None for vs in values for v in vs)   # how many numbers were marked n/a
    return info


def plot_accuracy_latency(rows: Sequence[dict], path: Path) -> dict | None:
    """Accuracy vs p50 forward latency, one point per run; one panel per headline metric that some run has.

    Only runs with metrics.json (``onlinemap eval``) and a latency appear; None when there are none.
    """
    panels = [key for key in ACCURACY_PANELS
              if any(r.get(key) is not None and r.get("p50_ms") is not None for r in rows)]
    if not panels:
        return None
    plt = _pyplot()
    all_labels = run_labels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 0.5, 4.8), layout="constrained",
                             squeeze=False)
    shown: list[str] = []
    for ax, key in zip(axes[0], panels):
        title, ylabel = ACCURACY_PANELS[key]
        for i, (row, label) in enumerate(zip(rows, all_labels)):
            if row.get(key) is None or row.get("p50_ms") is None:
                continue
            label = label.replace("\n", " ")
            ax.scatter([row["p50_ms"]], [row[key]], s=50, color=COLORS[i % len(COLORS)], label=label, zorder=3)
            ax.annotate(label, (row["p50_ms"], row[key]), textcoords="offset points", xytext=(5, 5), fontsize=8)
            if label not in shown:
                shown.append(label)
        ax.set_title(title)
        ax.set_xlabel("forward latency p50 [ms]")
        ax.set_ylabel(ylabel)
        pts = [(r["p50_ms"], r[key]) for r in rows if r.get(key) is not None and r.get("p50_ms") is not None]
        right, top = max(x for x, _ in pts) or 1.0, max(y for _, y in pts) or 1.0
        ax.set_xlim(-0.03 * right, right * 1.2)   # a point at 0 stays whole, labels fit on the right
        if key.startswith("plan_"):            # metres: fit the data
            ax.set_ylim(-0.05 * top * 1.3, top * 1.3)
        else:                                  # scores live in [0, 1]: always drawn 0-1, so a near-zero looks near zero
            ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path, len(panels), shown)


KIND_MARKERS = {"bench": "o", "nightly": "s", "test": "^"}


def plot_latency_history(history: dict[str, list[dict]], path: Path) -> dict | None:
    """p50 forward latency per run vs the run's creation time: one line per (model, run kind) with >= 2 ok runs.

    A 5-sample ``test`` and a 200-sample ``bench`` are not the same measurement, so each kind is its
    own line with its own marker and says so in the legend. ``history``: model -> its comparison rows
    (any order). None when no (model, kind) has two runs. ``labels``: "model (kind)".
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for model, rs in history.items():
        for r in rs:
            if r.get("p50_ms") is not None and r.get("created"):
                groups.setdefault((model, r.get("kind") or "run"), []).append(r)
    series = {key: sorted(rs, key=lambda r: r["created"]) for key, rs in sorted(groups.items()) if len(rs) >= 2}
    if not series:
        return None
    plt = _pyplot()
    import matplotlib.dates as mdates

    fig, ax = plt.subplots(figsize=(9.0, 5.0), layout="constrained")
    models = sorted({m for m, _ in series})
    for (model, kind), rs in series.items():
        times = [_dt.datetime.fromisoformat(r["created"]) for r in rs]
        ax.plot(times, [r["p50_ms"] for r in rs], marker=KIND_MARKERS.get(kind, "D"),
                linestyle="-" if kind != "test" else ":", color=COLORS[models.index(model) % len(COLORS)],
                label=f"{model} ({kind}, {len(rs)} runs)")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("run created (UTC)")
    ax.set_ylabel("forward latency p50 [ms]")
    ax.set_ylim(bottom=0)
    ax.set_title("Forward latency p50 per run over time (ok runs; one line per run kind)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, 1, [f"{m} ({k})" for m, k in series])
