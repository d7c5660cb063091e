"""Evaluation fixtures: the synthetic dataset opened once, and predictions equal to its ground truth.

The "perfect" predictions are read straight from the dataset's own tables through the devkit (boxes)
and from the map-expansion GT builder (polylines); the tests then perturb them by known amounts.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

VERSION = "v1.0-mini"


@pytest.fixture(scope="session")
def nusc(synth_root: Path):
    from onlinemap.evaluation.detection import load_nuscenes

    return load_nuscenes(synth_root, VERSION)


@pytest.fixture(scope="session")
def map_gt(nusc, synth_root):
    from onlinemap.evaluation.mapping import MapGroundTruth

    return MapGroundTruth(nusc, synth_root)


@pytest.fixture(scope="session")
def gt_detections(nusc) -> dict[str, list[dict]]:
    """sample token -> its GT annotations as standard-schema detections (global frame)."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    out = {}
    for sample in nusc.sample:
        dets = []
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            name = category_to_detection_name(ann["category_name"])
            if name is None:
                continue
            vel = nusc.box_velocity(ann_token)[:2]
            attrs = [nusc.get("attribute", t)["name"] for t in ann["attribute_tokens"]]
            dets.append({"label": name, "score": 0.9, "center": list(ann["translation"]), "size": list(ann["size"]),
                         "yaw": Quaternion(ann["rotation"]).yaw_pitch_roll[0],
                         "velocity": [None if math.isnan(v) else float(v) for v in vel],
                         "attribute": attrs[0] if attrs else None, "frame": "global"})
        out[sample["token"]] = dets
    return out


@pytest.fixture(scope="session")
def gt_polylines(nusc, map_gt) -> dict[str, dict]:
    """sample token -> {class: [polyline arrays in the ego frame]} from the map expansion."""
    return {s["token"]: map_gt.polylines(s["token"]) for s in nusc.sample}
