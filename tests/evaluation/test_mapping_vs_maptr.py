"""onlinemap's map AP and map GT against MapTR's own code (hustvl/MapTR @ a6872d8d, ``main``, from
../shared/upstream), run in the oracle venv under shapely 1.8.5 as MapTR pins it
(tests/evaluation/oracles/maptr_map.py).

The metric cases are random per-sample GT and predictions in MapTR's LiDAR patch frame; onlinemap
gets them moved to the ego frame with the adapters' planar lidar2ego (a tilted LiDAR), so the test
also checks that the conversion keeps MapTR's numbers. Cases include uneven 100-point predictions
(resampled by MapTR ``main``), closed crossing rings, false positives and classes without GT or
without predictions. Scores are distinct: MapTR's sort is not stable, so tied scores have no
defined MapTR order (onlinemap breaks ties by input order; see docs/evaluation.md).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from pyquaternion import Quaternion

from onlinemap.evaluation.mapping import CLASSES, evaluate_mapping, lidar_bev_to_ego

from .conftest import run_oracle
from .scenes import LIDAR_TOP_ROTATION, LIDAR_TOP_TRANSLATION, Tables, tilt


def _polyline(rng, closed=False):
    n = int(rng.integers(2, 12))
    start = rng.uniform([-14, -29], [14, 29])
    steps = rng.normal(0, 3.0, (n - 1, 2))
    pts = np.vstack([start, start + np.cumsum(steps, axis=0)])
    if closed:
        pts = np.vstack([pts, pts[:1]])
    return pts


def _uneven_100(rng, line):
    """100 points on ``line``: 96 in its first tenth, 4 spread over the rest (MapTR main resamples
    them by arc length anyway; used as they are, most of the line would have no point near it)."""
    seg = np.hypot(*np.diff(line, axis=0).T)
    cum = np.concatenate([[0], np.cumsum(seg)])
    s = cum[-1] * np.concatenate([np.sort(rng.uniform(0, 0.1, 96)), [0.4, 0.6, 0.8, 1.0]])
    s[0] = 0.0
    return np.stack([np.interp(s, cum, line[:, 0]), np.interp(s, cum, line[:, 1])], axis=1)


def _random_case(rng, n_samples=12):
    gts, preds = [], []
    scores = iter(rng.permutation(100000) / 100000.0 + 1e-6)
    for i in range(n_samples):
        g, p = [], []
        for c in range(3):
            if (i + c) % 5 == 0 and c == 1:
                continue                                   # some samples without crossings at all
            for _ in range(int(rng.integers(0, 5))):
                line = _polyline(rng, closed=(c == 1 and rng.random() < 0.6))
                g.append((line, c))
                if rng.random() < 0.8:                     # a detection of it, shifted 0..2 m
                    det = line + rng.normal(0, rng.choice([0.1, 0.4, 1.0, 2.0]), (1, 2))
                    if rng.random() < 0.3:
                        det = _uneven_100(rng, det)
                    elif rng.random() < 0.3:
                        det = det[::-1]                    # reversed direction
                    p.append((det, c, next(scores)))
            for _ in range(int(rng.integers(0, 3))):       # false positives
                p.append((_polyline(rng), c, next(scores)))
        gts.append(g)
        preds.append(p)
    return gts, preds


class _GT:
    def __init__(self, per_token):
        self.per_token = per_token

    def polylines(self, token):
        return self.per_token[token]


def test_map_ap_equals_maptr_on_random_cases(upstream, oracle_python):
    rng = np.random.default_rng(19)
    for k in range(4):
        gts, preds = _random_case(rng)
        if k == 3:   # a class without any GT in the whole evaluation (boundary): MapTR's table shows 0
            gts = [[(l, c) for l, c in g if c != 2] for g in gts]
        tokens = [f"{k}{i:031x}" for i in range(len(gts))]
        l2e = np.eye(4)
        l2e[:3, :3] = (Quaternion(LIDAR_TOP_ROTATION) * tilt(rng, 3.0)).rotation_matrix
        l2e[:3, 3] = LIDAR_TOP_TRANSLATION
        rot, trans = lidar_bev_to_ego(l2e)
        ego = lambda pts: np.asarray(pts) @ rot.T + trans  # noqa: E731
        ref = run_oracle(oracle_python, "maptr_map.py", [upstream["MapTR"], "metric"], {
            "classes": list(CLASSES),
            "annotations": [{"vectors": [{"pts": l.tolist(), "type": c} for l, c in g]} for g in gts],
            "gen_results": [{"vectors": [{"pts": l.tolist(), "type": c, "confidence_level": s} for l, c, s in p]}
                            for p in preds]})
        ours = evaluate_mapping(
            [{"sample_token": t, "map_elements": [{"label": CLASSES[c], "score": s, "points": ego(l).tolist()}
                                                  for l, c, s in p]} for t, p in zip(tokens, preds)],
            None, "v1.0-mini", nusc=Tables({"sample": [{"token": t} for t in tokens]}),
            ground_truth=_GT({t: {cls: [ego(l) for l, c in g if c == j] for j, cls in enumerate(CLASSES)}
                              for t, g in zip(tokens, gts)}))
        for j, cls in enumerate(CLASSES):
            for i, thr in enumerate(("0.5", "1.0", "1.5")):
                want = ref["cls_aps"][i][j]
                got = ours["AP_thr"][cls][thr]
                assert (0.0 if got is None else got) == pytest.approx(want, abs=1e-6), (k, cls, thr)
        assert ours["mAP_maptr"] == pytest.approx(ref["mAP"], abs=1e-6)
        if k == 3:
            assert ours["AP"]["boundary"] is None and ours["classes_without_gt"] == ["boundary"]
            assert ours["mAP"] == pytest.approx(np.mean(ref["AP"][:2]), abs=1e-6)


def test_map_ap_resamples_100_point_predictions_as_maptr_main():
    """A prediction of exactly 100 points bunched at one end of a GT line is resampled by arc length
    (MapTR main); used as is (the maptrv2 rule) its Chamfer distance would be about 2 m."""
    gt = np.array([[0.0, 0.0], [20.0, 0.0]])
    s = np.concatenate([np.linspace(0.0, 2.0, 99), [20.0]])
    pred = np.stack([s, np.zeros(100)], axis=1)
    tokens = ["a" * 32]
    result = evaluate_mapping([{"sample_token": tokens[0], "map_elements": [
        {"label": "divider", "score": 0.9, "points": pred.tolist()}]}], None, "v1.0-mini",
        nusc=Tables({"sample": [{"token": tokens[0]}]}),
        ground_truth=_GT({tokens[0]: {"divider": [gt], "ped_crossing": [], "boundary": []}}))
    assert result["AP"]["divider"] == pytest.approx(1.0)
    assert result["mAP_maptr"] == pytest.approx(1 / 3)      # crossings and boundaries count 0 in MapTR's table
    assert result["mAP"] == pytest.approx(1.0)


def _maptr_dataroot(tmp_path, synth_root):
    """The synthetic dataset's maps where MapTR's VectorizedLocalMap looks: it opens all four
    locations, so a location the synthetic data does not use gets a copy of one it does."""
    import shutil

    have = sorted((synth_root / "maps" / "expansion").glob("*.json"))
    (tmp_path / "maps" / "expansion").mkdir(parents=True)
    for loc in ("boston-seaport", "singapore-hollandvillage", "singapore-onenorth", "singapore-queenstown"):
        src = synth_root / "maps" / "expansion" / f"{loc}.json"
        shutil.copy(src if src.is_file() else have[0], tmp_path / "maps" / "expansion" / f"{loc}.json")
    return tmp_path


def _poses(rng, nusc, map_gt, n_random):
    """The dataset's own LiDAR poses, then random ones on its map: any heading, tilted ego and LiDAR."""
    poses = [map_gt.sample_frames(s["token"]) for s in nusc.sample[::3]]
    location, l2g0, _ = poses[0]
    for _ in range(n_random):
        e2g = np.eye(4)
        e2g[:3, :3] = (Quaternion(axis=[0, 0, 1], angle=rng.uniform(-math.pi, math.pi)) * tilt(rng, 3.0)).rotation_matrix
        e2g[:3, 3] = l2g0[:3, 3] + [rng.uniform(-60, 60), rng.uniform(-8, 8), 0.0]
        l2e = np.eye(4)
        l2e[:3, :3] = (Quaternion(LIDAR_TOP_ROTATION) * tilt(rng, 1.0)).rotation_matrix
        l2e[:3, 3] = LIDAR_TOP_TRANSLATION
        poses.append((location, e2g @ l2e, l2e))
    return poses


def test_map_gt_equals_maptrs_vectorized_local_map(upstream, oracle_python, nusc, synth_root, tmp_path):
    """Same instances, same direction, same start vertex: after resampling to 100 points every GT
    polyline equals MapTR's to 1e-6 m (ring starts decide where the 100 points fall)."""
    from onlinemap.evaluation.mapping import MapGroundTruth, resample_polyline

    dataroot = _maptr_dataroot(tmp_path, synth_root)
    ours_gt = MapGroundTruth(nusc, dataroot)
    rng = np.random.default_rng(14)
    poses = _poses(rng, nusc, ours_gt, n_random=30)
    ref = run_oracle(oracle_python, "maptr_map.py", [upstream["MapTR"], "gt"], {
        "dataroot": str(dataroot),
        "poses": [{"location": loc, "lidar2global_translation": l2g[:3, 3].tolist(),
                   "lidar2global_rotation": list(Quaternion(matrix=l2g[:3, :3], atol=1e-6).elements)}
                  for loc, l2g, _ in poses]})
    counts = {c: 0 for c in CLASSES}
    for i, ((loc, l2g, l2e), want) in enumerate(zip(poses, ref)):
        ours_gt.sample_frames = lambda token, _p=(loc, l2g, l2e): _p
        got = ours_gt.polylines("any")
        rot, trans = lidar_bev_to_ego(l2e)
        for j, cls in enumerate(CLASSES):
            theirs = sorted((resample_polyline(np.asarray(v["pts"]) @ rot.T + trans) for v in want if v["type"] == j),
                            key=lambda a: tuple(np.round(a[0], 3)))
            mine = sorted((resample_polyline(g) for g in got[cls]), key=lambda a: tuple(np.round(a[0], 3)))
            assert len(mine) == len(theirs), (i, cls)
            for a, b in zip(mine, theirs):
                np.testing.assert_allclose(a, b, atol=1e-6, err_msg=f"pose {i} {cls}")
            counts[cls] += len(mine)
    assert counts["ped_crossing"] >= 20 and counts["boundary"] >= 20 and counts["divider"] >= 20, counts


def _rect_xy(rng, centre, length, width, yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[length / 2, width / 2], [-length / 2, width / 2], [-length / 2, -width / 2], [length / 2, -width / 2]])
    return local @ np.array([[c, s], [-s, c]]) + centre


def _hard_map(rng) -> dict:
    """A map expansion (v1.3 layers) of overlapping, rotated road segments, lanes sticking out of
    them, crossings overlapping each other and wandering dividers, around (500, 500)."""
    layers = {k: [] for k in ("node", "line", "polygon", "drivable_area", "road_segment", "road_block", "lane",
                              "ped_crossing", "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider",
                              "traffic_light", "lane_connector")}
    count = iter(range(10 ** 6))
    tok = lambda kind: f"{kind[:4]}{next(count):028d}"  # noqa: E731

    def polygon(xy):
        t = tok("poly")
        nodes = []
        for x, y in xy:
            nodes.append(tok("node"))
            layers["node"].append({"token": nodes[-1], "x": float(x), "y": float(y)})
        layers["polygon"].append({"token": t, "exterior_node_tokens": nodes, "holes": []})
        return t

    def line(xy):
        t = tok("line")
        nodes = []
        for x, y in xy:
            nodes.append(tok("node"))
            layers["node"].append({"token": nodes[-1], "x": float(x), "y": float(y)})
        layers["line"].append({"token": t, "node_tokens": nodes})
        return t

    centre = np.array([500.0, 500.0])
    da = tok("drivable")
    layers["drivable_area"].append({"token": da, "polygon_tokens": [polygon(_rect_xy(rng, centre, 400, 400, 0.0))]})
    for _ in range(14):
        c = centre + rng.uniform(-50, 50, 2)
        yaw = rng.uniform(0, math.pi)
        seg = tok("seg")
        layers["road_segment"].append({"token": seg, "polygon_token": polygon(_rect_xy(rng, c, rng.uniform(20, 90),
                                                                                       rng.uniform(6, 20), yaw)),
                                       "is_intersection": False, "drivable_area_token": da})
        for k in range(int(rng.integers(1, 4))):
            lc = c + rng.normal(0, 4, 2)
            layers["lane"].append({"token": tok("lane"), "polygon_token": polygon(_rect_xy(
                rng, lc, rng.uniform(10, 60), rng.uniform(3, 5), yaw + rng.normal(0, 0.05))), "lane_type": "CAR",
                "from_edge_line_token": "", "to_edge_line_token": "", "left_lane_divider_segments": [],
                "right_lane_divider_segments": []})
        for k in range(int(rng.integers(0, 3))):
            pc = c + rng.normal(0, 6, 2)
            layers["ped_crossing"].append({"token": tok("ped"), "road_segment_token": seg, "polygon_token": polygon(
                _rect_xy(rng, pc, rng.uniform(6, 20), rng.uniform(2, 5), yaw + math.pi / 2 + rng.normal(0, 0.3)))})
        for layer in ("road_divider", "lane_divider"):
            start = c + rng.normal(0, 5, 2)
            pts = start + np.cumsum(rng.normal(0, 6, (int(rng.integers(2, 7)), 2)), axis=0)
            rec = {"token": tok(layer), "line_token": line(np.vstack([start, pts]))}
            rec.update({"road_segment_token": seg} if layer == "road_divider" else {"lane_divider_segments": []})
            layers[layer].append(rec)
    return {"version": "1.3", "canvas_edge": [1000.0, 1000.0], **layers, "arcline_path_3": {}, "connectivity": {}}


def test_map_gt_equals_maptr_on_a_harder_random_map(upstream, oracle_python, tmp_path):
    """Overlapping rotated roads, lanes and crossings seen from 40 random tilted poses: every GT
    instance equals MapTR's after resampling, zero-area holes included (MapTR keeps them, so do we)."""
    import json

    from onlinemap.evaluation.mapping import MapGroundTruth, resample_polyline

    rng = np.random.default_rng(1)
    (tmp_path / "maps" / "expansion").mkdir(parents=True)
    text = json.dumps(_hard_map(rng))
    for loc in ("boston-seaport", "singapore-hollandvillage", "singapore-onenorth", "singapore-queenstown"):
        (tmp_path / "maps" / "expansion" / f"{loc}.json").write_text(text)
    ours_gt = MapGroundTruth(None, tmp_path)
    poses = []
    for _ in range(40):
        e2g = np.eye(4)
        e2g[:3, :3] = (Quaternion(axis=[0, 0, 1], angle=rng.uniform(-math.pi, math.pi)) * tilt(rng, 3.0)).rotation_matrix
        e2g[:3, 3] = [500.0 + rng.uniform(-40, 40), 500.0 + rng.uniform(-40, 40), 0.0]
        l2e = np.eye(4)
        l2e[:3, :3] = (Quaternion(LIDAR_TOP_ROTATION) * tilt(rng, 1.0)).rotation_matrix
        l2e[:3, 3] = LIDAR_TOP_TRANSLATION
        poses.append(("boston-seaport", e2g @ l2e, l2e))
    ref = run_oracle(oracle_python, "maptr_map.py", [upstream["MapTR"], "gt"], {
        "dataroot": str(tmp_path),
        "poses": [{"location": loc, "lidar2global_translation": l2g[:3, 3].tolist(),
                   "lidar2global_rotation": list(Quaternion(matrix=l2g[:3, :3], atol=1e-6).elements)}
                  for loc, l2g, _ in poses]})
    counts = {c: 0 for c in CLASSES}
    mismatched = []
    for i, ((loc, l2g, l2e), want) in enumerate(zip(poses, ref)):
        ours_gt.sample_frames = lambda token, _p=(loc, l2g, l2e): _p
        got = ours_gt.polylines("any")
        rot, trans = lidar_bev_to_ego(l2e)
        for j, cls in enumerate(CLASSES):
            key = lambda a: (len(a), tuple(np.round(a[0], 2)), tuple(np.round(a[-1], 2)))  # noqa: E731
            theirs = sorted((np.asarray(v["pts"]) @ rot.T + trans for v in want if v["type"] == j), key=key)
            mine = sorted(got[cls], key=key)
            counts[cls] += len(mine)
            if len(mine) != len(theirs):
                mismatched.append((i, cls, len(mine), len(theirs)))
                continue
            for a, b in zip(mine, theirs):
                if not np.allclose(resample_polyline(a), resample_polyline(b), atol=1e-6):
                    mismatched.append((i, cls, "points"))
    assert not mismatched, (mismatched[:10], counts)
    assert min(counts.values()) >= 40, counts
