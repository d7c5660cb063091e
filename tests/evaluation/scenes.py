"""Randomised nuScenes-shaped scenes for the oracle tests: turning ego paths, tilted ego and sensor.

``Tables`` holds plain nuScenes table rows (the JSON schema of v1.0) and answers ``get(table, token)``
and ``_token2ind`` exactly as ``nuscenes.NuScenes`` does (a row lookup by token); nothing else of the
devkit is imitated. The evaluators only read tables through those two, plus ``nusc.category`` and
``nusc.sample``. The same rows go to the upstream oracles as JSON.
"""
from __future__ import annotations

import math

import numpy as np
from pyquaternion import Quaternion

from onlinemap.evaluation.planning import REAL_CATEGORY_ORDER

# nuScenes' LIDAR_TOP calibrated_sensor (every v1.0 log): 0.94 m ahead of the ego origin, 1.84 m up,
# x to the right of the car, y forward
LIDAR_TOP_TRANSLATION = [0.943713, 0.0, 1.84023]
LIDAR_TOP_ROTATION = [0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817]


class Tables:
    """nuScenes rows by table, with the devkit's ``get`` / ``_token2ind`` lookups."""

    def __init__(self, tables: dict[str, list[dict]]):
        self.tables = tables
        for name, rows in tables.items():
            setattr(self, name, rows)
        self._token2ind = {name: {r["token"]: i for i, r in enumerate(rows)} for name, rows in tables.items()}

    def get(self, table: str, token: str) -> dict:
        return getattr(self, table)[self._token2ind[table][token]]


def _tok(*parts) -> str:
    import hashlib

    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def tilt(rng, max_deg: float) -> Quaternion:
    """A random small roll/pitch rotation."""
    roll, pitch = np.radians(rng.uniform(-max_deg, max_deg, 2))
    return Quaternion(axis=[1, 0, 0], angle=roll) * Quaternion(axis=[0, 1, 0], angle=pitch)


def turning_scene(rng, n_samples: int = 10, turn_deg: float | None = None, speed: float | None = None,
                  tilt_deg: float = 2.0, sensor_tilt_deg: float = 1.0, n_agents: int = 25,
                  categories=REAL_CATEGORY_ORDER) -> Tables:
    """One scene of ``n_samples`` key frames 0.5 s apart; the ego turns at a constant rate
    (``turn_deg`` per 3 s, random in +-120 when None) and pitches/rolls a little; the LiDAR has
    nuScenes' extrinsics times a small random tilt; agents of random categories stand or move
    around the ego path, some with no LiDAR point, some leaving the scene early."""
    turn = math.radians(rng.uniform(-120, 120) if turn_deg is None else turn_deg) / 6.0   # per step
    v = rng.uniform(2.0, 12.0) if speed is None else speed
    yaw0 = rng.uniform(-math.pi, math.pi)
    xy = np.array([rng.uniform(300, 700), rng.uniform(300, 700)])
    cs_q = Quaternion(LIDAR_TOP_ROTATION) * tilt(rng, sensor_tilt_deg)
    t = {k: [] for k in ("category", "sample", "sample_data", "ego_pose", "calibrated_sensor",
                         "sample_annotation", "instance", "scene")}
    t["category"] = [{"token": _tok("cat", n), "name": n, "description": n, "index": i} for i, n in enumerate(categories)]
    cs_token = _tok("cs", rng.integers(1 << 30))
    t["calibrated_sensor"].append({"token": cs_token, "sensor_token": "lidar", "translation": LIDAR_TOP_TRANSLATION,
                                   "rotation": list(cs_q.elements), "camera_intrinsic": []})
    scene = _tok("scene", rng.integers(1 << 30))
    poses = []
    yaw = yaw0
    for i in range(n_samples):
        q = Quaternion(axis=[0, 0, 1], angle=yaw) * tilt(rng, tilt_deg)
        z = rng.uniform(-0.3, 0.3)
        poses.append((np.array([xy[0], xy[1], z]), q))
        xy = xy + v * 0.5 * np.array([math.cos(yaw + turn / 2), math.sin(yaw + turn / 2)])
        yaw += turn
    tokens = [_tok(scene, "sample", i) for i in range(n_samples)]
    for i, (pos, q) in enumerate(poses):
        sd, ep = _tok(scene, "sd", i), _tok(scene, "ep", i)
        t["ego_pose"].append({"token": ep, "translation": list(pos), "rotation": list(q.elements),
                              "timestamp": i * 500000})
        t["sample_data"].append({"token": sd, "sample_token": tokens[i], "ego_pose_token": ep,
                                 "calibrated_sensor_token": cs_token, "is_key_frame": True})
        t["sample"].append({"token": tokens[i], "scene_token": scene, "timestamp": i * 500000,
                            "prev": tokens[i - 1] if i else "", "next": tokens[i + 1] if i + 1 < n_samples else "",
                            "data": {"LIDAR_TOP": sd}, "anns": []})
    t["scene"].append({"token": scene, "name": "scene-rand", "first_sample_token": tokens[0],
                       "last_sample_token": tokens[-1], "nbr_samples": n_samples})
    for a in range(n_agents):
        cat = categories[int(rng.integers(len(categories)))]
        inst = _tok(scene, "inst", a)
        start = int(rng.integers(0, 3))
        stop = int(rng.integers(start + 1, n_samples + 1))
        # place it near the ego path at the start frame, in that frame's ego axes
        pos0, q0 = poses[start]
        local = np.array([rng.uniform(-12, 30), rng.uniform(-12, 12), 0.0])
        p = pos0 + q0.rotate(local)
        yaw_a = rng.uniform(-math.pi, math.pi)
        speed = rng.choice([0.0, rng.uniform(0, 8)])
        size = [float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.5, 8.0)), 1.5]
        ann_tokens = [_tok(inst, "ann", i) for i in range(start, stop)]
        for k, i in enumerate(range(start, stop)):
            yaw_a += rng.normal(0, 0.1)
            p = p + speed * 0.5 * np.array([math.cos(yaw_a), math.sin(yaw_a), 0.0])
            rot = Quaternion(axis=[0, 0, 1], angle=yaw_a) * tilt(rng, 1.0)
            t["sample_annotation"].append({
                "token": ann_tokens[k], "sample_token": tokens[i], "instance_token": inst, "category_name": cat,
                "translation": list(p), "size": size, "rotation": list(rot.elements),
                "num_lidar_pts": int(rng.choice([0, 3, 40])), "num_radar_pts": int(rng.choice([0, 0, 2])),
                "prev": ann_tokens[k - 1] if k else "", "next": ann_tokens[k + 1] if k + 1 < len(ann_tokens) else "",
                "attribute_tokens": [], "visibility_token": "4"})
            t["sample"][i]["anns"].append(ann_tokens[k])
        t["instance"].append({"token": inst, "category_token": _tok("cat", cat), "nbr_annotations": len(ann_tokens),
                              "first_annotation_token": ann_tokens[0], "last_annotation_token": ann_tokens[-1]})
    return Tables(t)
