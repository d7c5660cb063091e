"""Helpers shared by the benchmarks: a temporary ONLINEMAP_HOME with a synthetic dataset."""
from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench_home(scenes: int = 6, samples_per_scene: int = 40) -> Path:
    """A fresh ONLINEMAP_HOME (set in os.environ for this benchmark process) with a dataset in it."""
    from onlinemap.data.synth import write_synthetic_nuscenes

    home = Path(tempfile.mkdtemp(prefix="onlinemap-bench-"))
    os.environ["ONLINEMAP_HOME"] = str(home)
    root = home / "data" / "nuscenes-synth"
    write_synthetic_nuscenes(root, scenes=scenes, samples_per_scene=samples_per_scene)
    os.environ["NUSCENES_ROOT"] = str(root)
    return home


def median(values):
    return statistics.median(values) if values else float("nan")
