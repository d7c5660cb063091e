"""Synthetic CAN bus expansion: ``can_bus/<scene>_<message>.json`` as nuScenes ships it.

Why: MapTR's and VAD's info converters open ``nuscenes.can_bus.can_bus_api.NuScenesCanBus`` and
read each scene's ``pose`` messages (18 values per sample: pos, orientation, accel, rotation_rate,
vel, stored in the info file), and VAD also reads ``steeranglefeedback`` for its ego features.

The messages come from the same closed-form path as the key-frame ego poses (synth_motion.py), so
they agree with ``ego_pose.json`` exactly at every key frame. Conventions follow the devkit's
README for the expansion: ``pos`` and ``orientation`` (w, x, y, z) are ego->global, as the ego
pose; ``vel``, ``accel`` (gravity included in z) and ``rotation_rate`` are in the ego frame;
``pose`` at 50 Hz, ``steeranglefeedback`` at 100 Hz with ``value`` in radians, positive left. The
steering value is ``curvature * 2.588 / 2``: VAD reads it back as ``Kappa = 2 * steering / 2.588``
(2.588 m is its wheelbase), so Kappa is the path's true curvature. ``route`` is the path's
polyline (what the devkit's ``get_pose_and_route`` compares poses against).
Messages start 0.5 s before a scene's first key frame and end 0.5 s after its last one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from onlinemap.data.synth_motion import EgoPath

__all__ = ["write_can_bus", "POSE_HZ", "STEER_HZ", "WHEELBASE"]

POSE_HZ, STEER_HZ = 50, 100
WHEELBASE = 2.588   # VAD's vad_nuscenes_converter.py: Kappa = 2 * steering / 2.588
_MARGIN_S = 0.5


def _quat_yaw(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def write_can_bus(can_dir: Path, scene_name: str, path: EgoPath, t0_us: int, duration_s: float) -> list[Path]:
    """Write ``pose``, ``steeranglefeedback`` and ``route`` of one scene; return the files."""
    can_dir.mkdir(parents=True, exist_ok=True)
    pose, steer, route = [], [], []
    n = int(round((duration_s + 2 * _MARGIN_S) * POSE_HZ)) + 1
    for k in range(n):
        t = -_MARGIN_S + k / POSE_HZ
        s = path.state(t)
        pose.append({"utime": t0_us + int(round(t * 1e6)), "pos": [s.x, s.y, 0.0],
                     "orientation": _quat_yaw(s.yaw), "accel": [0.0, s.accel_lat, 9.81],
                     "rotation_rate": [0.0, 0.0, s.yaw_rate], "vel": [s.speed, 0.0, 0.0]})
        if k % 10 == 0:
            route.append([s.x, s.y])
    for k in range(int(round((duration_s + 2 * _MARGIN_S) * STEER_HZ)) + 1):
        t = -_MARGIN_S + k / STEER_HZ
        s = path.state(t)
        curvature = s.yaw_rate / s.speed if s.speed > 0 else 0.0
        steer.append({"utime": t0_us + int(round(t * 1e6)), "value": curvature * WHEELBASE / 2})
    out = []
    for name, rows in (("pose", pose), ("steeranglefeedback", steer), ("route", route)):
        p = can_dir / f"{scene_name}_{name}.json"
        p.write_text(json.dumps(rows, separators=(",", ":")), encoding="utf-8")
        out.append(p)
    return out
