"""A small synthetic OpenLane-V2 subset A (devkit v1.x layout), written beside the synthetic nuScenes.

Why: TopoMLP reads OpenLane-V2, not nuScenes, and nothing here can download it. The layout is the
one in OpenLane-V2's data/README.md: ``<root>/val/<segment_id>/image/<camera>/<timestamp>.jpg``,
``<root>/val/<segment_id>/info/<timestamp>.json`` (version, segment_id, meta_data, timestamp, sensor
with image_path / extrinsic / intrinsic, pose, annotation), ``data_dict_subset_A.json`` (split ->
segment -> frame files) and the collection pickle ``data_dict_subset_A_val.pkl`` exactly as the
devkit's ``openlanev2.preprocessing.collect`` makes it (numpy arrays; val lane points every 20th,
point_interval=20 as preprocess.py uses for val). tests/data check it against that function.

Content: seven Argoverse 2 ring cameras at their real sizes (front centre 1550x2048 portrait, the
others 2048x1550; ring_front_center first, as TopoMLP asserts), a straight three-lane road in the
ego frame split into two pieces per lane (so ``topology_lclc`` has successors), one traffic light
in the front image that the approaching pieces relate to (``topology_lcte``). The ego moves along
the road; lanes are given in the ego frame, as OpenLane-V2 gives them.
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np

__all__ = ["write_synthetic_openlane", "CAMERAS", "COLLECTION", "SPLIT"]

SPLIT = "val"
COLLECTION = "data_dict_subset_A_val"
CAMERAS = ("ring_front_center", "ring_front_left", "ring_front_right", "ring_rear_left", "ring_rear_right",
           "ring_side_left", "ring_side_right")
# camera yaw relative to the ego x axis (degrees), roughly as mounted on the Argoverse 2 car
_YAW = {"ring_front_center": 0, "ring_front_left": 45, "ring_front_right": -45, "ring_rear_left": 153,
        "ring_rear_right": -153, "ring_side_left": 99, "ring_side_right": -99}
_T0_NS = 315967376899927209     # an Argoverse 2 style timestamp (ns)
_PERIOD_NS = 500_000_000        # 2 Hz
LANE_POINTS = 201               # points per centerline in the info JSON (the pickle keeps every 20th)
POINT_INTERVAL = 20
_LANE_YS = (-3.5, 0.0, 3.5)
_PIECES = ((-20.0, 5.0), (5.0, 30.0))


def _image_size(camera: str) -> tuple[int, int]:
    return (1550, 2048) if camera == "ring_front_center" else (2048, 1550)


def _camera(camera: str) -> dict:
    w, h = _image_size(camera)
    f = 1780.0 if camera == "ring_front_center" else 1000.0
    yaw = math.radians(_YAW[camera])
    c, s = math.cos(yaw), math.sin(yaw)
    # camera axes (x right, y down, z forward) -> ego axes (x forward, y left, z up), then the mount yaw
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ base
    return {"intrinsic": {"K": [[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]], "distortion": [0.0, 0.0, 0.0]},
            "extrinsic": {"rotation": rot.tolist(), "translation": [1.2 * c, 0.6 * s, 1.6]}}


def _lanes(offset_x: float) -> list[dict]:
    lanes = []
    for j, y in enumerate(_LANE_YS):
        for p, (x0, x1) in enumerate(_PIECES):
            xs = np.linspace(x0, x1, LANE_POINTS) - offset_x
            pts = np.stack([xs, np.full_like(xs, y), np.zeros_like(xs)], axis=1)
            lanes.append({"id": 100 + 10 * j + p, "points": pts.round(4).tolist()})
    return lanes


def _topology() -> tuple[list, list]:
    n = len(_LANE_YS) * len(_PIECES)
    lclc = [[0] * n for _ in range(n)]
    lcte = [[0] for _ in range(n)]
    for j in range(len(_LANE_YS)):
        first, second = 2 * j, 2 * j + 1
        lclc[first][second] = 1          # piece 1 of a lane continues as its piece 2
        lcte[first][0] = 1               # the approaching pieces are governed by the traffic light
    return lclc, lcte


def _write_image(path: Path, rng: np.random.Generator, size: tuple[int, int], index: int) -> None:
    from PIL import Image

    w, h = size
    small = rng.normal(110 + 5 * (index % 7), 10, size=(h // 8, w // 8, 3))
    small[: h // 16] += 40   # brighter "sky" in the upper half
    Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR).save(path, quality=80)


def write_synthetic_openlane(root: Path, *, segments: int = 2, frames_per_segment: int = 10, seed: int = 0) -> dict:
    """Write the subset under ``root`` (must be missing, empty or synthetic) and return a description."""
    from onlinemap.data.synth import OPENLANE_MARKER as MARKER, _clear_previous, check_target

    if not 1 <= segments <= 20 or frames_per_segment < 1:
        raise ValueError("segments must be 1-20 and frames_per_segment at least 1")
    root = Path(root)
    check_target(root)
    _clear_previous(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(json.dumps({"synthetic": True, "complete": False, "writer": "onlinemap data synth",
                                           "entries": [SPLIT, "data_dict_subset_A.json", COLLECTION + ".pkl"]}) + "\n",
                               encoding="utf-8")
    rng = np.random.default_rng(seed)
    lclc, lcte = _topology()
    cams = {c: _camera(c) for c in CAMERAS}
    data_dict: dict = {SPLIT: {}}
    meta = {}
    for s in range(segments):
        segment = f"{10000 + s:05d}"
        data_dict[SPLIT][segment] = []
        speed = float(rng.uniform(3.0, 6.0))
        for i in range(frames_per_segment):
            ts = str(_T0_NS + s * 10 ** 11 + i * _PERIOD_NS)
            dist = speed * i * 0.5
            sensor = {}
            for c in CAMERAS:
                rel = f"{SPLIT}/{segment}/image/{c}/{ts}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                _write_image(root / rel, rng, _image_size(c), i)
                sensor[c] = {"image_path": rel, **cams[c]}
            frame = {"version": "v1.1", "segment_id": segment,
                     "meta_data": {"source": "synthetic", "source_id": f"synthetic-{segment}"},
                     "timestamp": int(ts), "sensor": sensor,
                     "pose": {"rotation": np.eye(3).tolist(), "translation": [dist, 0.0, 0.0]},
                     "annotation": {"lane_centerline": _lanes(dist),
                                    "traffic_element": [{"id": 1, "category": 1, "attribute": 2,
                                                         "points": [[700.0, 600.0], [760.0, 760.0]]}],
                                    "topology_lclc": lclc, "topology_lcte": lcte}}
            info = root / SPLIT / segment / "info" / f"{ts}.json"
            info.parent.mkdir(parents=True, exist_ok=True)
            info.write_text(json.dumps(frame), encoding="utf-8")
            data_dict[SPLIT][segment].append(f"{ts}.json")
            meta[(SPLIT, segment, ts)] = _as_collected(frame)
    (root / "data_dict_subset_A.json").write_text(json.dumps(data_dict, indent=1), encoding="utf-8")
    with open(root / f"{COLLECTION}.pkl", "wb") as fh:
        pickle.dump(meta, fh)
    info = {"dataroot": str(root), "collection": COLLECTION, "segments": segments,
            "frames": segments * frames_per_segment, "synthetic": True, "complete": True,
            "writer": "onlinemap data synth",
            "entries": [SPLIT, "data_dict_subset_A.json", COLLECTION + ".pkl", MARKER]}
    (root / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _as_collected(frame: dict) -> dict:
    """The frame as ``openlanev2.preprocessing.collect`` stores it (numpy arrays, val lanes subsampled)."""
    out = json.loads(json.dumps(frame))
    out["pose"] = {k: np.array(v, dtype=np.float64) for k, v in out["pose"].items()}
    for cam in out["sensor"].values():
        for para in ("intrinsic", "extrinsic"):
            cam[para] = {k: np.array(v, dtype=np.float64) for k, v in cam[para].items()}
    ann = out["annotation"]
    for lane in ann["lane_centerline"]:
        lane["points"] = np.array(lane["points"][::POINT_INTERVAL], dtype=np.float32)
    for te in ann["traffic_element"]:
        te["points"] = np.array(te["points"], dtype=np.float32)
    ann["topology_lclc"] = np.array(ann["topology_lclc"], dtype=np.int8)
    ann["topology_lcte"] = np.array(ann["topology_lcte"], dtype=np.int8)
    return out
