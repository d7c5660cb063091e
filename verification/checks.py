"""The lane's driver-side checks of a model's predictions against the synthetic ground truth.

Why. With random weights the boxes are meaningless, but their *frame and units* are not: a box
the adapter left in the LiDAR frame, in pixels or in millimetres lands far from the ego's global
pose, which the synthetic dataset knows exactly. Each check returns ``{name, passed, max_diff,
detail}``; the model's reference checks (upstream formatting functions) run in its own venv
(verification/inenv/).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

# nuScenes detection_cvpr_2019 class_range is at most 50 m; the adapter filters in the ego frame
MAX_RANGE_M = 50.0
MAX_BOX_SIZE_M = 30.0     # a nuScenes bus/trailer is < 20 m; sizes in mm or px would be far larger
Z_BAND_M = 15.0


def _check(name, passed, detail, max_diff=None):
    return {"name": name, "passed": bool(passed), "max_diff": max_diff, "detail": detail}


def ego_poses(data: Path, version: str) -> dict[str, dict]:
    """sample token -> the ego pose (global translation, rotation) of its LIDAR_TOP keyframe."""
    tables = {n: json.loads((data / version / f"{n}.json").read_text())
              for n in ("sample_data", "ego_pose", "calibrated_sensor", "sensor")}
    sensors = {s["token"]: s["channel"] for s in tables["sensor"]}
    lidar_cs = {c["token"] for c in tables["calibrated_sensor"] if sensors.get(c["sensor_token"]) == "LIDAR_TOP"}
    poses = {p["token"]: p for p in tables["ego_pose"]}
    out = {}
    for sd in tables["sample_data"]:
        if sd.get("is_key_frame") and sd["calibrated_sensor_token"] in lidar_cs:
            out[sd["sample_token"]] = poses[sd["ego_pose_token"]]
    return out


def driver_checks(pack: dict, preds: list[dict], samples: list[dict], data: Path, version: str) -> list[dict]:
    from onlinemap.evaluation.predictions import validate_prediction

    out = []
    errors = [f"{p.get('sample_token')}: {e}" for p in preds for e in validate_prediction(p)[:1]]
    out.append(_check("predictions follow prediction.schema.json", not errors,
                      f"{len(preds)} predictions" + (f"; {errors[:3]}" if errors else "")))
    tokens = [p.get("sample_token") for p in preds]
    want = [s["token"] for s in samples]
    out.append(_check("one prediction per sample, in order, model named", tokens == want and
                      all(p.get("model") == pack["name"] for p in preds), f"{len(tokens)} of {len(want)}"))
    if "detections_3d" in pack.get("outputs", []):
        out += detection_frame_checks(preds, ego_poses(data, version))
    return out


def detection_frame_checks(preds: list[dict], poses: dict[str, dict]) -> list[dict]:
    worst_xy = worst_z = worst_size = 0.0
    frames = set()
    count = 0
    finite = True
    for p in preds:
        ego = poses[p["sample_token"]]["translation"]
        for d in p.get("detections_3d") or []:
            count += 1
            frames.add(d.get("frame"))
            worst_xy = max(worst_xy, math.hypot(d["center"][0] - ego[0], d["center"][1] - ego[1]))
            worst_z = max(worst_z, abs(d["center"][2] - ego[2]))
            worst_size = max(worst_size, max(d["size"]))
            finite = finite and all(math.isfinite(v) for v in d["center"] + d["size"] + d["velocity"] + [d["yaw"]])
    return [
        _check("boxes present", count > 0, f"{count} boxes over {len(preds)} samples"),
        _check("boxes in the global frame around the ego pose (metres)", frames == {"global"} and finite
               and worst_xy <= MAX_RANGE_M + 1.0 and worst_z <= Z_BAND_M,
               f"frames {sorted(map(str, frames))}; max horizontal distance from the ego {worst_xy:.2f} m "
               f"(class range <= {MAX_RANGE_M:g} m), max |dz| {worst_z:.2f} m",
               {"horizontal_from_ego_m": round(worst_xy, 3), "dz_m": round(worst_z, 3)}),
        _check("box sizes in metres", 0 < worst_size <= MAX_BOX_SIZE_M, f"largest size {worst_size:.2f} m",
               {"largest_size_m": round(worst_size, 3)}),
    ]
