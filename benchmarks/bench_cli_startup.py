"""``onlinemap --help`` start-up time against ``python -c "import click"`` (target: at most 2x).

Run from the repository root::

    python benchmarks/bench_cli_startup.py [--runs 10] [--json]

Both commands run ``--runs`` times each, interleaved (A, B, A, B, …) so that machine load hits
both alike, each in a fresh interpreter (``sys.executable``); the medians and their ratio are
reported. ``python -c "import click"`` is the floor: an interpreter that loads click and nothing else.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _time(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    help_argv = [sys.executable, "-m", "onlinemap", "--help"]
    click_argv = [sys.executable, "-c", "import click"]
    _time(help_argv), _time(click_argv)          # warm the page cache once, not timed
    helps, clicks = [], []
    for _ in range(args.runs):
        helps.append(_time(help_argv))
        clicks.append(_time(click_argv))
    h, c = statistics.median(helps), statistics.median(clicks)
    report = {"runs": args.runs, "onlinemap_help_s": round(h, 4), "import_click_s": round(c, 4),
              "ratio": round(h / c, 2), "target_ratio": 2.0, "ok": h / c <= 2.0}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"onlinemap --help   median {h * 1000:.0f} ms over {args.runs} runs")
        print(f"import click       median {c * 1000:.0f} ms")
        print(f"ratio {h / c:.2f} (target <= 2.0): {'ok' if h / c <= 2.0 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
