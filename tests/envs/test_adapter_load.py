"""How the adapters build their model and batches (load / prepare), against the upstream tools.

Issues 13/14: ``--device cpu`` fed a 6-D image to the detectors (mmcv 1.4.0's CPU ``scatter``
unsqueezes), ``tools/test.py`` sets ``train_cfg = None`` and ``model.CLASSES`` from the checkpoint
meta, a missing checkpoint must be refused before the dataset and model are built, ``wrap_fp16_model``
has no place on the CPU, and a GPU-only pack must refuse ``--device cpu`` before launch.

mmcv / mmdet3d are not installed in the test suite: ``FakeMMStack`` (tests/envs/helpers.py) records
the calls an adapter makes; the behaviour of mmcv's own collate/scatter is checked against the real
package where it is installed (``test_cpu_batch_with_real_mmcv``; it was run with mmcv 1.4.0, where
the old code gives the 6-D tensor, and 1.7.2).
"""
import sys
import types
from pathlib import Path

import pytest
from tests.envs.helpers import FakeMMStack, load_adapter

lib_path = Path(__file__).resolve().parents[2] / "envs" / "_shared"
sys.path.insert(0, str(lib_path))
import onlinemap_adapterlib as lib  # noqa: E402

sys.path.remove(str(lib_path))


# ----------------------------------------------------------------------------------------------
# item 1: the CPU batch
# ----------------------------------------------------------------------------------------------

class DataContainerStandIn:
    """The attributes of mmcv's DataContainer that matter here (``data``, ``stack``, ``cpu_only``)."""

    def __init__(self, data, stack=False, cpu_only=False):
        self.data, self.stack, self.cpu_only = data, stack, cpu_only


def _collated():
    """What mmcv's ``collate([item], samples_per_gpu=1)`` returns for one multi-view test sample.

    Recorded from the real mmcv 1.4.0 and 1.7.2: every DataContainer's ``data`` is a list with one
    chunk per GPU; a stacked image chunk is (1, 6, 3, H, W), cpu_only metas are [[meta]].
    """
    import torch

    return {"img_metas": [DataContainerStandIn([[{"scene_token": "s"}]], cpu_only=True)],
            "img": [DataContainerStandIn([torch.zeros(1, 6, 3, 8, 16)], stack=True)],
            "gt_labels_3d": [DataContainerStandIn([[torch.zeros(4)]])]}


def _fake_parallel(monkeypatch, scattered):
    def collate(batch, samples_per_gpu=1):
        assert len(batch) == 1 and samples_per_gpu == 1
        return _collated()

    def scatter(data, target_gpus):
        scattered.append(list(target_gpus))
        if target_gpus == [-1]:
            raise AssertionError("the CPU batch must not go through mmcv's scatter (mmcv 1.4.0 unsqueezes it to 6-D)")
        return [data]

    mmcv = types.ModuleType("mmcv")
    mmcv.parallel = types.ModuleType("mmcv.parallel")
    mmcv.parallel.collate, mmcv.parallel.scatter = collate, scatter
    monkeypatch.setitem(sys.modules, "mmcv", mmcv)
    monkeypatch.setitem(sys.modules, "mmcv.parallel", mmcv.parallel)


def test_cpu_batch_unwraps_the_data_containers_like_inference_detector(monkeypatch):
    scattered = []
    _fake_parallel(monkeypatch, scattered)
    batch = lib.collate_to_device({"any": "item"}, "cpu")
    assert scattered == []
    assert tuple(batch["img"][0].shape) == (1, 6, 3, 8, 16)          # 5-D, as the detectors take it
    assert batch["img_metas"] == [[{"scene_token": "s"}]]              # img_metas[0][0] is the sample's meta
    assert [tuple(t.shape) for t in batch["gt_labels_3d"][0]] == [(4,)]
    lib.collate_to_device({"any": "item"}, "cuda:1")                    # GPUs keep MMDataParallel's scatter
    assert scattered == [[1]]


class _Dataset(list):
    data_infos = [{"token": "tok"}]


@pytest.mark.parametrize("model", ["PETR", "StreamPETR", "TopoMLP", "MapTR", "VAD"])
def test_every_mmdet3d_adapter_prepares_through_the_shared_cpu_path(monkeypatch, model):
    scattered = []
    _fake_parallel(monkeypatch, scattered)
    demo = load_adapter(model)
    adapter = demo.Adapter({"device": "cpu", "dataroot": "/nowhere"})
    adapter.dataset, adapter.index = _Dataset([{"sample": 0}]), {"tok": 0}
    out = adapter.prepare({"token": "tok", "scene_token": "s", "index_in_scene": 0})
    data = out["data"] if model in ("StreamPETR", "MapTR", "VAD") else out
    assert tuple(data["img"][0].shape) == (1, 6, 3, 8, 16) and scattered == []


def test_cpu_batch_with_real_mmcv():
    parallel = pytest.importorskip("mmcv.parallel", reason="mmcv is not installed in the test venv")
    import torch

    def item():
        return {"img_metas": [parallel.DataContainer({"scene_token": "s"}, cpu_only=True)],
                "img": [parallel.DataContainer(torch.zeros(6, 3, 8, 16), stack=True)]}

    batch = lib.collate_to_device(item(), "cpu")
    assert tuple(batch["img"][0].shape) == (1, 6, 3, 8, 16)
    assert batch["img_metas"] == [[{"scene_token": "s"}]]


# ----------------------------------------------------------------------------------------------
# items 2 and 3: the model is built as tools/test.py builds it; the checkpoint is refused first
# ----------------------------------------------------------------------------------------------

def _detector_cfg(fp16=False):
    cfg = {"model": {"type": "Det", "pretrained": "torchvision://resnet50", "train_cfg": {"assigner": "x"}},
           "data": {"test": {"type": "Set", "pipeline": []}}}
    if fp16:
        cfg["fp16"] = {"loss_scale": 512.0}
    return cfg


def _settings(tmp_path, device="cpu", checkpoint="w.pth", options=None):
    (tmp_path / "repo").mkdir(exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    return {"repo": str(tmp_path / "repo"), "config": str(tmp_path / "repo" / "cfg.py"), "checkpoint": checkpoint,
            "dataroot": str(tmp_path / "data"), "device": device, "options": options or {}}


def _vad_cfg(fp16=False):
    cfg = _detector_cfg(fp16)
    cfg["data"]["test"]["pipeline"] = [
        {"type": "LoadPointsFromFile"},
        {"type": "MultiScaleFlipAug3D", "transforms": [{"type": "CustomCollect3D", "keys": ["points", "img"]}]}]
    return cfg


ADAPTERS = ["PETR", "StreamPETR", "TopoMLP", "MapTR", "VAD"]


def _load(model, monkeypatch, tmp_path, cfg=None, meta=None, **settings):
    stack = FakeMMStack(cfg or (_vad_cfg() if model == "VAD" else _detector_cfg()),
                        infos=[{"token": "tok", "cams": {}}], checkpoint_meta=meta).install(monkeypatch)
    adapter = load_adapter(model).Adapter(_settings(tmp_path, **settings))
    adapter.load()
    return adapter, stack


@pytest.mark.parametrize("model", ADAPTERS)
def test_missing_checkpoint_is_refused_before_any_dataset_or_model(monkeypatch, tmp_path, model):
    stack = FakeMMStack(_vad_cfg() if model == "VAD" else _detector_cfg(), infos=[{"token": "tok"}]).install(monkeypatch)
    adapter = load_adapter(model).Adapter(_settings(tmp_path, checkpoint=None))
    with pytest.raises((ValueError, RuntimeError), match="checkpoint"):
        adapter.load()
    # nothing was built (PETR/StreamPETR/TopoMLP used to build the dataset and model first)
    assert not {"Config.fromfile", "build_dataset", "build_model"} & set(stack.names())


@pytest.mark.parametrize("model", ADAPTERS)
def test_model_built_like_tools_test_py(monkeypatch, tmp_path, model):
    adapter, stack = _load(model, monkeypatch, tmp_path, meta={"CLASSES": ("from-checkpoint",)})
    built = stack.call("build_model")
    assert built["train_cfg"] is None and built["pretrained"] is None
    assert stack.names().index("build_dataset") < stack.names().index("build_model") < stack.names().index("load_checkpoint")
    assert stack.call("load_checkpoint")[1] == "cpu"
    assert adapter.model.CLASSES == ("from-checkpoint",) and adapter.model.evaluated
    assert "wrap_fp16_model" not in stack.names()


@pytest.mark.parametrize("model", ["PETR", "VAD"])
def test_classes_fall_back_to_the_dataset_without_checkpoint_meta(monkeypatch, tmp_path, model):
    adapter, _ = _load(model, monkeypatch, tmp_path)
    assert adapter.model.CLASSES == ("dataset-class",)


@pytest.mark.parametrize("model", ADAPTERS)
def test_fp16_wrapped_on_cuda_only(monkeypatch, tmp_path, model):
    cfg = _vad_cfg(fp16=True) if model == "VAD" else _detector_cfg(fp16=True)
    adapter, stack = _load(model, monkeypatch, tmp_path, cfg=cfg, device="cpu")
    assert "wrap_fp16_model" not in stack.names() and adapter.model.device == "cpu"
    cfg = _vad_cfg(fp16=True) if model == "VAD" else _detector_cfg(fp16=True)
    adapter, stack = _load(model, monkeypatch, tmp_path, cfg=cfg, device="cuda:0")
    assert stack.names().count("wrap_fp16_model") == 1 and adapter.model.device == "cuda:0"


# ----------------------------------------------------------------------------------------------
# item 1, second half: a GPU-only pack refuses --device cpu before launch
# ----------------------------------------------------------------------------------------------

def test_gpu_only_packs_refuse_cpu_before_launch(monkeypatch, tmp_path):
    from onlinemap import readiness
    from onlinemap.environments.guard import check_cpu_ok
    from onlinemap.errors import MissingPrerequisiteError
    from onlinemap.registry.discover import find_model
    from onlinemap.runner import RunSettings, run_model

    for name in ("PETR", "StreamPETR", "MapTR", "VAD", "TopoMLP"):
        spec = find_model(name)
        assert spec.gpu.cpu_ok is False
        with pytest.raises(MissingPrerequisiteError, match="cpu_ok = false"):
            check_cpu_ok(spec, "cpu")
        check_cpu_ok(spec, "cuda:0")
    check_cpu_ok(find_model("reference"), "cpu")

    monkeypatch.setattr(readiness, "require_ready", lambda spec, dataroot=None: [])   # as if PETR were installed
    results = tmp_path / "results"
    with pytest.raises(MissingPrerequisiteError) as err:
        run_model(find_model("PETR"), RunSettings(device="cpu", dataroot=tmp_path), results_root=results)
    assert "cpu_ok = false" in err.value.message and "\n" not in err.value.message
    assert not results.exists() or not any(results.iterdir())


# ----------------------------------------------------------------------------------------------
# item 6: MapTR's fusion config reads LiDAR sweeps that [data] needs does not list
# ----------------------------------------------------------------------------------------------

def test_maptr_fusion_config_is_refused_without_lidar_sweeps(monkeypatch, tmp_path):
    from tests.envs.helpers import upstream_config

    fusion = upstream_config("hustvl+MapTR-a6872d8d.tar.gz", "projects/configs/maptr/maptr_tiny_fusion_24e.py")
    camera = upstream_config("hustvl+MapTR-a6872d8d.tar.gz", "projects/configs/maptr/maptr_tiny_r50_24e.py")

    def cfg(ns):
        return {"model": {"type": "MapTR"}, "data": {"test": {"type": "CustomNuScenesLocalMapDataset",
                                                              "pipeline": ns["test_pipeline"]}}}

    _load("MapTR", monkeypatch, tmp_path, cfg=cfg(camera))                   # camera-only: no LiDAR needed
    stack = FakeMMStack(cfg(fusion)).install(monkeypatch)
    adapter = load_adapter("MapTR").Adapter(_settings(tmp_path))
    with pytest.raises(RuntimeError, match=r"LIDAR_TOP keyframes \(CustomLoadPointsFromFile\)"):
        adapter.load()
    (tmp_path / "data" / "samples" / "LIDAR_TOP").mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"LiDAR sweeps \(CustomLoadPointsFromMultiSweeps\).*sweeps/LIDAR_TOP is missing"):
        adapter.load()
    assert "build_dataset" not in stack.names()
    (tmp_path / "data" / "sweeps" / "LIDAR_TOP").mkdir(parents=True)
    adapter.load()
    assert "build_dataset" in stack.names()
