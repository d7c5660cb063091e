"""A small synthetic dataset in the real nuScenes layout, loadable by ``nuscenes.NuScenes``.

Why: no machine here can download nuScenes, yet the whole pipeline (sample selection, camera
images, model forward, prediction conversion, devkit evaluation) must run for real. The tables
follow the v1.0 schema field for field; scene names come from the official mini split (the first
two are mini_val's), so the devkit's split helpers accept them; annotations carry categories,
attributes, visibility and lidar point counts so that detection evaluation has real ground truth.

Everything is deterministic for a given seed: ego drives a straight line at constant speed, some
objects are parked, some move with constant velocity, all stay within 40 m of the ego vehicle.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from onlinemap.data.synth_map import write_map_expansion

__all__ = ["write_synthetic_nuscenes", "MINI_SCENES", "CAMERAS", "CATEGORY_OF_CLASS"]

# devkit nuscenes/utils/splits.py: mini_val first, then mini_train
MINI_SCENES = ("scene-0103", "scene-0916", "scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796",
               "scene-1077", "scene-1094", "scene-1100")
CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
# camera yaw relative to the ego x axis (degrees), roughly as mounted on the nuScenes car
CAMERA_YAW = {"CAM_FRONT": 0, "CAM_FRONT_RIGHT": -55, "CAM_FRONT_LEFT": 55, "CAM_BACK": 180,
              "CAM_BACK_LEFT": 110, "CAM_BACK_RIGHT": -110}
CATEGORIES = ("animal", "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
              "human.pedestrian.personal_mobility", "human.pedestrian.police_officer", "human.pedestrian.stroller",
              "human.pedestrian.wheelchair", "movable_object.barrier", "movable_object.debris",
              "movable_object.pushable_pullable", "movable_object.trafficcone", "static_object.bicycle_rack",
              "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.car", "vehicle.construction",
              "vehicle.emergency.ambulance", "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer",
              "vehicle.truck")
ATTRIBUTES = ("vehicle.moving", "vehicle.stopped", "vehicle.parked", "cycle.with_rider", "cycle.without_rider",
              "pedestrian.sitting_lying_down", "pedestrian.standing", "pedestrian.moving")
# detection class -> (category, size wlh, attribute when moving, attribute when still)
CATEGORY_OF_CLASS = {
    "car": ("vehicle.car", (1.9, 4.6, 1.7), "vehicle.moving", "vehicle.parked"),
    "truck": ("vehicle.truck", (2.5, 7.0, 3.0), "vehicle.moving", "vehicle.parked"),
    "bus": ("vehicle.bus.rigid", (2.9, 11.0, 3.5), "vehicle.moving", "vehicle.stopped"),
    "trailer": ("vehicle.trailer", (2.4, 10.0, 3.8), "vehicle.moving", "vehicle.parked"),
    "construction_vehicle": ("vehicle.construction", (2.8, 6.5, 3.2), "vehicle.moving", "vehicle.parked"),
    "pedestrian": ("human.pedestrian.adult", (0.7, 0.7, 1.75), "pedestrian.moving", "pedestrian.standing"),
    "motorcycle": ("vehicle.motorcycle", (0.8, 2.1, 1.5), "cycle.with_rider", "cycle.without_rider"),
    "bicycle": ("vehicle.bicycle", (0.6, 1.7, 1.3), "cycle.with_rider", "cycle.without_rider"),
    "traffic_cone": ("movable_object.trafficcone", (0.4, 0.4, 1.0), None, None),
    "barrier": ("movable_object.barrier", (2.5, 0.5, 1.0), None, None),
}
LOCATIONS = ("singapore-onenorth", "boston-seaport", "singapore-queenstown", "singapore-hollandvillage")
MAP_SIZE_PX = 2000          # map masks are 0.1 m per pixel: 200 m x 200 m
IMAGE_SIZE = (320, 180)     # (w, h): small JPEGs; the real ones are 1600 x 900
SAMPLE_PERIOD_US = 500_000  # key frames at 2 Hz, as nuScenes


def _token(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def _quat_yaw(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def _quat_mul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return [w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2]


def _camera_rotation(yaw_deg: float) -> list[float]:
    """Sensor->ego rotation of a camera looking along ``yaw_deg`` (camera z forward, x right, y down)."""
    base = [0.5, -0.5, 0.5, -0.5]  # maps camera axes to ego axes for a forward-looking camera
    return _quat_mul(_quat_yaw(math.radians(yaw_deg)), base)


def write_synthetic_nuscenes(root: Path, *, scenes: int = 2, samples_per_scene: int = 20, objects_per_scene: int = 12,
                             seed: int = 0, version: str = "v1.0-mini") -> dict:
    """Write the dataset under ``root`` and return a short description of what was written."""
    if not 1 <= scenes <= len(MINI_SCENES):
        raise ValueError(f"scenes must be between 1 and {len(MINI_SCENES)} (the official mini split's size)")
    if samples_per_scene < 2:
        raise ValueError("samples_per_scene must be at least 2")
    root = Path(root)
    rng = np.random.default_rng(seed)
    tables: dict[str, list] = {name: [] for name in (
        "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
        "scene", "sample", "sample_data", "sample_annotation", "map")}

    cat_token = {name: _token("category", name) for name in CATEGORIES}
    tables["category"] = [{"token": cat_token[n], "name": n, "description": f"synthetic {n}", "index": i}
                          for i, n in enumerate(CATEGORIES)]
    attr_token = {name: _token("attribute", name) for name in ATTRIBUTES}
    tables["attribute"] = [{"token": attr_token[n], "name": n, "description": f"synthetic {n}"} for n in ATTRIBUTES]
    tables["visibility"] = [{"token": str(i + 1), "level": lvl, "description": f"visibility {lvl}"}
                            for i, lvl in enumerate(("v0-40", "v40-60", "v60-80", "v80-100"))]
    channels = CAMERAS + ("LIDAR_TOP",)
    sensor_token = {c: _token("sensor", c) for c in channels}
    tables["sensor"] = [{"token": sensor_token[c], "channel": c, "modality": "lidar" if c == "LIDAR_TOP" else "camera"}
                        for c in channels]

    # maps: one mask per location used, 0.1 m/px, drivable area = a band along the x axis
    used_locations = [LOCATIONS[i % len(LOCATIONS)] for i in range(scenes)]
    (root / "maps").mkdir(parents=True, exist_ok=True)
    map_records: dict[str, dict] = {}
    from PIL import Image

    for loc in dict.fromkeys(used_locations):
        token = _token("map", loc, seed)
        filename = f"maps/{token}.png"
        mask = np.zeros((MAP_SIZE_PX, MAP_SIZE_PX), dtype=np.uint8)
        mask[MAP_SIZE_PX // 2 - 150:MAP_SIZE_PX // 2 + 150, :] = 255
        Image.fromarray(mask).save(root / filename)
        map_records[loc] = {"token": token, "log_tokens": [], "category": "semantic_prior", "filename": filename}

    width_px, height_px = IMAGE_SIZE
    fx = width_px / (2 * math.tan(math.radians(70) / 2))
    n_samples = 0
    n_anns = 0
    for s_idx in range(scenes):
        name = MINI_SCENES[s_idx]
        loc = used_locations[s_idx]
        log_token = _token("log", name, seed)
        map_records[loc]["log_tokens"].append(log_token)
        tables["log"].append({"token": log_token, "logfile": f"synthetic-{name}", "vehicle": "n015",
                              "date_captured": "2018-08-01", "location": loc})
        calib = {}
        for c in channels:
            token = _token("calib", name, c, seed)
            calib[c] = token
            if c == "LIDAR_TOP":
                rec = {"translation": [0.94, 0.0, 1.84], "rotation": _quat_yaw(-math.pi / 2), "camera_intrinsic": []}
            else:
                yaw = math.radians(CAMERA_YAW[c])
                rec = {"translation": [1.0 * math.cos(yaw), 0.5 * math.sin(yaw), 1.5],
                       "rotation": _camera_rotation(CAMERA_YAW[c]),
                       "camera_intrinsic": [[fx, 0.0, width_px / 2], [0.0, fx, height_px / 2], [0.0, 0.0, 1.0]]}
            tables["calibrated_sensor"].append({"token": token, "sensor_token": sensor_token[c], **rec})

        # ego path: along +x (with a small heading) through the map's drivable band
        start = np.array([60.0 + 10 * s_idx, 100.0 + rng.uniform(-3, 3), 0.0])
        heading = rng.uniform(-0.05, 0.05)
        speed = rng.uniform(3.0, 6.0)
        t0 = 1533151600_000000 + s_idx * 100_000_000
        sample_tokens = [_token("sample", name, i, seed) for i in range(samples_per_scene)]
        ego_poses = []
        for i in range(samples_per_scene):
            dist = speed * i * SAMPLE_PERIOD_US / 1e6
            pos = start + dist * np.array([math.cos(heading), math.sin(heading), 0.0])
            ego_poses.append((pos, heading, t0 + i * SAMPLE_PERIOD_US))

        # objects: drawn around the path in the ego start frame; some move
        classes = list(CATEGORY_OF_CLASS)
        objects = []
        for o in range(objects_per_scene):
            cls = classes[(o + s_idx) % len(classes)]
            category, size, moving_attr, still_attr = CATEGORY_OF_CLASS[cls]
            moving = moving_attr is not None and o % 3 == 0
            along = rng.uniform(-5, 5 + speed * samples_per_scene * 0.5)
            side = rng.choice([-1, 1]) * rng.uniform(3.0, 12.0)
            yaw = heading + (0.0 if rng.random() < 0.7 else math.pi / 2) + rng.uniform(-0.1, 0.1)
            vel = (np.array([math.cos(yaw), math.sin(yaw)]) * rng.uniform(1.0, 4.0)) if moving else np.zeros(2)
            pos0 = start + along * np.array([math.cos(heading), math.sin(heading), 0.0]) + \
                side * np.array([-math.sin(heading), math.cos(heading), 0.0])
            pos0[2] = size[2] / 2
            inst = _token("instance", name, o, seed)
            objects.append({"cls": cls, "category": category, "size": size, "yaw": yaw, "vel": vel, "pos0": pos0,
                            "attr": moving_attr if moving else still_attr, "instance": inst, "anns": []})

        for i, token in enumerate(sample_tokens):
            pos, yaw, ts = ego_poses[i]
            data = {}
            for c in channels:
                sd_token = _token("sd", name, c, i, seed)
                data[c] = sd_token
                ego_token = _token("ego", name, c, i, seed)
                tables["ego_pose"].append({"token": ego_token, "timestamp": ts, "rotation": _quat_yaw(yaw),
                                           "translation": [float(v) for v in pos]})
                if c == "LIDAR_TOP":
                    filename = f"samples/LIDAR_TOP/{name}__LIDAR_TOP__{ts}.pcd.bin"
                    fmt, w, h = "pcd", 0, 0
                    points = rng.normal(0, 10, size=(64, 5)).astype(np.float32)
                    (root / filename).parent.mkdir(parents=True, exist_ok=True)
                    points.tofile(root / filename)
                else:
                    filename = f"samples/{c}/{name}__{c}__{ts}.jpg"
                    fmt, w, h = "jpg", width_px, height_px
                    (root / filename).parent.mkdir(parents=True, exist_ok=True)
                    _write_camera_image(root / filename, rng, i, c)
                tables["sample_data"].append({
                    "token": sd_token, "sample_token": token, "ego_pose_token": ego_token,
                    "calibrated_sensor_token": calib[c], "timestamp": ts, "fileformat": fmt, "is_key_frame": True,
                    "height": h, "width": w, "filename": filename,
                    "prev": _token("sd", name, c, i - 1, seed) if i > 0 else "",
                    "next": _token("sd", name, c, i + 1, seed) if i < samples_per_scene - 1 else ""})
            tables["sample"].append({"token": token, "timestamp": ts, "scene_token": _token("scene", name, seed),
                                     "prev": sample_tokens[i - 1] if i > 0 else "",
                                     "next": sample_tokens[i + 1] if i < samples_per_scene - 1 else ""})
            t = (ts - t0) / 1e6
            for obj in objects:
                p = obj["pos0"].copy()
                p[:2] += obj["vel"] * t
                if np.linalg.norm(p[:2] - pos[:2]) > 40.0:
                    continue
                ann_token = _token("ann", obj["instance"], i, seed)
                obj["anns"].append(ann_token)
                dist = float(np.linalg.norm(p[:2] - pos[:2]))
                tables["sample_annotation"].append({
                    "token": ann_token, "sample_token": token, "instance_token": obj["instance"],
                    "visibility_token": str(4 if dist < 20 else 3),
                    "attribute_tokens": [attr_token[obj["attr"]]] if obj["attr"] else [],
                    "translation": [float(v) for v in p], "size": list(obj["size"]), "rotation": _quat_yaw(obj["yaw"]),
                    "num_lidar_pts": int(max(1, 200 - 4 * dist)), "num_radar_pts": int(max(0, 10 - dist // 4)),
                    "prev": "", "next": ""})
                n_anns += 1
        # link annotations of an instance (only consecutive key frames in which it was visible)
        ann_by_token = {a["token"]: a for a in tables["sample_annotation"]}
        for obj in objects:
            if not obj["anns"]:
                continue
            for a, b in zip(obj["anns"], obj["anns"][1:]):
                ann_by_token[a]["next"] = b
                ann_by_token[b]["prev"] = a
            tables["instance"].append({"token": obj["instance"], "category_token": cat_token[obj["category"]],
                                       "nbr_annotations": len(obj["anns"]), "first_annotation_token": obj["anns"][0],
                                       "last_annotation_token": obj["anns"][-1]})
        tables["scene"].append({"token": _token("scene", name, seed), "log_token": log_token,
                                "nbr_samples": samples_per_scene, "first_sample_token": sample_tokens[0],
                                "last_sample_token": sample_tokens[-1], "name": name,
                                "description": "synthetic scene written by onlinemap data synth"})
        n_samples += samples_per_scene

    tables["map"] = list(map_records.values())
    out = root / version
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (out / f"{name}.json").write_text(json.dumps(rows, indent=0), encoding="utf-8")
    info = {"dataroot": str(root), "version": version, "scenes": scenes, "samples": n_samples,
            "annotations": n_anns, "seed": seed, "synthetic": True}
    (root / "SYNTHETIC.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    write_map_expansion(root, used_locations, seed)
    return info


def _write_camera_image(path: Path, rng: np.random.Generator, index: int, camera: str) -> None:
    from PIL import Image

    w, h = IMAGE_SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (index * 0.3 + CAMERAS.index(camera)) % (2 * math.pi)
    base = 127 + 60 * np.sin(x / 17.0 + phase)[..., None] * np.array([1.0, 0.6, 0.3]) + (y / h * 60)[..., None]
    noise = rng.normal(0, 12, size=(h, w, 3))
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=85)
