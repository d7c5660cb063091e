"""Conversion and streaming-state tests for envs/StreamPETR/demo.py.

The raw input mimics what StreamPETR's detector returns for one sample:
``[{'pts_bbox': {'boxes_3d': LiDARInstance3DBoxes, 'scores_3d': (N,), 'labels_3d': (N,)}}]`` with
mmdet3d 1.0.0rc6 boxes (tensor columns x, y, z_bottom, l, w, h, yaw, vx, vy). ``FakeLiDARBoxes`` is a
test-only stand-in exposing that ``tensor``. mmcv/mmdet3d are not needed.
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
DEMO = ROOT / "envs" / "StreamPETR" / "demo.py"


demo = load_adapter("StreamPETR")


CALIB = {"lidar2ego_rotation": _quat_z(90), "lidar2ego_translation": [1.0, 0.0, 2.0],
         "ego2global_rotation": _quat_z(30), "ego2global_translation": [100.0, 200.0, 0.0]}
TOKEN = "fedcba9876543210fedcba9876543210"


def _raw(rows, scores, labels):
    return [{"pts_bbox": {"boxes_3d": FakeLiDARBoxes(torch.tensor(rows, dtype=torch.float32)),
                          "scores_3d": torch.tensor(scores, dtype=torch.float32),
                          "labels_3d": torch.tensor(labels, dtype=torch.int64)}}]


def test_box_lands_at_expected_global_pose():
    # 1.0 convention: dims (l, w, h) and yaw 0 = heading +x of the LiDAR.
    raw = _raw([[10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0, 1.0, 0.0]], [0.9], [0])
    pred = demo.convert_detections(raw, CALIB, TOKEN)
    (det,) = pred["detections_3d"]
    c30, s30 = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert det["center"] == pytest.approx([100 + c30 * 1 - s30 * 10, 200 + s30 * 1 + c30 * 10, 1.75], abs=1e-5)
    assert det["size"] == pytest.approx([2.0, 4.0, 1.5])  # reordered to nuScenes w, l, h
    assert det["yaw"] == pytest.approx(math.radians(120), abs=1e-6)
    assert det["velocity"] == pytest.approx([-s30, c30], abs=1e-6)
    assert pred["model"] == "StreamPETR"
    _validate(pred)


def test_same_physical_box_in_both_stacks_gives_same_prediction():
    petr = load_adapter("PETR")
    row_10 = [3.0, -4.0, -1.0, 4.5, 1.9, 1.6, 0.3, 0.5, 2.0]                      # l, w, h; yaw 0.3
    row_017 = [3.0, -4.0, -1.0, 1.9, 4.5, 1.6, -0.3 - math.pi / 2, 0.5, 2.0]     # w, l, h; -yaw - pi/2
    a = demo.convert_detections(_raw([row_10], [0.6], [3]), CALIB, TOKEN)["detections_3d"][0]
    b = petr.convert_detections(_raw([row_017], [0.6], [3]), CALIB, TOKEN)["detections_3d"][0]
    for key in ("center", "size", "velocity"):
        assert a[key] == pytest.approx(b[key], abs=1e-5)
    assert math.cos(a["yaw"] - b["yaw"]) == pytest.approx(1.0, abs=1e-9)
    assert a["label"] == b["label"] == "bus"


def test_yaw_wrapped_and_labels():
    rows = [[1.0, 1.0, 0.0, 4.0, 2.0, 1.5, 3.0, 0.0, 0.0]]
    det = demo.convert_detections(_raw(rows, [0.4], [9]), CALIB, TOKEN)["detections_3d"][0]
    assert -math.pi <= det["yaw"] < math.pi
    assert det["yaw"] == pytest.approx(demo.wrap_angle(3.0 + math.radians(120)))
    assert det["label"] == "traffic_cone" and det["attribute"] is None


# -- streaming memory: when must the query memory be reset -------------------------------------

def _s(scene, index):
    return {"token": "t%s%d" % (scene, index), "scene_token": scene, "index_in_scene": index}


def test_reset_on_first_sample_and_scene_change_only():
    seq = [_s("A", 0), _s("A", 1), _s("A", 2), _s("B", 0), _s("B", 1)]
    prev, decisions = None, []
    for sample in seq:
        decisions.append(demo.stream_reset_needed(prev, sample))
        prev = demo.stream_state(sample)
    assert decisions == [True, False, False, True, False]


def test_reset_on_gap_or_restart_within_scene():
    assert demo.stream_reset_needed(demo.stream_state(_s("A", 3)), _s("A", 5)) is True
    assert demo.stream_reset_needed(demo.stream_state(_s("A", 3)), _s("A", 0)) is True   # warm-up then rerun
    assert demo.stream_reset_needed(demo.stream_state(_s("A", 3)), _s("A", 3)) is True
    assert demo.stream_reset_needed(demo.stream_state(_s("A", 3)), _s("A", 5), reset_on_gap=False) is False
    assert demo.stream_reset_needed(demo.stream_state(_s("A", 3)), _s("A", 4)) is False


def test_reset_without_index_information_falls_back_to_scene_token():
    prev = {"scene_token": "A", "index_in_scene": None}
    assert demo.stream_reset_needed(prev, {"token": "x", "scene_token": "A"}) is False
    assert demo.stream_reset_needed(prev, {"token": "x", "scene_token": "B"}) is True


def test_adapter_forward_forces_model_reset_path():
    """forward() clears model.prev_scene_token on reset, which makes Petr3D take its own reset branch."""

    class FakeModel:  # test-only: records prev_scene_token at call time, like Petr3D would read it
        prev_scene_token = "A"

        def __call__(self, **kw):
            self.seen = self.prev_scene_token
            self.prev_scene_token = "A"
            return []

    adapter = demo.Adapter({"device": "cpu", "options": {}})
    adapter.model, adapter.torch = FakeModel(), torch
    adapter.forward({"data": {}, "reset": False})
    assert adapter.model.seen == "A"
    adapter.forward({"data": {}, "reset": True})
    assert adapter.model.seen is None


def test_adapter_file_is_py37_and_stdlib_only_at_module_level():
    tree = ast.parse(DEMO.read_text(), feature_version=(3, 7))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add((node.module or "").split(".")[0])
    assert top <= {"math", "os", "sys", "re", "json"}
