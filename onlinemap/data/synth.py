"""A synthetic dataset in the real nuScenes layout, loadable by ``nuscenes.NuScenes``.

Why: no machine here can download nuScenes, yet the whole pipeline (sample selection, camera
images, the models' own info converters, model forward, prediction conversion, devkit evaluation)
must run for real. The tables follow the v1.0 schema field for field; scene names come from the
official mini split (the first two are mini_val's), so the devkit's split helpers accept them;
annotations carry categories, attributes, visibility and lidar point counts so that detection
evaluation has real ground truth.

The default size is the real v1.0-mini's (10 scenes of 40 key frames: 400 samples; the real one
has 404), so every README command runs on it; tests pass a small size explicitly.

What the upstream converters and pipelines read is there and consistent: 1600x900 JPEGs with
intrinsics that agree with them (synth_camera.py), map expansion v1.3 for all four locations
(synth_map.py; the MapTR/VAD dataset constructors open all four), the CAN bus expansion under
``can_bus/`` (synth_canbus.py), and no box with exactly two corners in front of a camera (the
converters' 2-D box code crashes on one). The ego drives straight in even-numbered scenes and
makes a 90-degree left turn within 3 s in odd-numbered ones (synth_motion.py); some objects are
parked, some move with constant velocity, all are annotated only within 40 m of the ego.

Everything is deterministic for a given seed. ``SYNTHETIC.json`` marks a folder as written here:
:func:`write_synthetic_nuscenes` refuses to write into a non-empty folder without it, so it can
never overwrite a user's dataset.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np

from onlinemap.data.synth_camera import (CAMERAS, IMAGE_SIZE, box_corners, camera_rotation, camera_translation,
                                         corners_in_front, intrinsic, quat_yaw, write_camera_image)
from onlinemap.data.synth_canbus import write_can_bus
from onlinemap.data.synth_map import write_map_expansion
from onlinemap.data.synth_motion import EgoPath

__all__ = ["write_synthetic_nuscenes", "check_target", "NotSyntheticError", "MINI_SCENES", "CAMERAS",
           "CATEGORY_OF_CLASS", "LOCATIONS", "MARKER", "OPENLANE_MARKER", "marker_file", "DEFAULT_SCENES", "DEFAULT_SAMPLES_PER_SCENE"]

# devkit nuscenes/utils/splits.py: mini_val first, then mini_train
MINI_SCENES = ("scene-0103", "scene-0916", "scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796",
               "scene-1077", "scene-1094", "scene-1100")
DEFAULT_SCENES, DEFAULT_SAMPLES_PER_SCENE = 10, 40   # the real v1.0-mini: 10 scenes, 404 samples
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
# all four nuScenes locations (map expansion files are written for every one of them)
LOCATIONS = ("singapore-onenorth", "boston-seaport", "singapore-queenstown", "singapore-hollandvillage")
MAP_SIZE_PX = 2000          # map masks are 0.1 m per pixel: 200 m x 200 m
SAMPLE_PERIOD_US = 500_000  # key frames at 2 Hz, as nuScenes
ANNOTATION_RANGE_M = 40.0
MARKER = "SYNTHETIC.json"   # written last; marks the folder as synthetic (see check_target)
# the synthetic OpenLane-V2 root's marker (same JSON content): not *.json, because the devkit's preprocess.py
# collects every *.json at the dataset root as a data dict (split -> segment -> frames) and trips on any other
OPENLANE_MARKER = "SYNTHETIC.txt"
MARKERS = (MARKER, OPENLANE_MARKER)
# what the writer puts at the top of the root (a folder with other entries is not replaced silently)
WRITTEN = ("samples", "maps", "can_bus", MARKER)


class NotSyntheticError(ValueError):
    """The target folder holds data that `onlinemap data synth` did not write."""


def _token(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def check_target(root: Path) -> None:
    """Refuse (NotSyntheticError) a non-empty ``root`` without the synthetic marker: never overwrite real data."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotSyntheticError(f"{root} exists and is not a folder")
    if not root.is_dir() or not any(root.iterdir()):
        return
    if marker_file(root) is None:
        raise NotSyntheticError(f"{root} is not empty and was not written by `onlinemap data synth` (no {MARKER}): "
                                "refusing to write into it")


def marker_file(root: Path):
    """The synthetic marker in ``root`` (``SYNTHETIC.json``; ``SYNTHETIC.txt`` in an OpenLane-V2 root), or None."""
    return next((Path(root) / m for m in MARKERS if (Path(root) / m).is_file()), None)


def _clear_previous(root: Path) -> None:
    """Remove what an earlier synth run wrote (listed in its marker), so no stale file survives."""
    marker = marker_file(root)
    try:
        old = json.loads(marker.read_text(encoding="utf-8")) if marker is not None else {}
    except (OSError, ValueError):
        return
    for name in old.get("entries", []):
        if "/" in name or name in ("", ".", ".."):
            continue
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def write_synthetic_nuscenes(root: Path, *, scenes: int = DEFAULT_SCENES,
                             samples_per_scene: int = DEFAULT_SAMPLES_PER_SCENE, objects_per_scene: int = 12,
                             seed: int = 0, version: str = "v1.0-mini", turns: bool = True) -> dict:
    """Write the dataset under ``root`` and return a short description of what was written.

    ``turns``: odd-numbered scenes make a 90-degree left turn (False: every scene drives straight).

    ``root`` must be missing, empty, or an earlier synthetic dataset (replaced); anything else
    raises NotSyntheticError before a single file is written.
    """
    if not 1 <= scenes <= len(MINI_SCENES):
        raise ValueError(f"scenes must be between 1 and {len(MINI_SCENES)} (the official mini split's size)")
    if samples_per_scene < 2:
        raise ValueError("samples_per_scene must be at least 2")
    root = Path(root)
    check_target(root)
    _clear_previous(root)
    root.mkdir(parents=True, exist_ok=True)
    # the marker comes first (so an interrupted write can be redone) and says "complete" only at the end
    entries = [version, *WRITTEN]
    (root / MARKER).write_text(json.dumps({"synthetic": True, "complete": False, "writer": "onlinemap data synth",
                                           "entries": entries}) + "\n", encoding="utf-8")
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

    # maps: one semantic-prior mask per location used, 0.1 m/px, drivable area = a band along the x axis
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
    n_samples = n_anns = n_dropped = 0
    side_roads: dict[str, list[float]] = {}   # location -> x of the side road a turning scene turns into
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
                rec = {"translation": [0.94, 0.0, 1.84], "rotation": quat_yaw(-math.pi / 2), "camera_intrinsic": []}
            else:
                rec = {"translation": camera_translation(c), "rotation": camera_rotation(c),
                       "camera_intrinsic": intrinsic(c)}
            tables["calibrated_sensor"].append({"token": token, "sensor_token": sensor_token[c], **rec})

        # ego path: along +x (with a small heading) through the map's drivable band; odd scenes turn left
        duration = (samples_per_scene - 1) * SAMPLE_PERIOD_US / 1e6
        turn_start = round(0.3 * (samples_per_scene - 1)) * SAMPLE_PERIOD_US / 1e6   # on a key frame
        path = EgoPath(x0=60.0 + 10 * s_idx, y0=100.0 + float(rng.uniform(-3, 3)),
                       heading=float(rng.uniform(-0.05, 0.05)), speed=float(rng.uniform(3.0, 6.0)),
                       turn_start=turn_start if turns and s_idx % 2 else None)
        if path.turn_start is not None:   # the side road is centred 2.5 m left of the ego's lane centre
            after = path.state(path.turn_start + path.turn_duration)
            side_roads.setdefault(loc, []).append(round(after.x - 2.5, 3))
        t0 = 1533151600_000000 + s_idx * 100_000_000
        sample_tokens = [_token("sample", name, i, seed) for i in range(samples_per_scene)]
        ego_states = [path.state(i * SAMPLE_PERIOD_US / 1e6) for i in range(samples_per_scene)]
        ego_xy = np.array([[e.x, e.y] for e in ego_states])
        write_can_bus(root / "can_bus", name, path, t0, duration)

        # objects: drawn beside the path (both sides, 3-12 m off it); some move. None comes near the
        # ego's path or another object, and objects of one class stay > 6 m apart (so a matcher cannot
        # confuse them), at every key frame.
        classes = list(CATEGORY_OF_CLASS)
        objects = []
        key_times = np.arange(samples_per_scene) * SAMPLE_PERIOD_US / 1e6
        for o in range(objects_per_scene):
            cls = classes[(o + s_idx) % len(classes)]
            category, size, moving_attr, still_attr = CATEGORY_OF_CLASS[cls]
            moving = moving_attr is not None and o % 3 == 0
            reach = max(size[0], size[1]) / 2
            for _attempt in range(100):
                at = path.state(float(rng.uniform(-2.0, duration + 2.0)))
                side = float(rng.choice([-1, 1]) * rng.uniform(3.0, 12.0))
                yaw = at.yaw + (0.0 if rng.random() < 0.7 else math.pi / 2) + float(rng.uniform(-0.1, 0.1))
                vel = (np.array([math.cos(yaw), math.sin(yaw)]) * rng.uniform(1.0, 4.0)) if moving else np.zeros(2)
                pos0 = np.array([at.x - side * math.sin(at.yaw), at.y + side * math.cos(at.yaw), size[2] / 2])
                track = pos0[:2] + np.outer(key_times, vel)
                if np.linalg.norm(track[:, None, :] - ego_xy[None, :, :], axis=2).min() < 2.0 + reach:
                    continue
                if all(np.linalg.norm(track - other["track"], axis=1).min()
                       > (6.0 if other["cls"] == cls else 1.0 + reach + other["reach"]) for other in objects):
                    break
            inst = _token("instance", name, o, seed)
            objects.append({"cls": cls, "category": category, "size": size, "yaw": yaw, "vel": vel, "pos0": pos0,
                            "attr": moving_attr if moving else still_attr, "instance": inst, "anns": [],
                            "track": track, "reach": reach})

        for i, token in enumerate(sample_tokens):
            ego = ego_states[i]
            ts = t0 + i * SAMPLE_PERIOD_US
            ego_xyz = (ego.x, ego.y, 0.0)
            data = {}
            for c in channels:
                sd_token = _token("sd", name, c, i, seed)
                data[c] = sd_token
                ego_token = _token("ego", name, c, i, seed)
                tables["ego_pose"].append({"token": ego_token, "timestamp": ts, "rotation": quat_yaw(ego.yaw),
                                           "translation": [float(v) for v in ego_xyz]})
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
                    write_camera_image(root / filename, rng, i, c)
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
                dist = float(np.linalg.norm(p[:2] - ego_xy[i]))
                if dist > ANNOTATION_RANGE_M:
                    continue
                corners = box_corners(p, obj["size"], obj["yaw"])
                if any(corners_in_front(corners, ego_xyz, ego.yaw, c) in (1, 2) for c in CAMERAS):
                    n_dropped += 1   # the converters' 2-D hull would be a LineString (nuscenes-devkit#762)
                    continue
                ann_token = _token("ann", obj["instance"], i, seed)
                obj["anns"].append(ann_token)
                tables["sample_annotation"].append({
                    "token": ann_token, "sample_token": token, "instance_token": obj["instance"],
                    "visibility_token": str(4 if dist < 20 else 3),
                    "attribute_tokens": [attr_token[obj["attr"]]] if obj["attr"] else [],
                    "translation": [float(v) for v in p], "size": list(obj["size"]), "rotation": quat_yaw(obj["yaw"]),
                    "num_lidar_pts": int(max(1, 200 - 4 * dist)), "num_radar_pts": int(max(0, 10 - dist // 4)),
                    "prev": "", "next": ""})
                n_anns += 1
        # link annotations of an instance (the key frames in which it was annotated, in order)
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
                                "description": "synthetic scene written by onlinemap data synth"
                                               + (" (left turn)" if path.turn_start is not None else "")})
        n_samples += samples_per_scene

    tables["map"] = list(map_records.values())
    out = root / version
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (out / f"{name}.json").write_text(json.dumps(rows, indent=0), encoding="utf-8")
    write_map_expansion(root, LOCATIONS, seed, side_roads)
    info = {"dataroot": str(root), "version": version, "scenes": scenes, "samples": n_samples,
            "annotations": n_anns, "seed": seed, "synthetic": True, "writer": "onlinemap data synth",
            "image_size": list(IMAGE_SIZE),
            "turning_scenes": [MINI_SCENES[i] for i in range(1, scenes, 2)] if turns else [],
            "boxes_left_out_two_corners_in_front": n_dropped, "complete": True, "entries": entries}
    (root / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
