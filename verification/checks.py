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
    if "topology" in pack.get("outputs", []):
        out += topology_checks(preds, samples, data)
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


# TopoMLP's lane head clamps every control point to its config's point_cloud_range (LaneHead._get_bboxes_single),
# and the Bezier curve stays inside the hull of its control points: ego-frame metres in this box, or a unit bug
TOPOMLP_BEV_RANGE = (-51.2, -25.6, -8.0, 51.2, 25.6, 4.0)


def front_image_size(data: Path, identifier) -> tuple[int, int]:
    """(width, height) of the front camera image of an OpenLane-V2 frame ``(split, segment, timestamp)``."""
    from PIL import Image

    split, segment, ts = identifier
    info = json.loads((data / split / segment / "info" / f"{ts}.json").read_text())
    with Image.open(data / info["sensor"]["ring_front_center"]["image_path"]) as im:
        return im.size


def topology_checks(preds: list[dict], samples: list[dict], data: Path, bev_range=TOPOMLP_BEV_RANGE) -> list[dict]:
    """Lanes in ego-frame metres, traffic elements in the front camera's original pixels, matrices (N, N)/(N, M) in [0, 1]."""
    from onlinemap.evaluation.topology import topology_matrices

    lanes = elements = 0
    bad_points: list[str] = []
    bad_shapes: list[str] = []
    worst_out = 0.0
    te_extent = [0.0, 0.0]          # largest x2 / width, y2 / height over all boxes
    te_outside: list[str] = []
    lo = hi = None
    identifiers = {s["token"]: s["identifier"] for s in samples}
    for p in preds:
        topo = p["topology"]
        for lane in topo["lanes"]:
            lanes += 1
            pts = lane["points"]
            if len(pts) != 11 or any(len(q) != 3 or not all(math.isfinite(v) for v in q) for q in pts):
                bad_points.append(f"{p['sample_token']} lane {lane['id']}")
                continue
            for q in pts:
                for d in range(3):
                    worst_out = max(worst_out, bev_range[d] - q[d], q[d] - bev_range[d + 3])
        w, h = front_image_size(data, identifiers[p["sample_token"]])
        for te in topo["traffic_elements"]:
            elements += 1
            x1, y1, x2, y2 = te["box"]
            if not (0 <= x1 <= x2 <= w + 1e-3 and 0 <= y1 <= y2 <= h + 1e-3):
                te_outside.append(f"{p['sample_token']} {te['id']} {te['box']} (image {w}x{h})")
            te_extent = [max(te_extent[0], x2 / w), max(te_extent[1], y2 / h)]
        try:
            ll, lt = topology_matrices(topo)
        except ValueError as exc:
            bad_shapes.append(f"{p['sample_token']}: {exc}")
            continue
        n, m = len(topo["lanes"]), len(topo["traffic_elements"])
        if ll.shape != (n, n) or lt.shape != (n, m):
            bad_shapes.append(f"{p['sample_token']}: lane_lane {ll.shape}, lane_traffic {lt.shape} for {n} lanes, {m} elements")
        for mat in (ll, lt):
            if mat.size:
                lo = float(mat.min()) if lo is None else min(lo, float(mat.min()))
                hi = float(mat.max()) if hi is None else max(hi, float(mat.max()))
    in_range = lo is not None and 0.0 <= lo and hi <= 1.0
    frames = {str((p.get("extra") or {}).get("lane_frame")) for p in preds}
    return [
        _check("lanes and traffic elements present", lanes > 0 and elements > 0,
               f"{lanes} lanes, {elements} traffic elements over {len(preds)} frames"),
        _check("lane centerlines: 11 finite 3-D points in ego-frame metres inside the head's BEV range",
               not bad_points and worst_out <= 1e-4 and frames == {"ego"},
               f"frames {sorted(frames)}; {len(bad_points)} malformed lanes {bad_points[:3]}; largest excursion "
               f"outside {list(bev_range)}: {max(worst_out, 0.0):.2g} m", {"outside_bev_range_m": max(worst_out, 0.0)}),
        # rescale=True divides by the pipeline's scale_factor: boxes are in the ORIGINAL front image
        # (1550 x 2048 portrait); left in the resized 1024 x 775 input they would end before 0.67 / 0.38 of it
        _check("traffic elements: x1 <= x2, y1 <= y2 in the original front camera image's pixels",
               elements > 0 and not te_outside and te_extent[0] > 0.7 and te_extent[1] > 0.45,
               f"{len(te_outside)} boxes outside the image {te_outside[:2]}; boxes reach {te_extent[0]:.2f} of the "
               f"width and {te_extent[1]:.2f} of the height",
               {"max_x2_over_width": round(te_extent[0], 4), "max_y2_over_height": round(te_extent[1], 4)}),
        _check("topology matrices (N, N) and (N, M), probabilities in [0, 1]", not bad_shapes and in_range,
               f"{bad_shapes[:2]}; values in [{lo}, {hi}]", {"min": lo, "max": hi}),
    ]
