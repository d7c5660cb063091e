"""The OpenLane-V2 sample source and the synthetic subset A: devkit format, driver, standalone path, TopoMLP's contract."""
from __future__ import annotations

import glob
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import pytest

from onlinemap.data.selection import resolve_dataset, select_samples
from onlinemap.errors import DatasetError
from onlinemap.harness import openlane_index
from tests.conftest import REPO, run_cli

NEEDS = ["openlane_v2"]
UPSTREAM = Path(os.environ.get("ONLINEMAP_UPSTREAM", REPO.parent / "shared" / "upstream"))
OLV2_TARBALL = UPSTREAM / "OpenDriveLab+OpenLane-V2-4bff0185.tar.gz"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def devkit(tmp_path_factory):
    """OpenLane-V2 v1.1.0's own devkit (openlanev2.dataset.Collection, preprocessing.collect) from the snapshot."""
    if not OLV2_TARBALL.is_file():
        pytest.skip(f"no OpenLane-V2 snapshot at {OLV2_TARBALL}")
    pytest.importorskip("cv2")        # openlanev2.io imports cv2
    src = tmp_path_factory.mktemp("openlanev2-src")
    with tarfile.open(OLV2_TARBALL) as tar:
        tar.extractall(src, members=[m for m in tar.getmembers() if m.name.startswith("openlanev2/")])
    saved = {k: v for k, v in sys.modules.items() if k.startswith("openlanev2")}
    sys.path.insert(0, str(src))
    # openlanev2.preprocessing/__init__ also imports check.py (needs iso3166): load collect.py alone
    pkg = types.ModuleType("openlanev2.preprocessing")
    pkg.__path__ = [str(src / "openlanev2" / "preprocessing")]
    sys.modules["openlanev2.preprocessing"] = pkg
    try:
        from openlanev2.dataset import Collection

        yield types.SimpleNamespace(Collection=Collection,
                                    collect=importlib.import_module("openlanev2.preprocessing.collect").collect)
    finally:
        sys.path.remove(str(src))
        for k in [k for k in sys.modules if k.startswith("openlanev2")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _same(a, b) -> bool:
    import numpy as np

    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def test_the_collection_is_what_the_devkits_collect_makes(devkit, synth_openlane_root, tmp_path):
    import pickle
    import shutil

    copy = tmp_path / "olv2"
    shutil.copytree(synth_openlane_root, copy)
    data_dict = json.loads((copy / "data_dict_subset_A.json").read_text())
    devkit.collect(str(copy), data_dict, "by_devkit", point_interval=20)   # as preprocess.py does for val
    ours = pickle.loads((synth_openlane_root / "data_dict_subset_A_val.pkl").read_bytes())
    theirs = pickle.loads((copy / "by_devkit.pkl").read_bytes())
    assert _same(ours, theirs)
    col = devkit.Collection(str(synth_openlane_root), str(synth_openlane_root), "data_dict_subset_A_val")
    for key in col.keys:   # what TopoMLP's OpenLaneV2SubsetADataset reads, with its own shape asserts
        frame = col.get_frame_via_identifier(key)
        assert frame.get_camera_list()[0] == "ring_front_center"
        assert all(Path(frame.get_image_path(c)).is_file() for c in frame.get_camera_list())
        lanes = frame.get_annotations_lane_centerlines()
        lclc, lcte = frame.get_annotations_topology_lclc(), frame.get_annotations_topology_lcte()
        assert len({lane["points"].shape for lane in lanes}) == 1
        assert len(lanes) == lclc.shape[0] == lclc.shape[1] == lcte.shape[0]
        assert len(frame.get_annotations_traffic_elements()) == lcte.shape[1]
        assert frame.get_pose()["rotation"].shape == (3, 3)


def test_the_devkits_own_preprocess_script_collects_the_synthetic_root(devkit, synth_openlane_root, tmp_path,
                                                                       monkeypatch):
    """``cd data && python OpenLane-V2/preprocess.py`` (model.toml [data]) reads EVERY *.json at the root as a
    data dict; the synthetic root's marker must not be one (it was SYNTHETIC.json: AttributeError in collect)."""
    import pickle
    import runpy
    import shutil

    copy = tmp_path / "OpenLane-V2"            # preprocess.py hard-codes ./OpenLane-V2
    shutil.copytree(synth_openlane_root, copy)
    (copy / "data_dict_subset_A_val.pkl").unlink()
    with tarfile.open(OLV2_TARBALL) as tar:
        script = tar.extractfile("data/OpenLane-V2/preprocess.py").read()
    (tmp_path / "preprocess.py").write_bytes(script)
    # the fixture loads collect.py without the package's check.py (iso3166): what `from ... import collect` finds
    monkeypatch.setattr(sys.modules["openlanev2.preprocessing"], "collect", devkit.collect, raising=False)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(tmp_path / "preprocess.py"), run_name="__main__")
    ours = pickle.loads((synth_openlane_root / "data_dict_subset_A_val.pkl").read_bytes())
    assert _same(ours, pickle.loads((copy / "data_dict_subset_A_val.pkl").read_bytes()))


def test_the_index_needs_only_the_standard_library_on_python_3_7(synth_openlane_root):
    pythons = sorted(glob.glob("/root/.pyenv/versions/3.7*/bin/python"))
    if not pythons:
        pytest.skip("no Python 3.7 here")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import openlane_index as o; "
            "assert 'numpy' not in sys.modules; s = o.ordered_samples(sys.argv[2], o.detect_collection(sys.argv[2])); "
            "assert 'numpy' not in sys.modules; print(len(s), s[0]['token'])")
    out = subprocess.run([pythons[-1], "-I", "-c", code, str(REPO / "onlinemap" / "harness"), str(synth_openlane_root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["8", "val_10000_315967376899927209"]


def test_samples_are_frames_in_driving_order(synth_openlane_root):
    root, collection = resolve_dataset(synth_openlane_root, needs=NEEDS)
    assert collection == "data_dict_subset_A_val"
    samples = select_samples(root, collection, count=5, warmup=1, needs=NEEDS)
    assert len(samples) == 6
    first = samples[0]
    assert first["identifier"] == ["val", "10000", "315967376899927209"] and first["scene_token"] == "10000"
    assert [s["index_in_scene"] for s in samples] == [0, 1, 2, 3, 0, 1]
    assert [s["scene_name"] for s in samples] == ["10000"] * 4 + ["10001"] * 2
    stamps = [s["timestamp"] for s in samples[:4]]
    assert stamps == sorted(stamps) and all(isinstance(t, int) for t in stamps)
    topo = _load(REPO / "envs" / "TopoMLP" / "demo.py", "_topomlp_for_tokens")
    assert all(s["token"] == topo.frame_id(tuple(s["identifier"])) for s in samples)
    with pytest.raises(DatasetError, match="not an OpenLane-V2 root"):
        resolve_dataset(REPO / "docs", needs=NEEDS)
    with pytest.raises(DatasetError, match="has 8 samples"):
        select_samples(root, collection, count=10, warmup=0, needs=NEEDS)


def test_the_real_topomlp_prepare_finds_every_frame(devkit, synth_openlane_root, monkeypatch):
    """envs/TopoMLP/demo.py prepare() and convert() on our samples; the dataset index as TopoMLP builds it.

    mmcv.parallel's collate/scatter (batching onto a device) are replaced by pass-throughs: what is
    checked is the frame lookup from the sample dict, which happens before them.
    """
    topo = _load(REPO / "envs" / "TopoMLP" / "demo.py", "_topomlp_contract")
    parallel = types.ModuleType("mmcv.parallel")
    parallel.collate = lambda batch, samples_per_gpu=1: batch
    parallel.scatter = lambda batch, devices: [batch]
    monkeypatch.setitem(sys.modules, "mmcv", types.ModuleType("mmcv"))
    monkeypatch.setitem(sys.modules, "mmcv.parallel", parallel)
    monkeypatch.setitem(sys.modules, "onlinemap_adapterlib", types.SimpleNamespace(device_ids=lambda device: [-1]))
    col = devkit.Collection(str(synth_openlane_root), str(synth_openlane_root), "data_dict_subset_A_val")
    adapter = topo.Adapter({"dataroot": str(synth_openlane_root), "device": "cpu", "options": {}})
    adapter.dataset = list(col.keys)              # dataset[idx] -> here: the identifier itself
    adapter.index = topo.frame_index(col.keys)    # as load() does from dataset.data_infos
    samples = select_samples(*resolve_dataset(synth_openlane_root, needs=NEEDS), count=None, warmup=0, needs=NEEDS)
    assert len(samples) == len(col.keys)
    for s in json.loads(json.dumps(samples)):     # as the worker gets them: through the JSON job file
        assert adapter.prepare(s) == [tuple(s["identifier"])]


def test_the_driver_streams_openlane_frames_through_a_stand_in(om_home, synth_openlane_root):
    out = run_cli("test", "--model", "olv2ref", "--dataroot", str(synth_openlane_root), "--device", "cpu",
                  "--samples", "5", "--warmup", "1", "--json", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    runs = [p for p in (om_home / "results").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1
    preds = [json.loads(line) for line in (runs[0] / "predictions.jsonl").read_text().splitlines() if line.strip()]
    tokens = [p.get("sample_token") or p.get("prediction", {}).get("sample_token") for p in preds]
    assert "val_10000_315967376899927210" not in tokens and "val_10000_315967377399927209" in tokens
    record = json.loads((runs[0] / "run.json").read_text())
    assert record["settings"]["version"] == "data_dict_subset_A_val"


def test_topomlp_on_the_synthetic_subset_reaches_the_env_check(om_home, synth_openlane_root):
    out = run_cli("test", "--model", "TopoMLP", "--dataroot", str(synth_openlane_root), "--device", "cpu")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "env" in out.stderr and "not a nuScenes" not in out.stderr and "OpenLane-V2 root" not in out.stderr


def test_the_standalone_path_runs_one_frame(synth_openlane_root, tmp_path):
    standalone = _load(REPO / "onlinemap" / "harness" / "standalone.py", "_standalone_olv2")
    stand_in = _load(REPO / "tests" / "fixtures" / "envs" / "olv2ref" / "demo.py", "_olv2ref_standalone")
    out = tmp_path / "pred.json"
    token = "val_10001_%d" % (315967376899927209 + 10 ** 11)
    rc = standalone.main(stand_in.Adapter, ["--dataroot", str(synth_openlane_root), "--sample-token", token,
                                           "--device", "cpu", "--out", str(out)])
    assert rc == 0
    pred = json.loads(out.read_text())
    assert pred["sample_token"] == token and len(pred["topology"]["lanes"]) == 6
    assert standalone.main(stand_in.Adapter, ["--dataroot", str(synth_openlane_root), "--sample-token", "nope",
                                              "--out", str(out)]) == 3


def test_synth_openlane_cli_and_its_refusal(tmp_path, om_home):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "data_dict_subset_A_val.pkl").write_bytes(b"real")
    out = run_cli("data", "synth", "--openlane", str(tmp_path / "user"))
    assert out.returncode == 2 and (tmp_path / "user" / "data_dict_subset_A_val.pkl").read_bytes() == b"real"
    out = run_cli("data", "synth", "--openlane", str(tmp_path / "new"), "--scenes", "1", "--samples-per-scene", "2")
    assert out.returncode == 0, out.stderr
    assert "wrote 2 frames in 1 segments" in out.stdout
    assert openlane_index.detect_collection(str(tmp_path / "new")) == "data_dict_subset_A_val"


def test_without_dataroot_an_openlane_model_uses_the_synthetic_subset(om_home, monkeypatch, tmp_path):
    from onlinemap.readiness import check_model
    from onlinemap.registry import find_model

    spec = find_model("olv2ref")
    monkeypatch.delenv("OPENLANE_V2_ROOT", raising=False)
    data = [c for c in check_model(spec) if c.step == "data"][0]
    assert not data.ok and data.fix == "onlinemap data synth --openlane"      # its own default folder only
    monkeypatch.setenv("OPENLANE_V2_ROOT", str(tmp_path))                   # a user's path: never synth over it
    data = [c for c in check_model(spec) if c.step == "data"][0]
    assert not data.ok and "data synth" not in data.fix
    monkeypatch.delenv("OPENLANE_V2_ROOT")
    assert run_cli("data", "synth", "--openlane", "--scenes", "1", "--samples-per-scene", "3").returncode == 0
    out = run_cli("test", "--model", "olv2ref", "--device", "cpu", "--samples", "2", "--warmup", "1", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
