"""The static dashboard site: ``index.html`` + one ``runs/<run-id>.html`` per run, from a results folder.

Everything is inline (CSS and SVG in the page, no script, no CDN), so the site opens from the file
system and offline. It builds incrementally: ``.dashboard-cache.json`` keeps, per run, the stat key
of its result files (mtime_ns and size of run.json, samples.jsonl, metrics.json, telemetry.csv) and
the numbers the index needs; a run whose key is unchanged is neither re-read nor re-rendered, and a
run still "running" is always re-read (its status can turn "crashed" without a file changing).
"""
from __future__ import annotations

import csv
import os
import statistics
from html import escape
from pathlib import Path

from onlinemap.dashboard import svg

__all__ = ["build_site", "CACHE_FILE", "INDEX", "CACHE_VERSION"]

CACHE_FILE = ".dashboard-cache.json"
CACHE_VERSION = 1
INDEX = "index.html"
_KEY_FILES = ("run.json", "samples.jsonl", "metrics.json", "telemetry.csv")
# flat accuracy key -> (label, higher is better)
_ACCURACY = {"det_NDS": ("detection NDS", True), "det_mAP": ("detection mAP", True),
             "map_mAP": ("map Chamfer mAP", True), "plan_L2_3s": ("planning L2@3s [m]", False)}
_CSS = ("body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}"
        ".charts{display:flex;flex-wrap:wrap;gap:12px}.regressed{color:#c00;font-weight:bold}")


def _stat_key(run_dir: Path) -> list:
    key = []
    for name in _KEY_FILES:
        try:
            st = os.stat(run_dir / name)
            key.append([name, st.st_mtime_ns, st.st_size])
        except OSError:
            key.append([name, None, None])
    return key


def _quartiles(values: list[float]) -> list[float] | None:
    if not values:
        return None
    if len(values) == 1:
        return [values[0]] * 5
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return [min(values), q1, med, q3, max(values)]


def _setting(rec_raw: dict, name: str) -> str | None:
    """The stack variant / backend of a run where its record names one (settings, options or env)."""
    settings = rec_raw.get("settings") or {}
    for where in (settings, settings.get("options") or {}, rec_raw.get("env") or {}, rec_raw.get("tags") or {}):
        if isinstance(where, dict) and where.get(name):
            return str(where[name])
    return None


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _n(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


# -------------------------------------------------------------------------------------- run pages
def _telemetry(run_dir: Path) -> list[dict]:
    path = run_dir / "telemetry.csv"
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error):
        return []


def _run_page(run_dir: Path, row: dict, entry: dict) -> str:
    from onlinemap.fileio import iter_jsonl

    samples = [s for s in iter_jsonl(run_dir / "samples.jsonl", warn=False)
               if isinstance(s.get("forward_ms"), (int, float))]
    pts = [(i, float(s["forward_ms"]), f"{s.get('sample_token', i)}: {s['forward_ms']:.3g} ms", False)
           for i, s in enumerate(samples) if not s.get("warmup")]
    warm = [(i, float(s["forward_ms"]), f"warm-up {s.get('sample_token', i)}", False)
            for i, s in enumerate(samples) if s.get("warmup")]
    series = [{"label": "measured", "points": pts}] + ([{"label": "warm-up", "points": warm}] if warm else [])
    body = [f"<p><a href=\"../{INDEX}\">&larr; dashboard</a></p>",
            f"<h1>{escape(row['model'])} &middot; {escape(row['run_id'])}</h1>",
            "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape('n/a' if v is None else str(v))}</td></tr>" for k, v in (
                ("status", row["status"]), ("kind", row["kind"]), ("created", row["created"]),
                ("device", row["device"]), ("GPU", row["gpu"] or "none"), ("variant", entry.get("variant") or "default"),
                ("backend", entry.get("backend") or "pytorch"), ("env", f"{row['env_kind'] or 'n/a'} {row['lock_hash'] or ''}".strip()),
                ("measured samples", row["measured"]), ("p50 / p90 ms", f"{_n(row['p50_ms'])} / {_n(row['p90_ms'])}"),
                ("det NDS / mAP", f"{_n(row['det_NDS'])} / {_n(row['det_mAP'])}"), ("map mAP", _n(row["map_mAP"])),
                ("reproduction", entry.get("verdict") or "not checked"))) + "</table>",
            "<h2>Samples' latency over time</h2>",
            svg.scatter_chart(series, title="forward latency per sample", xlabel="sample index",
                              ylabel="forward [ms]", line=True)]
    tele = _telemetry(run_dir)
    body.append("<h2>GPU state</h2>")
    charts = []
    for col, label in (("device_used_mb", "device memory used [MiB]"), ("gpu_util_pct", "GPU utilisation [%]"),
                       ("power_w", "power [W]"), ("host_rss_mb", "host RSS [MiB]")):
        points = []
        for t in tele:
            try:
                points.append((float(t["t_s"]), float(t[col]), f"{t[col]} at {t['t_s']} s"))
            except (KeyError, TypeError, ValueError):
                continue
        if points:
            charts.append(svg.scatter_chart([{"label": col, "points": points}], title=label, xlabel="time [s]",
                                            ylabel=label, line=True))
    body.append("<div class=\"charts\">" + "\n".join(charts) + "</div>" if charts else
                "<p>No GPU telemetry recorded for this run (telemetry.csv absent or without GPU columns).</p>")
    body.append("<h2>Bird's-eye views</h2>")
    bevs = sorted(p.name for p in run_dir.glob("*.png"))
    rel = os.path.relpath(run_dir, entry["site"] + "/runs")
    if bevs:
        body.append("<ul>" + "".join(f"<li><a href=\"{escape(rel)}/{escape(b)}\">{escape(b)}</a></li>" for b in bevs) + "</ul>")
    body.append(f"<p>Draw one: <code>onlinemap viz {escape(row['run_id'])} --out {escape(str(run_dir))}/bev.png</code> "
                f"(it is then linked here). Result files: <a href=\"{escape(rel)}/run.json\">run.json</a>.</p>")
    return _page(f"{row['model']} {row['run_id']}", body)


# ------------------------------------------------------------------------------------------ index
def _pareto(points: list[tuple[float, float]], higher: bool) -> list[tuple[float, float]]:
    """The non-dominated points (lower latency and better accuracy), by latency."""
    front, best = [], None
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if higher else p[1])):
        if best is None or (y > best if higher else y < best):
            front.append((x, y))
            best = y
    return front


def _trend_marks(runs: list[dict]) -> list[bool]:
    """Per nightly run (oldest first): regressed against the nights before it (nightly/regress.py's rule)."""
    from onlinemap.nightly.regress import latency_verdict

    marks = []
    for i, r in enumerate(runs):
        history = [h["samples"] for h in runs[max(0, i - 10):i] if h.get("samples")]
        marks.append(bool(r.get("samples")) and len(history) >= 3 and latency_verdict(r["samples"], history).regressed)
    return marks


def _index(entries: list[dict]) -> str:
    by_gpu: dict[str, list[dict]] = {}
    for e in entries:
        by_gpu.setdefault(e["row"]["gpu"] or f"no GPU ({e['row']['device'] or 'cpu'})", []).append(e)
    body = ["<h1>onlinemap dashboard</h1>",
            f"<p>{len(entries)} run(s) of {len({e['row']['model'] for e in entries})} model(s) on "
            f"{len(by_gpu)} GPU type(s). Rebuild with <code>onlinemap report --html DIR</code>.</p>"]
    for gpu, group in sorted(by_gpu.items()):
        body.append(f"<h2>{escape(gpu)}</h2><div class=\"charts\">")
        ok = [e for e in group if e["row"]["status"] == "ok"]
        for key, (label, higher) in _ACCURACY.items():
            pts = [(e["row"]["p50_ms"], e["row"][key], e) for e in ok
                   if e["row"]["p50_ms"] is not None and e["row"][key] is not None]
            if not pts:
                continue
            series: dict[str, list] = {}
            for x, y, e in pts:
                series.setdefault(e["label"], []).append((x, y, f"{e['label']} {e['row']['run_id']}: {y:.3g} at {x:.3g} ms"))
            body.append(svg.scatter_chart([{"label": k, "points": v} for k, v in sorted(series.items())],
                                          title=f"{label} vs latency (Pareto front dashed)", xlabel="p50 forward [ms]",
                                          ylabel=label, front=_pareto([(x, y) for x, y, _ in pts], higher)))
        latest: dict[str, dict] = {}
        for e in sorted(ok, key=lambda e: e["row"]["created"] or ""):
            latest[e["label"]] = e
        body.append(svg.box_chart([{"label": k, "q": e["q"]} for k, e in sorted(latest.items())],
                                  title="latency distribution, newest ok run per model/variant/backend", ylabel="forward [ms]"))
        mem = [(k, e["row"]["torch_max_allocated_mb"] or e["row"]["host_rss_peak_mb"]) for k, e in sorted(latest.items())]
        mem_pts = [(i, v, f"{k}: {v:.0f} MiB") for i, (k, v) in enumerate(mem) if v is not None]
        body.append(svg.scatter_chart([{"label": "peak memory", "points": mem_pts}],
                                      title="peak memory (torch allocated, else host RSS)", xlabel="model index",
                                      ylabel="MiB") if mem_pts else svg.empty_chart("memory", "not measured"))
        nightly: dict[str, list[dict]] = {}
        for e in sorted(ok, key=lambda e: e["row"]["created"] or ""):
            if e["row"]["kind"] == "nightly":
                nightly.setdefault(e["label"], []).append(e)
        trend_series = []
        for label, runs in sorted(nightly.items()):
            marks = _trend_marks(runs)
            trend_series.append({"label": label, "points": [
                (i, r["row"]["p50_ms"], f"{r['row']['run_id']}: {_n(r['row']['p50_ms'])} ms", m)
                for i, (r, m) in enumerate(zip(runs, marks)) if r["row"]["p50_ms"] is not None]})
        body.append(svg.scatter_chart(trend_series, title="nightly p50 latency (red ring = regression)",
                                      xlabel="night", ylabel="p50 forward [ms]", line=True)
                    if trend_series else svg.empty_chart("nightly trends", "no nightly runs on this GPU type"))
        body.append("</div><h3>Runs</h3><table><tr><th>run</th><th>model / variant / backend</th><th>kind</th>"
                    "<th>status</th><th>created</th><th>p50 ms</th><th>NDS</th><th>map mAP</th><th>reproduction</th></tr>")
        for e in sorted(group, key=lambda e: e["row"]["created"] or "", reverse=True):
            r = e["row"]
            body.append(f"<tr><td><a href=\"runs/{escape(r['run_id'])}.html\">{escape(r['run_id'])}</a></td>"
                        f"<td>{escape(e['label'])}</td><td>{escape(str(r['kind']))}</td><td>{escape(str(r['status']))}</td>"
                        f"<td>{escape(str(r['created']))}</td><td>{_n(r['p50_ms'])}</td><td>{_n(r['det_NDS'])}</td>"
                        f"<td>{_n(r['map_mAP'])}</td><td>{escape(e.get('verdict') or 'not checked')}</td></tr>")
        body.append("</table>")
    if not entries:
        body.append("<p>No runs in the results folder yet: <code>onlinemap test MODEL</code>.</p>")
    return _page("onlinemap dashboard", body)


# ------------------------------------------------------------------------------------------ build
def build_site(out_dir: Path, *, results_root: Path | None = None) -> dict:
    """Write (or update) the site in ``out_dir``; returns ``{"index", "runs", "rebuilt", "reused"}``."""
    from onlinemap import paths
    from onlinemap.fileio import read_json, write_json_atomic
    from onlinemap.report.compare import comparison_row, forward_samples

    out_dir = Path(out_dir).absolute()
    root = Path(results_root) if results_root else paths.results_dir()
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    cache_path = out_dir / CACHE_FILE
    try:
        cache = read_json(cache_path) if cache_path.is_file() else {}
    except Exception:  # a damaged cache only costs a full rebuild
        cache = {}
    if cache.get("version") != CACHE_VERSION:
        cache = {"version": CACHE_VERSION, "runs": {}}
    old = cache.get("runs") or {}
    entries, rebuilt, reused, new = [], 0, 0, {}
    dirs = sorted(e.path for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")) if root.is_dir() else []
    for d in dirs:
        run_dir = Path(d)
        if not (run_dir / "run.json").is_file():
            continue
        key = _stat_key(run_dir)
        prev = old.get(run_dir.name)
        page = out_dir / "runs" / f"{run_dir.name}.html"
        if prev and prev["key"] == key and prev["row"]["status"] != "running" and page.is_file():
            entry = prev
            reused += 1
        else:
            try:
                row = comparison_row(run_dir)
                raw = read_json(run_dir / "run.json")
            except Exception as exc:  # one unreadable run must not stop the site
                from onlinemap.errors import OnlinemapError

                if not isinstance(exc, (OnlinemapError, OSError, ValueError)):
                    raise
                continue
            variant, backend = _setting(raw, "variant"), _setting(raw, "backend")
            fwd = forward_samples(run_dir)
            entry = {"key": key, "row": row, "q": _quartiles(fwd), "samples": fwd if raw.get("kind") == "nightly" else None,
                     "variant": variant, "backend": backend,
                     "label": "/".join([row["model"], variant or "default", backend or "pytorch"]),
                     "verdict": ((raw.get("tags") or {}).get("reproduction") or {}).get("verdict")
                     if isinstance((raw.get("tags") or {}).get("reproduction"), dict) else None}
            entry["site"] = str(out_dir)
            page.write_text(_run_page(run_dir, row, entry), encoding="utf-8")
            rebuilt += 1
        entry["site"] = str(out_dir)
        new[run_dir.name] = entry
        entries.append(entry)
    for stale in set(old) - set(new):
        (out_dir / "runs" / f"{stale}.html").unlink(missing_ok=True)
    index = out_dir / INDEX
    index.write_text(_index(entries), encoding="utf-8")
    write_json_atomic(cache_path, {"version": CACHE_VERSION, "runs": new})
    return {"index": index, "runs": len(entries), "rebuilt": rebuilt, "reused": reused}
