"""envs/MapTR/demo.py: conversion of MapTR's raw per-sample result into the standard prediction.

Inputs are shaped exactly as ``MapTR.pred2result`` returns them (CPU tensors: boxes_3d (N, 4),
scores_3d (N,), labels_3d (N,), pts_3d (N, 20, 2) in the LiDAR BEV frame). No mmcv/mmdet3d needed.
"""
import ast
import json
import math
from pathlib import Path

import pytest
from tests.envs.helpers import assert_valid, load_adapter

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "envs" / "MapTR" / "demo.py"
STDLIB_OK = {"math", "os", "sys", "json", "runpy"}

# nuScenes-like calibration: LiDAR x points to the car's right, y forward (lidar2ego = -90 deg about z).
LIDAR2EGO_ROT = [math.cos(-math.pi / 4), 0.0, 0.0, math.sin(-math.pi / 4)]
LIDAR2EGO_T = [0.9, 0.0, 1.8]
TOKEN = "a" * 32


@pytest.fixture(scope="module")
def demo():
    return load_adapter("MapTR")


def flat(points):
    return [v for p in points for v in p]


def raw_result(n=50, pts=20):
    """A pts_bbox dict as MapTR returns it after MapTRNMSFreeCoder (top-50, sigmoid scores, metres)."""
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(n, pts, 2, generator=g) - 0.5) * torch.tensor([30.0, 60.0])
    return {"boxes_3d": torch.rand(n, 4, generator=g), "scores_3d": torch.rand(n, generator=g).sort(descending=True)[0],
            "labels_3d": torch.arange(n) % 3, "pts_3d": points}


def test_demo_parses_as_python37_and_imports_stdlib_only():
    tree = ast.parse(DEMO.read_text(), feature_version=(3, 7))
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= STDLIB_OK
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in STDLIB_OK


def test_points_move_from_lidar_to_ego_frame(demo):
    result = raw_result(n=2, pts=2)
    result["pts_3d"] = torch.tensor([[[0.0, 10.0], [3.0, 0.0]], [[-3.0, -5.0], [0.0, 0.0]]])
    result["labels_3d"] = torch.tensor([0, 2])
    pred = demo.convert_maptr_outputs(result, TOKEN, LIDAR2EGO_ROT, LIDAR2EGO_T)
    first, second = pred["map_elements"]
    # lidar (0, 10) is 10 m ahead of the sensor -> ego x = 10 + 0.9; lidar (3, 0) is 3 m right -> ego y = -3.
    assert flat(first["points"]) == pytest.approx([10.9, 0.0, 0.9, -3.0], abs=1e-9)
    assert flat(second["points"]) == pytest.approx([-4.1, 3.0, 0.9, 0.0], abs=1e-9)
    assert all(e["frame"] == "ego" for e in pred["map_elements"])


def test_labels_follow_config_class_order(demo):
    result = raw_result(n=3, pts=20)
    result["labels_3d"] = torch.tensor([2, 0, 1])
    pred = demo.convert_maptr_outputs(result, TOKEN, LIDAR2EGO_ROT, LIDAR2EGO_T)
    assert [e["label"] for e in pred["map_elements"]] == ["boundary", "divider", "ped_crossing"]
    # a config with a different class order maps through it, not through a fixed table
    pred = demo.convert_maptr_outputs(result, TOKEN, LIDAR2EGO_ROT, LIDAR2EGO_T,
                                      map_classes=("ped_crossing", "divider", "boundary"))
    assert [e["label"] for e in pred["map_elements"]] == ["boundary", "ped_crossing", "divider"]


def test_full_raw_output_validates_and_keeps_scores(demo):
    result = raw_result()
    pred = demo.convert_maptr_outputs({"pts_bbox": result}, TOKEN, LIDAR2EGO_ROT, LIDAR2EGO_T)
    assert_valid(pred)
    assert len(pred["map_elements"]) == 50
    assert all(len(e["points"]) == 20 for e in pred["map_elements"])
    assert [e["score"] for e in pred["map_elements"]] == pytest.approx(result["scores_3d"].tolist())
    json.dumps(pred)  # plain Python numbers only


def test_score_threshold_and_numpy_inputs(demo):
    result = {k: v.numpy() for k, v in raw_result().items()}
    pred = demo.convert_maptr_outputs(result, TOKEN, LIDAR2EGO_ROT, LIDAR2EGO_T, score_threshold=0.5)
    assert pred["map_elements"] and all(e["score"] >= 0.5 for e in pred["map_elements"])
    assert_valid(pred)


def test_info_paths_are_rebased_onto_the_dataroot(demo, tmp_path):
    info = {"lidar_path": "./data/nuscenes/samples/LIDAR_TOP/x.pcd.bin",
            "cams": {"CAM_FRONT": {"data_path": "./data/nuscenes/samples/CAM_FRONT/y.jpg"}},
            "sweeps": [{"data_path": "data/nuscenes/sweeps/LIDAR_TOP/z.pcd.bin"}]}
    demo.rebase_info_paths(info, str(tmp_path))
    assert info["lidar_path"] == str(tmp_path / "samples/LIDAR_TOP/x.pcd.bin")
    assert info["cams"]["CAM_FRONT"]["data_path"] == str(tmp_path / "samples/CAM_FRONT/y.jpg")
    assert info["sweeps"][0]["data_path"] == str(tmp_path / "sweeps/LIDAR_TOP/z.pcd.bin")


def test_state_reset_on_scene_change_or_gap(demo):
    a0 = {"token": "t0", "scene_token": "s1", "index_in_scene": 0}
    a1 = {"token": "t1", "scene_token": "s1", "index_in_scene": 1}
    a3 = {"token": "t3", "scene_token": "s1", "index_in_scene": 3}
    b0 = {"token": "u0", "scene_token": "s2", "index_in_scene": 0}
    assert demo.needs_state_reset(None, a0)
    assert not demo.needs_state_reset(a0, a1)
    assert demo.needs_state_reset(a1, a3)
    assert demo.needs_state_reset(a1, b0)


def test_adapter_init_is_cheap(demo):
    adapter = demo.Adapter({"model": "MapTR", "config": None, "checkpoint": None, "dataroot": "/nowhere",
                            "version": "v1.0-mini", "device": "cpu", "repo": None, "options": {"score_threshold": 0.3}})
    assert adapter.model is None and adapter.options["score_threshold"] == 0.3
