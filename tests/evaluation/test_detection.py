"""nuScenes detection metrics through the real devkit, on the synthetic dataset."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from onlinemap.errors import DatasetError, ResultsError
from onlinemap.evaluation.detection import evaluate_detection, to_submission_boxes

from .conftest import VERSION

SHIFT = 0.75  # metres: beyond the 0.5 m threshold, within 1, 2 and 4 m


def _preds(gt_detections, tokens=None):
    tokens = list(gt_detections) if tokens is None else tokens
    return [{"sample_token": t, "model": "test", "detections_3d": copy.deepcopy(gt_detections[t])} for t in tokens]


def test_detection_perfect_predictions_score_one(nusc, synth_root, gt_detections, tmp_path):
    result = evaluate_detection(_preds(gt_detections), synth_root, VERSION, tmp_path, nusc=nusc)
    assert result["mAP"] == pytest.approx(1.0)
    assert result["NDS"] == pytest.approx(1.0)
    for key in ("mATE", "mASE", "mAOE", "mAVE", "mAAE"):
        assert result[key] == pytest.approx(0.0, abs=1e-9), key
    assert all(c["AP"] == pytest.approx(1.0) for c in result["per_class"].values())
    # the devkit leaves velocity/attribute undefined for barriers and cones
    assert result["per_class"]["traffic_cone"]["AOE"] is None
    assert result["per_class"]["barrier"]["AVE"] is None
    assert result["samples"] == len(gt_detections)
    assert (tmp_path / "metrics_summary.json").is_file()


def test_detection_shift_loses_the_half_metre_threshold(nusc, synth_root, gt_detections):
    """Every box moved 0.75 m sideways (perpendicular to the line of sight, so the evaluated range
    barely changes): AP is 0 at 0.5 m and 1 at 1, 2, 4 m, so 0.75 per class; mATE = 0.75;
    NDS = (5 * 0.75 + (1 - 0.75) + 4 * 1) / 10 = 0.8."""
    preds = _preds(gt_detections)
    for p in preds:
        ego = _ego_xy(nusc, p["sample_token"])
        for det in p["detections_3d"]:
            rel = np.asarray(det["center"][:2]) - ego
            side = np.array([-rel[1], rel[0]]) / np.linalg.norm(rel)
            det["center"][0] += SHIFT * side[0]
            det["center"][1] += SHIFT * side[1]
    # premise of the expectation: same-class objects are far apart, so no box can match a neighbour
    for dets in gt_detections.values():
        for i, a in enumerate(dets):
            for b in dets[i + 1:]:
                if a["label"] == b["label"]:
                    assert math.dist(a["center"][:2], b["center"][:2]) > 4.0 + 2 * SHIFT
    result = evaluate_detection(preds, synth_root, VERSION, nusc=nusc)
    for name, cls in result["per_class"].items():
        assert cls["AP_dist"]["0.5"] == pytest.approx(0.0), name
        for d in ("1.0", "2.0", "4.0"):
            assert cls["AP_dist"][d] == pytest.approx(1.0), (name, d)
        assert cls["AP"] == pytest.approx(0.75), name
    assert result["mAP"] == pytest.approx(0.75)
    assert result["mATE"] == pytest.approx(SHIFT)
    assert result["NDS"] == pytest.approx((5 * 0.75 + (1 - SHIFT) + 4 * 1.0) / 10)


def test_detection_empty_predictions_score_zero(nusc, synth_root, gt_detections):
    preds = [{"sample_token": t, "model": "test", "detections_3d": []} for t in gt_detections]
    result = evaluate_detection(preds, synth_root, VERSION, nusc=nusc)
    assert result["mAP"] == 0.0
    assert result["NDS"] == 0.0  # every TP error is 1 when nothing is matched
    assert result["pred_boxes"] == 0


def test_detection_restricted_to_the_run_samples(nusc, synth_root, gt_detections):
    """Only the predicted samples' GT counts: perfect boxes on 5 samples still give mAP 1."""
    tokens = list(gt_detections)[3:8]
    result = evaluate_detection(_preds(gt_detections, tokens), synth_root, VERSION, nusc=nusc)
    assert result["samples"] == 5
    assert result["mAP"] == pytest.approx(1.0)
    assert result["gt_boxes"] == sum(len(gt_detections[t]) for t in tokens)


def test_detection_ego_frame_boxes_are_moved_to_global(nusc, gt_detections):
    token = next(iter(gt_detections))
    det = gt_detections[token][0]
    sample = nusc.get("sample", token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    from pyquaternion import Quaternion

    q = Quaternion(pose["rotation"])
    local = q.inverse.rotate(np.asarray(det["center"]) - pose["translation"])
    ego_det = dict(det, center=list(local), yaw=det["yaw"] - q.yaw_pitch_roll[0], frame="ego", velocity=[None, None])
    box = to_submission_boxes(nusc, {"sample_token": token, "detections_3d": [ego_det]})[0]
    assert box["translation"] == pytest.approx(det["center"], abs=1e-6)
    assert all(math.isnan(v) for v in box["velocity"])   # unknown stays unknown, as the devkit's GT
    assert Quaternion(box["rotation"]).yaw_pitch_roll[0] == pytest.approx(det["yaw"], abs=1e-9)


def test_detection_unknown_token_and_no_predictions_raise(nusc, synth_root):
    with pytest.raises(DatasetError, match="not in"):
        evaluate_detection([{"sample_token": "f" * 32, "model": "t", "detections_3d": []}], synth_root, VERSION,
                           nusc=nusc)
    with pytest.raises(ResultsError, match="no predictions"):
        evaluate_detection([], synth_root, VERSION, nusc=nusc)


def _ego_xy(nusc, token):
    sample = nusc.get("sample", token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    return np.asarray(pose["translation"][:2])


def test_detection_ego_boxes_on_a_tilted_pose_keep_the_full_rotation(nusc, gt_detections):
    """On a pitched and rolled ego pose an ego-frame box's global orientation is pose * yaw (what
    mmdet3d's lidar_nusc_box_to_global does with the devkit's Box); adding the pose's yaw alone is
    off by more than 1e-4 rad here."""
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    token = next(iter(gt_detections))
    sample = nusc.get("sample", token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    saved = pose["rotation"]
    q = Quaternion(saved) * Quaternion(axis=[0, 1, 0], angle=math.radians(3)) * Quaternion(axis=[1, 0, 0],
                                                                                         angle=math.radians(2))
    pose["rotation"] = list(q.elements)
    try:
        det = {"label": "car", "score": 0.5, "center": [8.0, 3.0, 0.5], "size": [1.9, 4.6, 1.7], "yaw": 0.7,
               "velocity": [2.0, 0.5], "frame": "ego"}
        box = to_submission_boxes(nusc, {"sample_token": token, "detections_3d": [det]})[0]
    finally:
        pose["rotation"] = saved
    ref = Box(det["center"], det["size"], Quaternion(axis=[0, 0, 1], angle=det["yaw"]), velocity=(2.0, 0.5, 0.0))
    ref.rotate(q)
    ref.translate(np.asarray(pose["translation"]))
    assert box["translation"] == pytest.approx(list(ref.center), abs=1e-9)
    assert box["velocity"] == pytest.approx(list(ref.velocity[:2]), abs=1e-9)
    from nuscenes.eval.common.utils import quaternion_yaw   # the yaw the devkit's AOE compares

    got_yaw = quaternion_yaw(Quaternion(box["rotation"]))
    assert got_yaw == pytest.approx(quaternion_yaw(ref.orientation), abs=1e-12)
    assert abs(got_yaw - (det["yaw"] + q.yaw_pitch_roll[0])) > 1e-4   # the yaw-only sum the old code used


def test_detection_unknown_velocity_is_left_out_of_mave(nusc, synth_root, gt_detections):
    """GT-equal boxes, every other car with a null velocity: those carry NaN, which the devkit's
    cummean leaves out, so the car AVE stays that of the exact ones (0); filled with 0 (the old
    rule) they would count the GT speeds of moving cars."""
    preds = _preds(gt_detections)
    moving, n = 0, 0
    for p in preds:
        for det in p["detections_3d"]:
            if det["label"] == "car" and det["velocity"][0] is not None:
                n += 1
                if n % 2:
                    moving += np.hypot(*det["velocity"]) > 0.5
                    det["velocity"] = [None, None]
    assert moving > 0
    result = evaluate_detection(preds, synth_root, VERSION, nusc=nusc)
    assert result["per_class"]["car"]["AVE"] == pytest.approx(0.0, abs=1e-6)
    assert result["per_class"]["car"]["AP"] == pytest.approx(1.0)
