"""envs/VAD: what VAD's upstream test path does inside our timed region, and the pack's stated output size.

VAD's tools/test.py path loads LiDAR points and vectorises the map GT with shapely for every sample
(``data_ms``) and runs its motion and planner metrics inside ``simple_test_pts`` (``forward_ms``);
all of it only feeds ``metric_results``, which ``convert()`` ignores. The adapter keeps it out by
default (``options.gt_metrics = false``). Checked against hustvl/VAD at the pinned commit, read from
``../shared/upstream`` (skipped where the snapshot is absent).
"""
import ast
import copy
import re
from pathlib import Path

import pytest
from tests.envs.helpers import FakeMMStack, load_adapter, upstream_config, upstream_file

ROOT = Path(__file__).resolve().parents[2]
VAD_TAR = "hustvl+VAD-1688c4b1.tar.gz"
CONFIG = "projects/configs/VAD/VAD_tiny_stage_2.py"


@pytest.fixture(scope="module")
def demo():
    return load_adapter("VAD")


@pytest.fixture(scope="module")
def upstream_cfg():
    return upstream_config(VAD_TAR, CONFIG)


def _types(pipeline):
    out = []
    for step in pipeline:
        out.append(step["type"])
        out.extend(_types(step.get("transforms", [])))
    return out


def _collect_keys(pipeline):
    for step in pipeline:
        if step["type"] == "CustomCollect3D":
            return step["keys"]
        if "transforms" in step:
            keys = _collect_keys(step["transforms"])
            if keys is not None:
                return keys
    return None


def test_strip_gt_work_on_the_real_test_pipeline(demo, upstream_cfg):
    pipeline = copy.deepcopy(upstream_cfg["test_pipeline"])
    before = _collect_keys(pipeline)
    assert "LoadPointsFromFile" in _types(pipeline) and "points" in before     # what upstream loads today
    demo.strip_gt_work(pipeline)
    assert "LoadPointsFromFile" not in _types(pipeline)
    assert _collect_keys(pipeline) == [k for k in before if k != "points"]    # CustomCollect3D raises on a missing key
    # everything simple_test_pts indexes stays: GT boxes/labels/attrs, ego futures, the command
    for key in ("gt_bboxes_3d", "gt_labels_3d", "gt_attr_labels", "fut_valid_flag", "ego_fut_trajs", "ego_fut_cmd"):
        assert key in _collect_keys(pipeline)
    assert [t for t in _types(pipeline)] == [t for t in _types(upstream_cfg["test_pipeline"]) if t != "LoadPointsFromFile"]


def test_skipped_methods_are_exactly_the_gt_metric_calls_of_simple_test_pts(demo):
    tree = ast.parse(upstream_file(VAD_TAR, "projects/mmdet3d_plugin/VAD/VAD.py"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "VAD")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    called = {n.func.attr for n in ast.walk(methods["simple_test_pts"])
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
              and isinstance(n.func.value, ast.Name) and n.func.value.id == "self"}
    metric_calls = {name for name in called if name.startswith(("compute_", "assign_pred_to_gt"))}
    assert set(demo.GT_METRIC_METHODS) == metric_calls and set(demo.GT_METRIC_METHODS) <= set(methods)
    # their results reach only metric_dict -> metric_results: the returned bbox results are built before them
    src = ast.get_source_segment(upstream_file(VAD_TAR, "projects/mmdet3d_plugin/VAD/VAD.py"), methods["simple_test_pts"])
    assert src.index("bbox_results.append") < min(src.index(m) for m in demo.GT_METRIC_METHODS)
    # the map GT vectorisation is prepare_test_data's is_vis_on_test branch
    dataset_src = upstream_file(VAD_TAR, "projects/mmdet3d_plugin/datasets/nuscenes_vad_dataset.py")
    assert re.search(r"if self\.is_vis_on_test:\s+example = self\.vectormap_pipeline", dataset_src)


def _vad_load(monkeypatch, tmp_path, upstream_cfg, options):
    cfg = {"model": {"type": "VAD", "train_cfg": {}}, "class_names": list(upstream_cfg["class_names"]),
           "map_classes": list(upstream_cfg["map_classes"]),
           "data": {"test": {"type": "VADCustomNuScenesDataset", "pipeline": copy.deepcopy(upstream_cfg["test_pipeline"])}}}
    stack = FakeMMStack(cfg, infos=[{"token": "tok"}]).install(monkeypatch)
    (tmp_path / "repo").mkdir(exist_ok=True)
    adapter = load_adapter("VAD").Adapter({"repo": str(tmp_path / "repo"), "config": "cfg.py", "checkpoint": "w.pth",
                                           "dataroot": str(tmp_path), "device": "cpu", "options": options})
    adapter.load()
    return adapter, stack


def test_load_keeps_gt_work_out_by_default_and_in_on_request(monkeypatch, tmp_path, upstream_cfg):
    adapter, stack = _vad_load(monkeypatch, tmp_path, upstream_cfg, {})
    assert "LoadPointsFromFile" not in _types(stack.call("build_dataset")["pipeline"])
    assert adapter.dataset.is_vis_on_test is False
    methods = load_adapter("VAD").GT_METRIC_METHODS
    assert set(methods) <= set(adapter.model.__dict__)              # shadowed on the instance
    assert all(getattr(adapter.model, name)("gt_bbox", match_dis_thresh=2.0) == {} for name in methods)

    with pytest.raises(RuntimeError, match="LIDAR_TOP keyframes"):     # upstream's path reads the LiDAR
        _vad_load(monkeypatch, tmp_path, upstream_cfg, {"gt_metrics": True})
    (tmp_path / "samples" / "LIDAR_TOP").mkdir(parents=True)
    adapter, stack = _vad_load(monkeypatch, tmp_path, upstream_cfg, {"gt_metrics": True})
    assert _types(stack.call("build_dataset")["pipeline"]) == _types(upstream_cfg["test_pipeline"])
    assert not hasattr(adapter.dataset, "is_vis_on_test")          # left as the dataset sets it (True)
    assert not set(load_adapter("VAD").GT_METRIC_METHODS) & set(adapter.model.__dict__)


def test_model_toml_states_the_map_vectors_vad_tiny_outputs(upstream_cfg):
    max_num = upstream_cfg["model"]["pts_bbox_head"]["map_bbox_coder"]["max_num"]
    assert max_num == 50
    from onlinemap.registry.discover import find_model

    desc = find_model("VAD").description
    assert f"top {max_num} map vectors" in desc and "100 map vectors" not in desc


def test_upstream_simple_test_pts_runs_unchanged_without_its_metric_work(demo):
    """Execute VAD's own ``simple_test_pts`` / ``map_pred2result`` (read from the pinned VAD.py) on a stand-in head.

    With the metric methods left as they are they run (here they raise, to prove it); after
    ``skip_gt_metrics`` the same upstream code returns the same detections, map and plan, and an
    empty metric dict.
    """
    torch = pytest.importorskip("torch")
    src = upstream_file(VAD_TAR, "projects/mmdet3d_plugin/VAD/VAD.py")
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "VAD")
    wanted = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name in ("simple_test_pts", "map_pred2result")]
    namespace = {"torch": torch, "copy": copy,
                 "bbox3d2result": lambda b, s, l: {"boxes_3d": b, "scores_3d": s, "labels_3d": l}}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "VAD.py", "exec"), namespace)  # noqa: S102

    g = torch.Generator().manual_seed(0)
    n, m = 5, 4
    outs = {"bev_embed": torch.zeros(1, 8), "ego_fut_preds": torch.randn(1, 3, 6, 2, generator=g)}
    decoded = (torch.randn(n, 9, generator=g), torch.rand(n, generator=g), torch.arange(n) % 10,
               torch.randn(n, 6, 12, generator=g), torch.rand(m, 4, generator=g), torch.rand(m, generator=g),
               torch.arange(m) % 3, torch.randn(m, 20, 2, generator=g))

    class Head:
        def __call__(self, x, img_metas, prev_bev=None, ego_his_trajs=None, ego_lcf_feat=None):
            return outs

        def get_bboxes(self, outs, img_metas, rescale=False):
            return [decoded]

    class Model:
        pts_bbox_head = Head()
        map_pred2result = namespace["map_pred2result"]

        def _metric(self, *args, **kwargs):
            raise AssertionError("VAD's GT metric code ran")

        assign_pred_to_gt_vip3d = compute_motion_metric_vip3d = compute_planner_metric_stp3 = _metric

    inputs = dict(x=[torch.zeros(1)], img_metas=[{}], gt_bboxes_3d=[[torch.zeros(3, 9)]], gt_labels_3d=[[torch.zeros(3)]],
                  fut_valid_flag=[[True]], ego_his_trajs=torch.zeros(1, 1, 2, 2), ego_fut_trajs=torch.zeros(1, 1, 6, 2),
                  ego_fut_cmd=torch.tensor([0.0, 0.0, 1.0]).reshape(1, 1, 1, 3), ego_lcf_feat=torch.zeros(1, 1, 1, 9),
                  gt_attr_labels=[[torch.zeros(3, 34)]])
    model = Model()
    with pytest.raises(AssertionError, match="GT metric code ran"):
        namespace["simple_test_pts"](model, **inputs)
    demo.skip_gt_metrics(model)
    bev, results, metrics = namespace["simple_test_pts"](model, **inputs)
    assert metrics == {} and bev is outs["bev_embed"] and len(results) == 1
    res = results[0]
    assert torch.equal(res["boxes_3d"], decoded[0]) and torch.equal(res["map_pts_3d"], decoded[7])
    assert torch.equal(res["ego_fut_preds"], outs["ego_fut_preds"][0]) and res["ego_fut_cmd"].shape == (1, 1, 1, 3)
    pred = demo.convert_vad_outputs({"pts_bbox": res, "metric_results": metrics}, "a" * 32, [1, 0, 0, 0], [0, 0, 0],
                                    [1, 0, 0, 0], [0, 0, 0], det_score_threshold=0.0)
    assert pred["plan"]["command"] == "go_straight" and len(pred["map_elements"]) == m
