"""report: summary.md, the PNG figures (checked with PIL), comparison files; plots on edge cases."""
from __future__ import annotations

import json

from PIL import Image

from tests.conftest import run_cli


def _check_png(info: dict) -> None:
    path = info["path"]
    assert path.is_file() and path.stat().st_size > 5_000
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == info["size_px"]
        assert img.size[0] >= 800 and img.size[1] >= 450
        # a real picture, not a blank canvas: many distinct colours
        assert len(img.convert("RGB").getcolors(maxcolors=1_000_000)) > 50


def test_report_writes_figures_summary_and_comparison(home_env, tmp_path):
    from onlinemap import api

    out = tmp_path / "rep"
    result = api.report(out=out)
    figs = result["figures"]
    assert set(figs) == {"latency", "memory", "accuracy", "history"}
    for info in figs.values():
        _check_png(info)
    models = ["crashref", "reference"]
    assert figs["latency"]["labels"] == models and figs["latency"]["axes"] == 1
    assert figs["memory"]["labels"] == models
    assert figs["memory"]["na"] == 2 * 3   # torch, NVML device, NVML process: n/a on CPU, for both models
    assert figs["accuracy"]["axes"] == 2   # detection NDS (both), map mAP (reference); no planning panel
    assert sorted(figs["accuracy"]["labels"]) == models
    assert figs["history"]["labels"] == ["reference (test)"]   # the only model with two ok runs, and their kind

    md = (out / "summary.md").read_text()
    for model in models:
        assert model in md
    for name in ("latency.png", "memory.png", "accuracy_vs_latency.png", "latency_history.png"):
        assert f"]({name})" in md
    assert "n/a (device is cpu)" in md and "Not evaluated yet" not in md
    summary = json.loads((out / "comparison_summary.json").read_text())
    assert sorted(r["model"] for r in summary["runs"]) == models
    assert (out / "comparison.csv").is_file()


def test_report_cli_given_runs(home_env, tmp_path):
    out = tmp_path / "cli-rep"
    proc = run_cli("report", home_env["ref"].name, home_env["ref_old"].name, "--out", str(out), check=True)
    assert "report of 2 run(s) (reference)" in proc.stdout
    with Image.open(out / "latency.png") as img:
        assert img.size[0] >= 800
    md = (out / "summary.md").read_text()
    assert home_env["ref"].name in md and home_env["ref_old"].name in md


def test_plots_without_metrics_or_samples(home_env, tmp_path):
    """No metrics: no accuracy figure and summary.md says how to get one; nulls are marked, not zero."""
    from onlinemap.report import plots
    from onlinemap.report.compare import comparison_row
    from onlinemap.report.summary import render_summary

    row = dict(comparison_row(home_env["crash"]))
    row.update(has_metrics=False, det_mAP=None, det_NDS=None, host_rss_peak_mb=None, host_rss_peak_reason="psutil missing")
    assert plots.plot_accuracy_latency([row], tmp_path / "a.png") is None
    assert plots.plot_latency([row], [[]], tmp_path / "l.png") is None
    assert plots.plot_latency_history({"crashref": [row]}, tmp_path / "h.png") is None
    mem = plots.plot_memory([row], tmp_path / "m.png")
    assert mem["na"] == 4
    md = render_summary([row], {"memory": mem})
    assert "n/a (psutil missing)" in md
    assert f"`onlinemap eval {row['run_id']}`" in md
    assert "Not drawn: no run has metrics yet" in md


def _capture_axes(monkeypatch):
    """Record each figure's axes limits and legend texts as plots._save writes it."""
    from onlinemap.report import plots

    seen = []
    real = plots._save

    def save(fig, path, axes, labels):
        seen.append([{"ylim": ax.get_ylim(), "xticks": list(ax.get_xticks()),
                      "legend": [t.get_text() for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]}
                     for ax in fig.axes])
        return real(fig, path, axes, labels)

    monkeypatch.setattr(plots, "_save", save)
    return seen


def test_scores_are_drawn_on_0_to_1_and_run_kinds_are_marked(home_env, tmp_path, monkeypatch):
    """A near-zero NDS must look near zero (no auto-zoom to 0-0.00012); test and bench runs are separate lines."""
    from onlinemap.report import plots
    from onlinemap.report.compare import comparison_row

    seen = _capture_axes(monkeypatch)
    row = dict(comparison_row(home_env["ref"]), det_NDS=0.0001, map_mAP=None, plan_L2_3s=None)
    assert plots.plot_accuracy_latency([row], tmp_path / "acc.png") is not None
    low, high = seen[-1][0]["ylim"]
    assert low <= 0.0 and high >= 1.0

    old = dict(comparison_row(home_env["ref_old"]))
    benches = [dict(old, kind="bench", run_id=old["run_id"] + "b"),
               dict(row, kind="bench", run_id=row["run_id"] + "b")]
    info = plots.plot_latency_history({"reference": [old, row] + benches}, tmp_path / "hist.png")
    assert info["labels"] == ["reference (bench)", "reference (test)"]
    assert any("bench" in t for t in seen[-1][0]["legend"]) and any("test" in t for t in seen[-1][0]["legend"])


def test_a_one_point_nightly_trend_has_whole_run_ticks(tmp_path, monkeypatch):
    import matplotlib.figure

    from onlinemap.nightly.job import ModelNight
    from onlinemap.nightly.report import plot_trend

    ticks = []
    real = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        fig.canvas.draw()
        ticks.extend(ax.get_xticks() for ax in fig.axes)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    entry = ModelNight("reference", "ok", gpu="cpu:x",
                       history=[("2026-01-01T03:00:00", 12.5, {"host_rss_peak_mb": 800.0}, True)])
    assert plot_trend(entry, tmp_path / "t.png").is_file()
    assert ticks and all(float(t).is_integer() for axis in ticks for t in axis), ticks
