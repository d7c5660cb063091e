"""Conversion tests for envs/TopoMLP/demo.py (OpenLane-V2 lanes, traffic elements, topology).

The raw input mimics ``TopoMLP.forward_test`` for one frame (numpy arrays, as the heads'
get_bboxes/get_topology return them): ``[{'pred_lc': (lanes (N, 3K), scores (N, 1)),
'pred_te': (boxes (M, 5) = x1, y1, x2, y2, attribute, scores (M,)), 'pred_topology_lclc': (N, N),
'pred_topology_lcte': (N, M)}]``. mmcv/mmdet3d/openlanev2 are not needed.
"""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
from tests.envs.helpers import FakeLiDARBoxes, load_adapter
from tests.envs.helpers import assert_valid as _validate
from tests.envs.helpers import quat_z as _quat_z

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "envs" / "TopoMLP" / "demo.py"


demo = load_adapter("TopoMLP")
FRAME = ("val", "10000", "315967376899927209")


def _raw():
    # three lanes, K = 4 control points each; lane 0 is a straight line along x with evenly spaced controls
    lanes = np.array([[0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0],
                      [0, 1, 0, 5, 1, 0, 10, 4, 0, 15, 9, 0.5],
                      [-5, -2, 0, -4, -2, 0, -3, -2, 0, -2, -2, 0]], dtype=np.float32)
    lane_scores = np.array([[0.2], [0.9], [0.5]], dtype=np.float32)
    te = np.array([[100, 50, 140, 120, 7], [300, 10, 320, 40, 1]], dtype=np.float32)
    te_scores = np.array([0.8, 0.3], dtype=np.float32)
    lclc = np.arange(9, dtype=np.float32).reshape(3, 3) / 10.0   # value encodes (row, col) = 0.1 * (3r + c)
    lcte = np.array([[0.01, 0.02], [0.11, 0.12], [0.21, 0.22]], dtype=np.float32)
    return [{"pred_lc": (lanes, lane_scores), "pred_te": (te, te_scores),
             "pred_topology_lclc": lclc, "pred_topology_lcte": lcte}]


def test_frame_id_matches_schema_token_pattern():
    token = demo.frame_id(FRAME)
    assert token == "val_10000_315967376899927209"
    assert demo.frame_index([FRAME, ("val", "10000", "1")]) == {token: 0, "val_10000_1": 1}


def test_lanes_sampled_from_bezier_controls():
    pred = demo.convert_topology(_raw(), demo.frame_id(FRAME))
    lanes = pred["topology"]["lanes"]
    straight = [lane for lane in lanes if lane["score"] == pytest.approx(0.2)][0]
    assert len(straight["points"]) == 11
    # evenly spaced collinear controls 0..3 -> x(t) = 3 t
    assert [p[0] for p in straight["points"]] == pytest.approx([3 * i / 10 for i in range(11)], abs=1e-6)
    curved = [lane for lane in lanes if lane["score"] == pytest.approx(0.9)][0]
    assert curved["points"][0] == pytest.approx([0, 1, 0])        # Bezier passes through the end controls
    assert curved["points"][-1] == pytest.approx([15, 9, 0.5])
    mid = curved["points"][5]                                     # t = 0.5: (P0 + 3 P1 + 3 P2 + P3) / 8
    assert mid == pytest.approx([(0 + 15 + 30 + 15) / 8, (1 + 3 + 12 + 9) / 8, 0.5 / 8], abs=1e-5)


def test_matrices_follow_the_lane_order():
    pred = demo.convert_topology(_raw(), demo.frame_id(FRAME))
    topo = pred["topology"]
    order = [1, 2, 0]  # original lane indices sorted by descending score 0.9, 0.5, 0.2
    assert [lane["score"] for lane in topo["lanes"]] == pytest.approx([0.9, 0.5, 0.2])
    for a, i in enumerate(order):
        for b, j in enumerate(order):
            assert topo["lane_lane"][a][b] == pytest.approx(0.1 * (3 * i + j))
        assert topo["lane_traffic"][a] == pytest.approx([0.01 + 0.1 * i, 0.02 + 0.1 * i])
    assert [lane["id"] for lane in topo["lanes"]] == [1000, 1001, 1002]


def test_traffic_elements_boxes_and_labels():
    pred = demo.convert_topology(_raw(), demo.frame_id(FRAME))
    tes = pred["topology"]["traffic_elements"]
    assert [t["label"] for t in tes] == ["no_left_turn", "red"]
    assert tes[0]["box"] == pytest.approx([100, 50, 140, 120])
    assert [t["id"] for t in tes] == [2000, 2001]
    _validate(pred)


def test_thresholds_and_top_k_keep_matrices_consistent():
    pred = demo.convert_topology(_raw(), demo.frame_id(FRAME),
                                 options={"max_lanes": 2, "te_score_threshold": 0.5})
    topo = pred["topology"]
    assert len(topo["lanes"]) == 2 and len(topo["traffic_elements"]) == 1
    assert [len(r) for r in topo["lane_lane"]] == [2, 2]
    assert topo["lane_traffic"] == [pytest.approx([0.11]), pytest.approx([0.21])]
    _validate(pred)


def test_empty_frame_and_bad_shapes():
    empty = [{"pred_lc": (np.zeros((0, 12)), np.zeros((0, 1))), "pred_te": (np.zeros((0, 5)), np.zeros((0,))),
              "pred_topology_lclc": np.zeros((0, 0)), "pred_topology_lcte": np.zeros((0, 0))}]
    pred = demo.convert_topology(empty, "val_1_2")
    assert pred["topology"] == {"lanes": [], "traffic_elements": [], "lane_lane": [], "lane_traffic": []}
    _validate(pred)
    bad = _raw()
    bad[0]["pred_topology_lcte"] = np.zeros((3, 3))
    with pytest.raises(ValueError):
        demo.convert_topology(bad, "val_1_2")


def test_adapter_file_is_py37_and_stdlib_only_at_module_level():
    tree = ast.parse(DEMO.read_text(), feature_version=(3, 7))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add((node.module or "").split(".")[0])
    assert top <= {"math", "os", "sys", "re", "json"}


def _full_raw(n=300, m=100, seed=0):
    """A frame the size TopoMLP emits: every lane query (300) and traffic query (100), random scores."""
    rng = np.random.default_rng(seed)
    lanes = rng.uniform(-50, 50, size=(n, 12)).astype(np.float32)
    return [{"pred_lc": (lanes, rng.random((n, 1), dtype=np.float32)),
             "pred_te": (np.hstack([rng.uniform(0, 1500, (m, 4)), rng.integers(0, 13, (m, 1))]).astype(np.float32),
                         rng.random(m, dtype=np.float32)),
             "pred_topology_lclc": rng.random((n, n), dtype=np.float32),
             "pred_topology_lcte": rng.random((n, m), dtype=np.float32)}]


def test_default_output_is_the_top_lanes_and_elements_with_packed_matrices():
    from onlinemap.evaluation.topology import topology_matrices

    raw = _full_raw()
    full = demo.convert_topology(raw, "val_1_2", options={"max_lanes": 0, "max_traffic_elements": 0,
                                                           "pack_matrices_above": None})
    pred = demo.convert_topology(raw, "val_1_2")
    full_bytes, pred_bytes = len(json.dumps(full)), len(json.dumps(pred))
    assert full_bytes > 1_000_000 and pred_bytes < full_bytes / 8, (full_bytes, pred_bytes)
    _validate(pred)
    _validate(full)
    topo = pred["topology"]
    assert len(topo["lanes"]) == demo.DEFAULTS["max_lanes"] == 100
    assert len(topo["traffic_elements"]) == demo.DEFAULTS["max_traffic_elements"] == 50
    lane_scores = raw[0]["pred_lc"][1][:, 0]
    te_scores = raw[0]["pred_te"][1]
    lane_idx = np.argsort(-lane_scores, kind="stable")[:100]
    te_idx = np.argsort(-te_scores, kind="stable")[:50]
    assert [lane["score"] for lane in topo["lanes"]] == pytest.approx(lane_scores[lane_idx].tolist())
    assert [t["score"] for t in topo["traffic_elements"]] == pytest.approx(te_scores[te_idx].tolist())
    assert topo["lane_lane"]["encoding"] == "float16-base64" and topo["lane_lane"]["shape"] == [100, 100]
    lane_lane, lane_traffic = topology_matrices(topo)
    # the packed matrices are the top-k rows / columns of the raw ones, in list order, to float16 precision
    np.testing.assert_allclose(lane_lane, raw[0]["pred_topology_lclc"][np.ix_(lane_idx, lane_idx)], atol=2.5e-4)
    np.testing.assert_allclose(lane_traffic, raw[0]["pred_topology_lcte"][np.ix_(lane_idx, te_idx)], atol=2.5e-4)
    # and the unpacked full form reads the same way
    ll_full, lt_full = topology_matrices(full["topology"])
    assert ll_full.shape == (300, 300) and lt_full.shape == (300, 100)


def test_small_matrices_stay_lists_and_packing_is_configurable():
    small = demo.convert_topology(_raw(), demo.frame_id(FRAME))
    assert isinstance(small["topology"]["lane_lane"], list)
    packed = demo.convert_topology(_raw(), demo.frame_id(FRAME), options={"pack_matrices_above": 0})
    assert packed["topology"]["lane_lane"]["shape"] == [3, 3] and packed["topology"]["lane_traffic"]["shape"] == [3, 2]
    from onlinemap.evaluation.topology import matrix

    np.testing.assert_allclose(matrix(packed["topology"]["lane_lane"]), small["topology"]["lane_lane"], atol=2.5e-4)
    np.testing.assert_allclose(matrix(packed["topology"]["lane_traffic"]), small["topology"]["lane_traffic"], atol=2.5e-4)
    _validate(packed)


def test_packed_matrix_errors_are_caught():
    from onlinemap.evaluation.predictions import validate_prediction
    from onlinemap.evaluation.topology import matrix, topology_matrices

    pred = demo.convert_topology(_raw(), demo.frame_id(FRAME), options={"pack_matrices_above": 0})
    bad = json.loads(json.dumps(pred))
    bad["topology"]["lane_lane"]["encoding"] = "float32-base64"
    assert validate_prediction(bad)
    bad = json.loads(json.dumps(pred))
    bad["topology"]["lane_lane"]["shape"] = [3, 4]                 # schema-valid, but not what the data holds
    with pytest.raises(ValueError, match="needs 12"):
        matrix(bad["topology"]["lane_lane"])
    bad = json.loads(json.dumps(pred))
    bad["topology"]["lanes"] = bad["topology"]["lanes"][:2]
    with pytest.raises(ValueError, match="expected 2 x 2"):
        topology_matrices(bad["topology"])
