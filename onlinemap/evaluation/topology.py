"""Read the ``topology`` of a standard prediction (TopoMLP): its two matrices in either stored form.

Why this module exists. A topology matrix is stored as nested lists when small and, above the
adapter's ``pack_matrices_above`` size, as a ``packed_matrix`` (schema ``$defs``): little-endian
float16, row-major, base64 (``envs/_shared/onlinemap_adapterlib.py`` ``pack_matrix_f16``), which keeps
a 300-lane frame at a few hundred KB instead of ~2 MB of JSON numbers. Anything that reads
``lane_lane`` / ``lane_traffic`` goes through :func:`matrix` or :func:`topology_matrices`, so both
forms mean the same thing; the shapes are checked against the lane and traffic-element lists.
"""
from __future__ import annotations

import base64
from typing import Any

import numpy as np

__all__ = ["PACKED_ENCODING", "matrix", "topology_matrices"]

PACKED_ENCODING = "float16-base64"


def matrix(value: Any) -> np.ndarray:
    """A stored topology matrix (nested lists or packed) -> float64 array of shape (rows, cols)."""
    if isinstance(value, dict):
        if value.get("encoding") != PACKED_ENCODING:
            raise ValueError(f"unknown matrix encoding {value.get('encoding')!r} (expected {PACKED_ENCODING!r})")
        rows, cols = (int(v) for v in value["shape"])
        raw = base64.b64decode(value["data"], validate=True)
        if len(raw) != 2 * rows * cols:
            raise ValueError(f"packed matrix holds {len(raw) // 2} values, its shape {rows} x {cols} needs {rows * cols}")
        return np.frombuffer(raw, dtype="<f2").astype(np.float64).reshape(rows, cols)
    rows = [list(r) for r in value]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ValueError(f"matrix rows differ in length: {sorted(widths)}")
    return np.array(rows, dtype=np.float64).reshape(len(rows), widths.pop() if widths else 0)


def topology_matrices(topology: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(lane_lane (N, N), lane_traffic (N, M))`` of a prediction's ``topology``, shapes checked.

    N = ``len(lanes)``, M = ``len(traffic_elements)``; an empty list stands for a matrix with zero
    rows (a frame with no lanes).
    """
    n, m = len(topology["lanes"]), len(topology["traffic_elements"])
    lane_lane, lane_traffic = matrix(topology["lane_lane"]), matrix(topology["lane_traffic"])
    if lane_lane.shape != (n, n) and not (n == 0 and lane_lane.size == 0):
        raise ValueError(f"lane_lane is {lane_lane.shape[0]} x {lane_lane.shape[1]}, expected {n} x {n}")
    if lane_traffic.shape != (n, m) and not (n == 0 and lane_traffic.size == 0):
        raise ValueError(f"lane_traffic is {lane_traffic.shape[0]} x {lane_traffic.shape[1]}, expected {n} x {m}")
    return lane_lane.reshape(n, n), lane_traffic.reshape(n, m)
