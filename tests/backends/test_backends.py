"""Backends as a measured axis on the reference model: export (ONNX, PT2), verify, bench, compare, report.

Everything runs the real tools: torch.onnx.export / torch.export, onnxruntime (CPU), the real
worker, registry and CLI in subprocesses, on the synthetic nuScenes dataset.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_cli

pytestmark = pytest.mark.timeout(900)

torch = pytest.importorskip("torch")


def _export(fmt: str, env: dict | None = None) -> Path:
    proc = run_cli("export", "--model", "reference", "--format", fmt, "--json", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads(proc.stdout)
    return Path(meta["folder"])


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory, synth_root) -> tuple[Path, Path]:
    """(home, folder): ONE real ``onlinemap export --format onnx`` of the reference model, made in a home of its own.

    Read-only for the tests: each copies the folder into its own home (``_copy_export``). The folder's name is
    the export's content key (adapter, harness, env, checkpoint, opset), not a path, so a copy is found there
    exactly as the export the command would write."""
    home = tmp_path_factory.mktemp("export-home")
    folder = _export("onnx", env={"ONLINEMAP_HOME": str(home), "NUSCENES_ROOT": str(synth_root),
                                  "ONLINEMAP_ENVS": str(FIXTURES / "envs"), "ONLINEMAP_RESULTS": ""})
    return home, folder


def _copy_export(onnx_export, om_home: Path) -> Path:
    import shutil

    _, folder = onnx_export
    dest = om_home / "exports" / folder.name
    shutil.copytree(folder, dest)
    return dest


def test_flatten_rebuild_round_trip():
    from onlinemap.harness import flat

    a, b = torch.zeros(2, 3), torch.ones(4)
    nested = {"img": [a, {"x": b}], "img_metas": [{"scale": 0.5, "name": "cam"}]}
    tensors, baked = flat.flatten(nested)
    assert [p for p, _ in tensors] == [["img", 0], ["img", 1, "x"]]
    assert [flat.path_str(p) for p, _ in baked] == ["img_metas[0].scale", "img_metas[0].name"]
    c, d = torch.full((2, 3), 7.0), torch.full((4,), 8.0)
    again = flat.rebuild(nested, iter([c, d]))
    assert again["img"][0] is c and again["img"][1]["x"] is d and again["img_metas"] == nested["img_metas"]
    assert flat.from_paths([(["a"], 1), (["b", 0], 2), (["b", 1], 3)]) == {"a": 1, "b": [2, 3]}


def test_reference_exports_onnx_and_pt2_and_verifies(om_home, onnx_export):
    export_home, made = onnx_export
    meta = json.loads((made / "metadata.json").read_text())
    assert (made / "model.onnx").is_file() and made.name.startswith("reference-") and made.name.endswith("-onnx")
    assert made.parent == export_home / "exports"
    _copy_export(onnx_export, om_home)
    assert [(i["path"], i["shape"], i["dtype"]) for i in meta["inputs"]] == [(["images"], [6, 3, 128, 224], "float32")]
    assert [b["path_str"] for b in meta["baked"]] == ["ego_pose.token", "ego_pose.timestamp", "ego_pose.rotation[0]",
                                                      "ego_pose.rotation[1]", "ego_pose.rotation[2]",
                                                      "ego_pose.rotation[3]", "ego_pose.translation[0]",
                                                      "ego_pose.translation[1]", "ego_pose.translation[2]"]
    assert [o["path_str"] for o in meta["outputs"]] == ["box_logits", "box_params", "map_logits", "map_points"]
    assert meta["exporter"]["opset"] == 17 and meta["exporter"]["torch"] == torch.__version__
    assert meta["traced_on"]["sample_token"] and len(meta["adapter"]["sha256"]) == 64
    assert "lock_hash" in meta["env"] and "sha256" in meta["checkpoint"]

    proc = run_cli("verify", "--model", "reference", "--backend", "onnxruntime", "--samples", "2", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout and "FAILED" not in proc.stdout and "max abs" in proc.stdout
    assert "detection.NDS" in proc.stdout and "map.mAP" in proc.stdout
    for name in ("box_logits", "box_params", "map_logits", "map_points"):
        assert name in proc.stdout

    pt2 = _export("pt2")
    assert (pt2 / "model.pt2").is_file()
    proc = run_cli("verify", "--model", "reference", "--backend", "pt2", "--samples", "1", "--no-metrics", "--json",
                   timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and len(result["tensors"]) == 4 and all(t["max_abs"] <= 1e-5 for t in result["tensors"])


def test_planted_weight_fault_fails_verify_naming_the_tensor(om_home, onnx_export):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    folder = _copy_export(onnx_export, om_home)      # a copy: the fault is planted in this test's home only
    model = onnx.load(str(folder / "model.onnx"))
    # the map head's weight feeds map_logits and map_points only; the box outputs must stay PASSED
    init = next(i for i in model.graph.initializer if "map_head" in i.name and "weight" in i.name)
    w = numpy_helper.to_array(init).copy()
    w[0, :] += 0.05
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(folder / "model.onnx"))

    proc = run_cli("verify", "--model", "reference", "--backend", "onnxruntime", "--samples", "1", "--no-metrics",
                   timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors and all("map_" in line and "max abs difference" in line for line in errors), proc.stderr
    assert not any("box_" in line for line in errors)
    assert "Traceback" not in proc.stderr


def test_bench_on_onnxruntime_beside_torch_in_compare_and_report(om_home, tmp_path, onnx_export):
    _copy_export(onnx_export, om_home)
    for backend in ("torch", "onnxruntime"):
        proc = run_cli("bench", "--models", "reference", "--backend", backend, "-n", "2", "--warmup", "1",
                       "--device", "cpu", "--no-telemetry", timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {json.loads((d / "run.json").read_text())["settings"]["backend"]: d for d in (om_home / "results").iterdir()}
    assert set(runs) == {"torch", "onnxruntime"}
    events = [json.loads(line) for line in (runs["onnxruntime"] / "events.jsonl").read_text().splitlines()]
    loaded = next(e for e in events if e["event"] == "loaded")
    assert loaded["backend"]["name"] == "onnxruntime" and "CPUExecutionProvider" in loaded["backend"]["providers"]
    preds = [json.loads(line) for line in (runs["onnxruntime"] / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and preds[0]["detections_3d"] and preds[0]["map_elements"]

    proc = run_cli("compare", "--latest", "--models", "reference", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("reference")]
    assert sorted(r[1] for r in rows) == ["onnxruntime", "torch"] and "backend" in proc.stdout

    out = tmp_path / "report"
    proc = run_cli("report", "--models", "reference", "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (out / "summary.md").read_text()
    assert "| backend |" in summary.replace("| model | backend |", "| backend |")
    assert "| reference | onnxruntime |" in summary and "| reference | torch |" in summary


def test_refusals_are_one_line(om_home):
    proc = run_cli("bench", "--models", "reference", "--backend", "onnxruntime", "-n", "1", "--device", "cpu",
                   timeout=300)
    assert proc.returncode == 3 and "onlinemap export --model reference --format onnx" in proc.stdout + proc.stderr, proc.stdout
    assert "Traceback" not in proc.stderr
    proc = run_cli("bench", "--models", "reference", "--backend", "tensorrt", "-n", "1", "--device", "cpu",
                   timeout=300)
    assert proc.returncode == 3 and "needs a CUDA GPU" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("verify", "--model", "reference", "--backend", "onnxruntime", timeout=300)
    assert proc.returncode == 3 and "no onnx export" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("export", "--model", "crashref", "--format", "onnx", timeout=300)
    assert proc.returncode == 1 and "offers no export hook" in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr
