"""MapTR Chamfer AP and the map-expansion GT builder, on the synthetic dataset."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from shapely.geometry import LineString

from onlinemap.data.synth_map import DIVIDER_YS, ROAD_Y
from onlinemap.errors import DatasetError
from onlinemap.evaluation.mapping import (CLASSES, average_precision, chamfer_matrix, evaluate_mapping,
                                          resample_polyline)

from .conftest import VERSION


def _preds(gt_polylines, transform=None):
    out = []
    for token, by_cls in gt_polylines.items():
        elements = []
        for cls, lines in by_cls.items():
            for line in lines:
                pts = transform(cls, line) if transform else line
                elements.append({"label": cls, "score": 0.8, "points": np.asarray(pts).tolist(), "frame": "ego"})
        out.append({"sample_token": token, "model": "test", "map_elements": elements})
    return out


def _to_global(nusc, token, pts):
    from pyquaternion import Quaternion

    sample = nusc.get("sample", token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    rot = Quaternion(pose["rotation"]).rotation_matrix[:2, :2]
    return np.asarray(pts) @ rot.T + np.asarray(pose["translation"][:2])


def test_map_gt_follows_the_synthetic_road(nusc, gt_polylines):
    """Dividers lie on y = 95/100/105, boundaries on the road edges y = 90/110 (global), and
    everything is inside MapTR's window: |x| <= 30 m along, |y| <= 15 m across the LiDAR."""
    counts = {c: 0 for c in CLASSES}
    for token, by_cls in gt_polylines.items():
        for cls, lines in by_cls.items():
            counts[cls] += len(lines)
            for line in lines:
                g = _to_global(nusc, token, line)
                if cls == "divider":
                    ys = [y for v in DIVIDER_YS.values() for y in v]
                    assert np.min(np.abs(g[:, 1:2] - np.array(ys)[None]), axis=1).max() < 1e-6
                elif cls == "boundary":
                    assert np.min(np.abs(g[:, 1:2] - np.array(ROAD_Y)[None]), axis=1).max() < 1e-6
                # ego frame: LiDAR is 0.94 m ahead of the ego origin in the synthetic calibration
                assert np.all(np.abs(line[:, 0] - 0.94) <= 30.2 + 1e-6)
                assert np.all(np.abs(line[:, 1]) <= 15.2 + 1e-6)
    assert counts["divider"] > 0 and counts["ped_crossing"] > 0
    assert counts["boundary"] == 2 * len(gt_polylines)  # two road edges in every window


def test_map_perfect_predictions_score_one(nusc, synth_root, gt_polylines, map_gt):
    result = evaluate_mapping(_preds(gt_polylines), synth_root, VERSION, nusc=nusc, ground_truth=map_gt)
    assert result["mAP"] == pytest.approx(1.0)
    for cls in CLASSES:
        assert result["AP"][cls] == pytest.approx(1.0)
        assert result["num_gts"][cls] == result["num_preds"][cls] > 0


def _normal_shift(line, d):
    direction = line[-1] - line[0]
    normal = np.array([-direction[1], direction[0]]) / np.linalg.norm(direction)
    return line + d * normal


def _sample(pts, n=100):
    ls = LineString(pts)
    return np.array([ls.interpolate(s).coords[0] for s in np.linspace(0, ls.length, n)])


def _chamfer_sampled(a, b):
    d = cdist(a, b)
    return (d.min(1).mean() + d.min(0).mean()) / 2


def _brute_chamfer(a, b, n=100):
    return _chamfer_sampled(_sample(a, n), _sample(b, n))


def test_map_shift_loses_the_half_metre_threshold(nusc, synth_root, gt_polylines, map_gt):
    """Straight dividers and boundaries moved 0.7 m along their normal (Chamfer exactly 0.7) and
    crossings 0.9 m along the road: every prediction is within 1.0 m of its own GT and beyond
    0.5 m, and > 1.5 m from every other GT (checked below with shapely + scipy), so AP is 0 at
    0.5 m and 1 at 1.0 and 1.5 m: 2/3 per class and mAP 2/3."""
    def shift(cls, line):
        if cls == "ped_crossing":
            return line + np.array([0.9, 0.0])
        return _normal_shift(line, 0.7)

    for token, by_cls in gt_polylines.items():
        for cls, lines in by_cls.items():
            gts = [_sample(line) for line in lines]
            for i, line in enumerate(lines):
                moved = _sample(shift(cls, line))
                own = _chamfer_sampled(moved, gts[i])
                assert 0.5 < own <= 1.0, (cls, own)
                for j, other in enumerate(gts):
                    if j != i:
                        assert _chamfer_sampled(moved, other) > 1.5
    result = evaluate_mapping(_preds(gt_polylines, shift), synth_root, VERSION, nusc=nusc, ground_truth=map_gt)
    for cls in CLASSES:
        assert result["AP_thr"][cls] == pytest.approx({"0.5": 0.0, "1.0": 1.0, "1.5": 1.0}), cls
    assert result["mAP"] == pytest.approx(2 / 3)


def test_map_empty_predictions_score_zero(nusc, synth_root, gt_polylines, map_gt):
    preds = [{"sample_token": t, "model": "test", "map_elements": []} for t in gt_polylines]
    result = evaluate_mapping(preds, synth_root, VERSION, nusc=nusc, ground_truth=map_gt)
    assert result["mAP"] == 0.0
    assert all(result["AP"][c] == 0.0 for c in CLASSES)


def test_map_low_score_false_positive_lowers_ap_as_defined(nusc, synth_root, gt_polylines, map_gt):
    """One sample: one true divider at score 0.8 plus one far-away divider at 0.9 (ranked first).
    Precision-recall points (0, 0) then (1, 0.5): area AP = 0.5 at every threshold."""
    token, by_cls = next((t, c) for t, c in gt_polylines.items() if len(c["divider"]) == 1) if any(
        len(c["divider"]) == 1 for c in gt_polylines.values()) else (None, None)
    if token is None:  # fall back: every divider of the first sample, each with a far-away decoy
        token, by_cls = next(iter(gt_polylines.items()))
    elements = [{"label": "divider", "score": 0.8, "points": line.tolist(), "frame": "ego"}
                for line in by_cls["divider"]]
    elements += [{"label": "divider", "score": 0.9, "points": [[100.0 + i, 100.0], [110.0 + i, 100.0]],
                  "frame": "ego"} for i in range(len(by_cls["divider"]))]
    result = evaluate_mapping([{"sample_token": token, "model": "t", "map_elements": elements}], synth_root,
                              VERSION, nusc=nusc, ground_truth=map_gt)
    assert result["AP"]["divider"] == pytest.approx(0.5)


def test_chamfer_and_resampling_match_brute_force():
    rng = np.random.default_rng(1)
    lines = [np.cumsum(rng.normal(0, 2, size=(rng.integers(2, 8), 2)), axis=0) for _ in range(5)]
    res = np.array([resample_polyline(x) for x in lines])
    got = chamfer_matrix(res[:3], res[3:])
    for i in range(3):
        for j in range(2):
            assert got[i, j] == pytest.approx(_brute_chamfer(lines[i], lines[3 + j]), abs=1e-9)
    # evenly spaced by arc length, ends kept
    r = resample_polyline(np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 1.0]]), 5)
    np.testing.assert_allclose(r, [[0, 0], [1, 0], [2, 0], [3, 0], [3, 1]], atol=1e-12)


def test_average_precision_area_mode_by_hand():
    # ranked tp, fp, tp with 4 GTs: recall .25 .25 .5, precision 1 .5 .667 -> .25 * 1 + .25 * 2/3
    ap = average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), 4)
    assert ap == pytest.approx(0.25 + 0.25 * 2 / 3)


def test_map_missing_expansion_is_a_dataset_error(nusc, tmp_path, gt_polylines):
    from onlinemap.evaluation.mapping import MapGroundTruth

    with pytest.raises(DatasetError, match="map expansion"):
        MapGroundTruth(nusc, tmp_path).polylines(next(iter(gt_polylines)))
