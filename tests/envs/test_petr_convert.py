"""Conversion tests for envs/PETR/demo.py (mmdet3d 0.17 LiDAR boxes -> global nuScenes boxes).

The raw input mimics what PETR's detector returns for one sample:
``[{'pts_bbox': {'boxes_3d': LiDARInstance3DBoxes, 'scores_3d': (N,), 'labels_3d': (N,)}}]``.
``FakeLiDARBoxes`` is a test-only stand-in for mmdet3d's box class: like the real one it only
exposes the (N, 9) ``tensor`` (x, y, z_bottom, w, l, h, yaw, vx, vy in the 0.17 convention) that the
adapter reads. mmcv/mmdet3d are not needed.
"""
import ast
import math
from pathlib import Path

import pytest
import torch
from tests.envs.helpers import FakeLiDARBoxes, load_adapter
from tests.envs.helpers import assert_valid as _validate
from tests.envs.helpers import quat_z as _quat_z

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "envs" / "PETR" / "demo.py"


demo = load_adapter("PETR")


CALIB = {"lidar2ego_rotation": _quat_z(90), "lidar2ego_translation": [1.0, 0.0, 2.0],
         "ego2global_rotation": _quat_z(30), "ego2global_translation": [100.0, 200.0, 0.0]}
TOKEN = "0123456789abcdef0123456789abcdef"


def _raw(rows, scores, labels):
    return [{"pts_bbox": {"boxes_3d": FakeLiDARBoxes(torch.tensor(rows, dtype=torch.float32)),
                          "scores_3d": torch.tensor(scores, dtype=torch.float32),
                          "labels_3d": torch.tensor(labels, dtype=torch.int64)}}]


def test_box_lands_at_expected_global_pose():
    # 0.17 convention: dims (w, l, h); yaw_mm = -pi/2 means nuScenes yaw 0 (heading +x of the LiDAR).
    raw = _raw([[10.0, 0.0, -1.0, 2.0, 4.0, 1.5, -math.pi / 2, 1.0, 0.0]], [0.9], [0])
    pred = demo.convert_detections(raw, CALIB, TOKEN)
    (det,) = pred["detections_3d"]
    # gravity centre (10, 0, -0.25) -> ego (1, 10, 1.75) -> global, rotated 30 deg and shifted
    c30, s30 = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert det["center"] == pytest.approx([100 + c30 * 1 - s30 * 10, 200 + s30 * 1 + c30 * 10, 1.75], abs=1e-5)
    assert det["size"] == pytest.approx([2.0, 4.0, 1.5])  # nuScenes w, l, h
    assert det["yaw"] == pytest.approx(math.radians(120), abs=1e-6)  # 0 + 90 + 30
    assert det["velocity"] == pytest.approx([-s30, c30], abs=1e-6)  # (1,0) lidar -> (0,1) ego -> +30 deg
    assert det["label"] == "car" and det["frame"] == "global"
    assert det["attribute"] == "vehicle.moving"
    _validate(pred)


def _quat_mul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return [w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2]


def _quat_rotate(q, v):
    qv = [0.0] + list(v)
    qc = [q[0], -q[1], -q[2], -q[3]]
    return _quat_mul(_quat_mul(q, qv), qc)[1:]


def test_matches_quaternion_box_semantics_with_tilted_lidar():
    """Cross-check against nuScenes Box.rotate/translate done with quaternion algebra (independent path)."""
    tilt = [math.cos(0.05), math.sin(0.05), 0.0, 0.0]  # small roll, as real lidar2ego has
    l2e = _quat_mul(_quat_z(-89.5), tilt)
    e2g = _quat_mul(_quat_z(-147.0), [math.cos(0.01), 0.0, math.sin(0.01), 0.0])
    calib = {"lidar2ego_rotation": l2e, "lidar2ego_translation": [0.94, 0.0, 1.84],
             "ego2global_rotation": e2g, "ego2global_translation": [411.3, 1180.9, 0.0]}
    row = [-7.0, 12.0, -1.2, 1.9, 4.6, 1.7, 0.4, 2.0, -0.5]
    pred = demo.convert_detections(_raw([row], [0.5], [1]), calib, TOKEN)
    (det,) = pred["detections_3d"]
    center = [row[0], row[1], row[2] + row[5] / 2]
    nus_yaw = -row[6] - math.pi / 2
    q_box = _quat_z(math.degrees(nus_yaw))
    center = [a + b for a, b in zip(_quat_rotate(l2e, center), calib["lidar2ego_translation"])]
    center = [a + b for a, b in zip(_quat_rotate(e2g, center), calib["ego2global_translation"])]
    q_box = _quat_mul(e2g, _quat_mul(l2e, q_box))
    heading = _quat_rotate(q_box, [1.0, 0.0, 0.0])
    vel = _quat_rotate(e2g, _quat_rotate(l2e, [row[7], row[8], 0.0]))
    assert det["center"] == pytest.approx(center, abs=1e-4)
    assert det["yaw"] == pytest.approx(math.atan2(heading[1], heading[0]), abs=1e-6)
    assert det["velocity"] == pytest.approx(vel[:2], abs=1e-5)
    assert det["size"] == pytest.approx([1.9, 4.6, 1.7])
    assert det["label"] == "truck"


def test_labels_follow_config_class_order():
    rows = [[float(i), 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0] for i in range(10)]
    pred = demo.convert_detections(_raw(rows, [0.5] * 10, list(range(10))), CALIB, TOKEN)
    names = {round(d["center"][2], 3): d["label"] for d in pred["detections_3d"]}
    assert sorted(d["label"] for d in pred["detections_3d"]) == sorted(demo.CLASS_NAMES)
    assert demo.CLASS_NAMES == ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier",
                                "motorcycle", "bicycle", "pedestrian", "traffic_cone")
    assert names  # every box kept (all within 30 m)
    _validate(pred)


def test_class_range_filter_in_ego_frame_and_attributes():
    rows = [[45.0, 0.0, 0.0, 2.0, 4.0, 1.5, 0.0, 0.0, 0.0],   # car at ~45 m: kept (range 50)
            [45.0, 0.0, 0.0, 0.7, 0.7, 1.8, 0.0, 0.0, 0.0],   # pedestrian at ~45 m: dropped (range 40)
            [60.0, 0.0, 0.0, 2.0, 4.0, 1.5, 0.0, 0.0, 0.0],   # car at ~60 m: dropped
            [5.0, 0.0, 0.0, 0.7, 0.7, 1.8, 0.0, 0.0, 0.0]]    # standing pedestrian: kept
    pred = demo.convert_detections(_raw(rows, [0.8, 0.7, 0.6, 0.5], [0, 8, 0, 8]), CALIB, TOKEN)
    got = [(d["label"], d["attribute"]) for d in pred["detections_3d"]]
    assert got == [("car", "vehicle.parked"), ("pedestrian", "pedestrian.standing")]
    unfiltered = demo.convert_detections(_raw(rows, [0.8, 0.7, 0.6, 0.5], [0, 8, 0, 8]), CALIB, TOKEN,
                                         options={"filter_range": False})
    assert len(unfiltered["detections_3d"]) == 4
    _validate(pred)


def test_accepts_numpy_and_empty_and_inner_dict():
    np = pytest.importorskip("numpy")
    inner = {"boxes_3d": FakeLiDARBoxes(np.zeros((0, 9), dtype=np.float32)),
             "scores_3d": np.zeros((0,)), "labels_3d": np.zeros((0,), dtype=np.int64)}
    pred = demo.convert_detections(inner, CALIB, TOKEN)
    assert pred == {"sample_token": TOKEN, "model": "PETR", "detections_3d": []}
    _validate(pred)


def test_remap_data_path():
    assert demo.lib.remap_data_path("./data/nuscenes/samples/CAM_FRONT/x.jpg", "/d") == "/d/samples/CAM_FRONT/x.jpg"
    assert demo.lib.remap_data_path("/data/Dataset/nuScenes/sweeps/CAM_BACK/y.jpg", "/d") == "/d/sweeps/CAM_BACK/y.jpg"
    assert demo.lib.remap_data_path("samples/CAM_FRONT/x.jpg", "/d") == "/d/samples/CAM_FRONT/x.jpg"


def test_plugin_module_name_like_tools_test():
    assert demo.lib.plugin_module_name({"plugin": True, "plugin_dir": "projects/mmdet3d_plugin/"}, "c.py", "/r") \
        == "projects.mmdet3d_plugin"
    assert demo.lib.plugin_module_name({}, "c.py", "/r") is None


def test_adapter_file_is_py37_and_stdlib_only_at_module_level():
    tree = ast.parse(DEMO.read_text(), feature_version=(3, 7))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add((node.module or "").split(".")[0])
    assert top <= {"math", "os", "sys", "re", "json"}
