"""Inline SVG charts for the dashboard: scatter/line and box plots as plain markup.

Plain SVG written as text (no matplotlib) because a page is rebuilt per changed run and a results
folder may hold 10k runs: a chart is a few microseconds of string formatting, needs no script, no
font files and no network, and is drawn by any browser opened on the file system.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

__all__ = ["COLORS", "scatter_chart", "box_chart", "empty_chart"]

COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
W, H = 640, 320
ML, MR, MT, MB = 64, 16, 28, 48


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 5, 10) if s * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 2) if start + i * step <= hi + step * 1e-9]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


class _Frame:
    """Axes in data space mapped onto the SVG's plot rectangle."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float]):
        self.x0, self.x1 = min(xs), max(xs)
        self.y0, self.y1 = min(ys), max(ys)
        for a in ("x", "y"):
            lo, hi = getattr(self, a + "0"), getattr(self, a + "1")
            pad = (hi - lo) * 0.08 or (abs(lo) * 0.1 or 1.0)
            setattr(self, a + "0", lo - pad)
            setattr(self, a + "1", hi + pad)

    def px(self, x: float) -> float:
        return ML + (x - self.x0) / (self.x1 - self.x0) * (W - ML - MR)

    def py(self, y: float) -> float:
        return H - MB - (y - self.y0) / (self.y1 - self.y0) * (H - MT - MB)

    def axes(self, title: str, xlabel: str, ylabel: str, xticks: bool = True) -> list[str]:
        out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
               f'role="img" aria-label="{escape(title)}">',
               f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
               f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14" font-family="sans-serif">{escape(title)}</text>',
               f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" fill="none" stroke="#333"/>']
        for t in _ticks(self.y0, self.y1):
            if self.y0 <= t <= self.y1:
                y = self.py(t)
                out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                           f'<text x="{ML - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                           f'font-family="sans-serif">{_fmt(t)}</text>')
        if xticks:
            for t in _ticks(self.x0, self.x1):
                if self.x0 <= t <= self.x1:
                    x = self.px(t)
                    out.append(f'<text x="{x:.1f}" y="{H - MB + 14}" text-anchor="middle" font-size="11" '
                               f'font-family="sans-serif">{_fmt(t)}</text>')
        out.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 8}" text-anchor="middle" font-size="12" '
                   f'font-family="sans-serif">{escape(xlabel)}</text>')
        out.append(f'<text transform="translate(14 {(MT + H - MB) / 2}) rotate(-90)" text-anchor="middle" '
                   f'font-size="12" font-family="sans-serif">{escape(ylabel)}</text>')
        return out


def empty_chart(title: str, why: str) -> str:
    """A placeholder saying why nothing is drawn (never an empty axis that looks like a zero)."""
    return (f'<svg class="chart empty" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} 60" width="{W}" height="60">'
            f'<text x="8" y="24" font-size="13" font-family="sans-serif">{escape(title)}: not drawn ({escape(why)})</text></svg>')


def scatter_chart(series: Sequence[dict], *, title: str, xlabel: str, ylabel: str,
                  line: bool = False, front: Sequence[tuple[float, float]] = ()) -> str:
    """Points (and optionally lines) per series: ``{"label", "points": [(x, y, tooltip, marked)], "href"?}``.

    ``marked`` points get a red ring (regressions); ``front`` is drawn as a dashed step line (Pareto).
    """
    pts = [(p[0], p[1]) for s in series for p in s["points"]]
    if not pts:
        return empty_chart(title, "no data")
    fr = _Frame([p[0] for p in pts], [p[1] for p in pts])
    out = fr.axes(title, xlabel, ylabel)
    if front:
        d = " ".join(f"{'M' if i == 0 else 'L'}{fr.px(x):.1f},{fr.py(y):.1f}" for i, (x, y) in enumerate(front))
        out.append(f'<path class="pareto" d="{d}" fill="none" stroke="#000" stroke-dasharray="5,3"/>')
    for i, s in enumerate(series):
        color = COLORS[i % len(COLORS)]
        if line and len(s["points"]) > 1:
            d = " ".join(f"{'M' if j == 0 else 'L'}{fr.px(p[0]):.1f},{fr.py(p[1]):.1f}" for j, p in enumerate(s["points"]))
            out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for p in s["points"]:
            x, y = fr.px(p[0]), fr.py(p[1])
            tip = escape(str(p[2])) if len(p) > 2 and p[2] else ""
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 if line else 5}" fill="{color}">'
                       f'<title>{tip}</title></circle>')
            if len(p) > 3 and p[3]:
                out.append(f'<circle class="regression" cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" '
                           f'stroke="#d00" stroke-width="2"><title>regression: {tip}</title></circle>')
    for i, s in enumerate(series):
        y = MT + 14 + 14 * i
        out.append(f'<rect x="{W - MR - 150}" y="{y - 9}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>'
                   f'<text x="{W - MR - 136}" y="{y}" font-size="11" font-family="sans-serif">{escape(s["label"])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def box_chart(boxes: Sequence[dict], *, title: str, ylabel: str) -> str:
    """One box per entry: ``{"label", "q": (min, q1, median, q3, max)}`` (whiskers = min/max)."""
    boxes = [b for b in boxes if b.get("q")]
    if not boxes:
        return empty_chart(title, "no run has measured samples")
    ys = [v for b in boxes for v in b["q"]]
    fr = _Frame([0, len(boxes) + 1], ys)
    fr.x0, fr.x1 = 0.0, len(boxes) + 1.0
    out = fr.axes(title, "", ylabel, xticks=False)
    for i, b in enumerate(boxes, start=1):
        lo, q1, med, q3, hi = b["q"]
        x = fr.px(i)
        half = min(24.0, (W - ML - MR) / (len(boxes) + 1) * 0.35)
        color = COLORS[(i - 1) % len(COLORS)]
        out.append(f'<g class="box"><title>{escape(b["label"])}: median {_fmt(med)}</title>'
                   f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{fr.py(lo):.1f}" y2="{fr.py(hi):.1f}" stroke="#333"/>'
                   f'<rect x="{x - half:.1f}" y="{fr.py(q3):.1f}" width="{2 * half:.1f}" '
                   f'height="{max(1.0, fr.py(q1) - fr.py(q3)):.1f}" fill="{color}" stroke="#333"/>'
                   f'<line x1="{x - half:.1f}" x2="{x + half:.1f}" y1="{fr.py(med):.1f}" y2="{fr.py(med):.1f}" '
                   f'stroke="#000" stroke-width="2"/></g>')
        out.append(f'<text x="{x:.1f}" y="{H - MB + 14}" text-anchor="middle" font-size="10" '
                   f'font-family="sans-serif">{escape(b["label"][:24])}</text>')
    out.append("</svg>")
    return "\n".join(out)
