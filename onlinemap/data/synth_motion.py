"""The synthetic ego vehicle's path: straight driving, and in some scenes a 90-degree left turn.

Why: a straight path hides frame bugs (a rotation applied twice, or the LiDAR origin taken for the
ego origin, gives the same numbers while the heading never changes). The path is closed-form, so
the key-frame ego poses (synth.py) and the 50 Hz CAN bus messages (synth_canbus.py) come from the
same function and agree exactly at the key-frame timestamps.

Motion: constant speed ``speed``; heading ``heading`` until ``turn_start`` s, then a constant yaw
rate for ``turn_duration`` s (``turn_angle`` in total, positive = left, i.e. counter-clockwise seen
from above), then straight again on the new heading.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

__all__ = ["EgoPath", "EgoState", "TURN_ANGLE", "TURN_DURATION"]

TURN_ANGLE = math.pi / 2   # a 90-degree left turn ...
TURN_DURATION = 3.0        # ... within 3 s (VAD's planning horizon is 3 s)


@dataclass(frozen=True)
class EgoState:
    x: float
    y: float
    yaw: float            # rad, counter-clockwise from the global x axis
    speed: float          # m/s along the heading
    yaw_rate: float       # rad/s
    accel_lat: float      # m/s^2, towards the ego's left (centripetal during a turn)


@dataclass(frozen=True)
class EgoPath:
    x0: float
    y0: float
    heading: float
    speed: float
    turn_start: Optional[float] = None    # s after the scene's first key frame; None: straight
    turn_angle: float = TURN_ANGLE
    turn_duration: float = TURN_DURATION

    def state(self, t: float) -> EgoState:
        """The ego state ``t`` seconds after the first key frame (t may be negative: CAN bus starts earlier)."""
        v, h0 = self.speed, self.heading
        if self.turn_start is None or t <= self.turn_start:
            return EgoState(self.x0 + v * t * math.cos(h0), self.y0 + v * t * math.sin(h0), h0, v, 0.0, 0.0)
        ts = self.turn_start
        omega = self.turn_angle / self.turn_duration
        radius = v / omega
        xs, ys = self.x0 + v * ts * math.cos(h0), self.y0 + v * ts * math.sin(h0)
        tau = min(t - ts, self.turn_duration)
        yaw = h0 + omega * tau
        # a circular arc of radius v/omega, centred to the left of the heading at the turn start
        x = xs + radius * (math.sin(yaw) - math.sin(h0))
        y = ys - radius * (math.cos(yaw) - math.cos(h0))
        if t - ts <= self.turn_duration:
            return EgoState(x, y, yaw, v, omega, v * omega)
        rest = t - ts - self.turn_duration
        return EgoState(x + v * rest * math.cos(yaw), y + v * rest * math.sin(yaw), yaw, v, 0.0, 0.0)
