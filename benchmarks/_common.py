"""Helpers shared by the benchmarks: a temporary ONLINEMAP_HOME with a synthetic dataset, and their statistics."""
from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench_home(scenes: int = 6, samples_per_scene: int = 40, prefix: str = "onlinemap-bench-") -> Path:
    """A fresh ONLINEMAP_HOME (set in os.environ for this benchmark process) with a dataset in it.

    NUSCENES_ROOT is set to the dataset too, so the benchmark's child processes inherit both; the
    caller removes the home when it is done."""
    from onlinemap.data.synth import write_synthetic_nuscenes

    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["ONLINEMAP_HOME"] = str(home)
    root = home / "data" / "nuscenes-synth"
    write_synthetic_nuscenes(root, scenes=scenes, samples_per_scene=samples_per_scene)
    os.environ["NUSCENES_ROOT"] = str(root)
    return home


def median(values):
    return statistics.median(values) if values else float("nan")


def interval_ms(ends: list[float]) -> float:
    """Median gap between consecutive sample ends (seconds in, milliseconds out)."""
    return median([(b - a) * 1000 for a, b in zip(ends, ends[1:])])


def spread(values: list, fmt: str) -> str:
    """``median [min-max]`` of the values that are not None, formatted with ``fmt``; "-" if there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{fmt % median(values)} [{fmt % min(values)}-{fmt % max(values)}]"
