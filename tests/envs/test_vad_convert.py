"""envs/VAD/demo.py: conversion of VAD's raw per-sample result into the standard prediction.

Inputs are shaped as ``VAD.simple_test_pts`` returns them under 'pts_bbox' (CPU tensors): boxes_3d as
the (N, 9) tensor of a mmdet3d-0.17 LiDARInstance3DBoxes (bottom centre, w l h, yaw, vx vy),
scores_3d / labels_3d (N,), trajs_3d (N, 6 modes, 6 steps x 2), map_* (M, 4) / (M,) / (M, 20, 2), ego_fut_preds
(3, 6, 2) per-step offsets, ego_fut_cmd one-hot with batch dims (1, 1, 1, 3). No mmcv/mmdet3d needed.
"""
import ast
import json
import math
from pathlib import Path

import pytest
from tests.envs.helpers import assert_valid, load_adapter

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "envs" / "VAD" / "demo.py"
STDLIB_OK = {"math", "os", "sys", "json", "runpy"}

# LiDAR x -> car's right, y -> forward (lidar2ego = -90 deg about z); ego heads +90 deg in the world.
LIDAR2EGO_ROT = [math.cos(-math.pi / 4), 0.0, 0.0, math.sin(-math.pi / 4)]
LIDAR2EGO_T = [0.9, 0.0, 1.8]
EGO2GLOBAL_ROT = [math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]
EGO2GLOBAL_T = [100.0, 200.0, 0.0]
TOKEN = "b" * 32


@pytest.fixture(scope="module")
def demo():
    return load_adapter("VAD")


def flat(points):
    return [v for p in points for v in p]


def raw_result(boxes=None, scores=None, labels=None, cmd=(0.0, 0.0, 1.0), plan=None, n_map=50, trajs=None):
    g = torch.Generator().manual_seed(1)
    if boxes is None:
        n = 100
        boxes = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * torch.tensor([30.0, 60.0]),
                           torch.full((n, 1), -1.5), 1.0 + torch.rand(n, 3, generator=g) * 3,
                           (torch.rand(n, 1, generator=g) - 0.5) * 6.28, torch.randn(n, 2, generator=g)], dim=1)
        scores = torch.rand(n, generator=g).sort(descending=True)[0]
        labels = torch.arange(n) % 10
    if plan is None:
        plan = torch.randn(3, 6, 2, generator=g)
    if trajs is None:
        trajs = torch.randn(len(scores), 6, 6 * 2, generator=g)
    return {"boxes_3d": boxes, "scores_3d": scores, "labels_3d": labels, "trajs_3d": trajs,
            "map_boxes_3d": torch.rand(n_map, 4, generator=g),
            "map_scores_3d": torch.rand(n_map, generator=g).sort(descending=True)[0],
            "map_labels_3d": torch.arange(n_map) % 3,
            "map_pts_3d": (torch.rand(n_map, 20, 2, generator=g) - 0.5) * torch.tensor([30.0, 60.0]),
            "ego_fut_preds": plan, "ego_fut_cmd": torch.tensor(cmd).reshape(1, 1, 1, 3)}


def convert(demo, result, **kw):
    return demo.convert_vad_outputs({"pts_bbox": result, "metric_results": {}}, TOKEN, LIDAR2EGO_ROT, LIDAR2EGO_T,
                                    EGO2GLOBAL_ROT, EGO2GLOBAL_T, **kw)


def test_demo_parses_as_python37_and_imports_stdlib_only():
    tree = ast.parse(DEMO.read_text(), feature_version=(3, 7))
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= STDLIB_OK
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in STDLIB_OK


def test_box_lands_at_expected_global_pose(demo):
    # LiDAR box: bottom centre (2, 10, -1.5), w 2 l 4 h 1.6, mmdet3d-0.17 yaw -pi/2 (nuScenes yaw 0 in the
    # LiDAR frame: heading +x_lidar = the car's right), velocity 1 m/s along +x_lidar.
    boxes = torch.tensor([[2.0, 10.0, -1.5, 2.0, 4.0, 1.6, -math.pi / 2, 1.0, 0.0]])
    pred = convert(demo, raw_result(boxes, torch.tensor([0.9]), torch.tensor([0])))
    (det,) = pred["detections_3d"]
    # gravity centre (2, 10, -0.7) -> ego (10.9, -2, 1.1) -> global R(+90)(10.9, -2, 1.1) + (100, 200, 0)
    assert det["center"] == pytest.approx([102.0, 210.9, 1.1], abs=1e-5)
    assert det["size"] == pytest.approx([2.0, 4.0, 1.6])          # nuScenes wlh, kept as stored
    assert det["yaw"] == pytest.approx(0.0, abs=1e-5)             # right of a car heading +y_world = +x_world
    assert det["velocity"] == pytest.approx([1.0, 0.0], abs=1e-5)
    assert det["label"] == "car" and det["frame"] == "global"
    assert det["attribute"] == "vehicle.moving"


def test_yaw_convention_quarter_turns(demo):
    # mmdet3d-0.17 yaw 0 -> nuScenes yaw -pi/2 in the LiDAR frame (heading -y_lidar = backwards):
    # ego heading pi, global heading pi + pi/2 = -pi/2.
    boxes = torch.tensor([[0.0, 5.0, -1.0, 1.0, 2.0, 1.0, 0.0, 0.0, 0.0]])
    (det,) = convert(demo, raw_result(boxes, torch.tensor([0.5]), torch.tensor([8])))["detections_3d"]
    assert math.cos(det["yaw"]) == pytest.approx(0.0, abs=1e-5) and math.sin(det["yaw"]) == pytest.approx(-1.0)
    assert det["label"] == "pedestrian" and det["attribute"] == "pedestrian.standing"


def test_class_range_and_score_filters(demo):
    boxes = torch.tensor([[20.0, 0.0, -1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],    # ego y = -20: outside |y| <= 15
                          [0.0, 35.0, -1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],    # ego x = 35.9: outside |x| <= 30
                          [0.0, 5.0, -1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],     # score 0.1 < 0.2
                          [1.0, 5.0, -1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])    # kept
    pred = convert(demo, raw_result(boxes, torch.tensor([0.9, 0.9, 0.1, 0.3]), torch.tensor([0, 1, 2, 9])))
    assert [d["label"] for d in pred["detections_3d"]] == ["traffic_cone"]
    assert pred["detections_3d"][0]["attribute"] is None


def test_agent_trajectories_are_offsets_from_the_box_centre_taken_to_global(demo):
    # three boxes; the middle one is dropped by the score filter, so rows must stay aligned by index
    boxes = torch.tensor([[2.0, 10.0, -1.5, 2.0, 4.0, 1.6, -math.pi / 2, 0.0, 0.0],
                          [0.0, 5.0, -1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
                          [-3.0, 4.0, -1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    trajs = torch.zeros(3, 6, 12)
    trajs[0, 2, 0::2] = 1.0                          # box 0, mode 2: +1 m along x_lidar (the car's right) per step
    trajs[2, :, 1::2] = 0.5                          # box 2, every mode: +0.5 m along y_lidar (forward) per step
    pred = convert(demo, raw_result(boxes, torch.tensor([0.9, 0.1, 0.8]), torch.tensor([0, 0, 8]), trajs=trajs))
    first, last = pred["detections_3d"]
    assert first["trajectories"]["dt"] == 0.5 and first["trajectories"]["scores"] is None
    modes = first["trajectories"]["modes"]
    assert len(modes) == 6 and all(len(m) == 6 for m in modes)
    assert modes[0] == [pytest.approx(first["center"][:2], abs=1e-5)] * 6    # zero offsets: the agent stays put
    # LiDAR +x = ego -y = global +x (ego heads +y_world): the centre (102, 210.9) moves 1 m along +x_world per step
    assert modes[2] == [pytest.approx([102.0 + k, 210.9], abs=1e-5) for k in range(1, 7)]
    # box 2 (LiDAR (-3, 4)) -> ego (4.9, 3) -> global (97, 204.9); +y_lidar = +x_ego = +y_world, cumulative
    assert last["center"][:2] == pytest.approx([97.0, 204.9], abs=1e-5)
    assert last["trajectories"]["modes"][5] == [pytest.approx([97.0, 204.9 + 0.5 * k], abs=1e-5) for k in range(1, 7)]
    assert_valid(pred)


def test_trajectory_rows_must_match_the_boxes(demo):
    with pytest.raises(ValueError, match="trajs_3d has 2 rows for 3 boxes"):
        demo.lidar_boxes_to_global(torch.zeros(3, 9), torch.ones(3), torch.zeros(3, dtype=torch.long),
                                   LIDAR2EGO_ROT, LIDAR2EGO_T, EGO2GLOBAL_ROT, EGO2GLOBAL_T, trajs=torch.zeros(2, 6, 12))


def test_map_vectors_in_ego_frame_with_labels(demo):
    result = raw_result(n_map=2)
    result["map_pts_3d"] = torch.tensor([[[0.0, 10.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])
    result["map_labels_3d"] = torch.tensor([1, 2])
    pred = convert(demo, result)
    assert [e["label"] for e in pred["map_elements"]] == ["ped_crossing", "boundary"]
    assert flat(pred["map_elements"][0]["points"]) == pytest.approx([10.9, 0.0, 0.9, -3.0], abs=1e-5)


def test_plan_cumsum_and_command_choice(demo):
    plan = torch.zeros(3, 6, 2)
    plan[0] = torch.tensor([0.5, 1.0])     # mode 0 = turn right: drifts +x_lidar (the car's right)
    plan[1] = torch.tensor([-0.5, 1.0])    # mode 1 = turn left
    plan[2] = torch.tensor([0.0, 2.0])     # mode 2 = go straight: 2 m forward per 0.5 s
    straight = convert(demo, raw_result(plan=plan, cmd=(0.0, 0.0, 1.0)))["plan"]
    assert straight["command"] == "go_straight" and straight["dt"] == 0.5
    assert flat(straight["waypoints"]) == pytest.approx(flat([[2.0 * k, 0.0] for k in range(1, 7)]), abs=1e-5)
    right = convert(demo, raw_result(plan=plan, cmd=(1.0, 0.0, 0.0)))["plan"]
    assert right["command"] == "turn_right"
    assert flat(right["waypoints"]) == pytest.approx(flat([[1.0 * k, -0.5 * k] for k in range(1, 7)]), abs=1e-5)
    left = convert(demo, raw_result(plan=plan, cmd=(1.0, 0.0, 0.0)), command="turn_left")["plan"]
    assert left["command"] == "turn_left" and left["waypoints"][-1] == pytest.approx([6.0, 3.0])


def test_full_raw_output_validates(demo):
    result = raw_result()
    pred = convert(demo, result)
    assert_valid(pred)
    assert len(pred["map_elements"]) == 50 and len(pred["plan"]["waypoints"]) == 6
    assert 0 < len(pred["detections_3d"]) < 100
    assert all(d["score"] >= 0.2 for d in pred["detections_3d"])
    json.dumps(pred)
    numpy_result = {k: v.numpy() for k, v in result.items()}
    assert convert(demo, numpy_result) == pred


def test_boxes_object_with_tensor_attribute(demo):
    class FakeLiDARBoxes(object):   # stands in for mmdet3d's LiDARInstance3DBoxes: only .tensor is read
        def __init__(self, tensor):
            self.tensor = tensor

    result = raw_result()
    pred = convert(demo, dict(result, boxes_3d=FakeLiDARBoxes(result["boxes_3d"])))
    assert pred == convert(demo, result)


def test_caffe_img_norm_reaches_nested_transforms(demo):
    pipeline = [{"type": "LoadMultiViewImageFromFiles"},
                {"type": "NormalizeMultiviewImage", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
                 "to_rgb": True},
                {"type": "MultiScaleFlipAug3D", "transforms": [{"type": "NormalizeMultiviewImage", "mean": [0, 0, 0],
                                                                "std": [1, 1, 1], "to_rgb": True}]}]
    demo.apply_caffe_img_norm(pipeline)
    for step in (pipeline[1], pipeline[2]["transforms"][0]):
        assert step["mean"] == [103.530, 116.280, 123.675] and step["std"] == [1.0, 1.0, 1.0] and not step["to_rgb"]


def test_state_reset_rules(demo):
    a0 = {"scene_token": "s1", "index_in_scene": 0}
    a1 = {"scene_token": "s1", "index_in_scene": 1}
    assert demo.needs_state_reset(None, a0) and not demo.needs_state_reset(a0, a1)
    assert demo.needs_state_reset(a0, {"scene_token": "s1", "index_in_scene": 2})
    assert demo.needs_state_reset(a1, {"scene_token": "s2", "index_in_scene": 0})


def test_plan_keeps_vads_lidar_reference_point(demo):
    """VAD's plan is the future LiDAR position in the current LiDAR frame: the adapter turns it into
    ego axes by lidar2ego's yaw and adds no lever arm (the evaluator scores it against the LiDAR's own
    path, tests/evaluation/test_planning_vs_vad.py). With nuScenes' LIDAR_TOP extrinsics a 90 deg
    left turn (LiDAR frame: forward +y, left -x) comes out forward +x, left +y, starting at the origin."""
    lidar2ego = [0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817]
    r = 8.0 * 3.0 / (math.pi / 2)                        # radius of a 90 deg arc driven in 3 s at 8 m/s
    angles = [math.pi / 2 * (k + 1) / 6 for k in range(6)]
    lidar = [[-(r - r * math.cos(a)), r * math.sin(a)] for a in angles]
    offsets = [[lidar[0][0], lidar[0][1]]] + [[lidar[k][0] - lidar[k - 1][0], lidar[k][1] - lidar[k - 1][1]]
                                                for k in range(1, 6)]
    cumulative, waypoints = demo.plan_waypoints(torch.tensor([offsets] * 3), 2, lidar2ego)
    for (lx, ly), (c0, c1), (ex, ey) in zip(lidar, cumulative, waypoints):
        assert (c0, c1) == pytest.approx((lx, ly), abs=1e-5)
        assert math.hypot(ex, ey) == pytest.approx(math.hypot(lx, ly), abs=1e-5)   # a rotation, no shift
    assert waypoints[-1][0] == pytest.approx(r, rel=0.02) and waypoints[-1][1] == pytest.approx(r, rel=0.02)
