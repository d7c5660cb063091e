"""The lane's onnx stage records an outcome whatever the model-side script does: it never fails the lane."""
import json
import os
import stat

import pytest

from verification import lane

PROGRESS = {"torch": "2.8.0+cu128", "graph": "first-frame", "running": "torch.onnx.export(dynamo=True)",
            "attempts": [{"exporter": "torch.onnx.export(dynamo=False)", "ok": False,
                          "error": "UnsupportedOperatorError: Exporting the operator aten::foo is not supported"}]}


def _fake_venv(tmp_path, body):
    """A venv whose python is a script standing in for onnx_check.py (argv: python SCRIPT JOB)."""
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + body)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return tmp_path / "venv"


def _stage(tmp_path, monkeypatch, body, timeout="4"):
    monkeypatch.setattr(lane, "WORK", tmp_path / "work")
    monkeypatch.setenv("ONLINEMAP_VERIFY_ONNX_TIMEOUT_S", timeout)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "job.json").write_text(json.dumps({"settings": {"model": "PETR", "device": "cpu"}}))
    spec = lane.spec_of("PETR")
    return lane.onnx_stage("PETR", spec, _fake_venv(tmp_path, body), run_dir, [{"token": "a"}, {"token": "b"}])


def test_an_exporter_running_past_the_limit_is_recorded_with_what_failed_before_it(tmp_path, monkeypatch):
    body = ("cd \"$(dirname \"$2\")\"\n"
            f"echo '{json.dumps(PROGRESS)}' > progress.json\n"
            "exec sleep 120\n")
    result = _stage(tmp_path, monkeypatch, body)
    assert result["status"] == "not_exportable" and result["stage"] == "export", result
    assert result["reason"] == ("first-frame graph: torch.onnx.export(dynamo=False): UnsupportedOperatorError: "
                                "Exporting the operator aten::foo is not supported; torch.onnx.export(dynamo=True): "
                                "did not finish within 4 s (ONLINEMAP_VERIFY_ONNX_TIMEOUT_S)")
    assert result["torch"] == "2.8.0+cu128"
    job = json.loads((tmp_path / "work" / "PETR" / "onnx" / "job.json").read_text())
    assert job["graph"] == "petr" and len(job["samples"]) == 1 and job["rtol"] == 1e-3 and job["atol"] == 1e-5


def test_a_script_that_dies_without_a_result_is_a_failed_outcome_not_a_lane_crash(tmp_path, monkeypatch):
    result = _stage(tmp_path, monkeypatch, "echo 'Segmentation fault in onnx' >&2\nexit 139\n", timeout="120")
    assert result["status"] == "failed" and result["stage"] == "process", result
    assert "exited 139" in result["reason"] and "Segmentation fault in onnx" in result["reason"]
    assert result["stub_calls"] == [] and isinstance(result["seconds"], float)


def _graphs_module():
    import importlib.util

    path = lane.INENV / "onnx_graphs.py"
    spec = importlib.util.spec_from_file_location("_test_onnx_graphs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stack", sorted({lane.rec.MODERN, lane.rec.PAPER}))
def test_every_specs_onnx_graph_exists(stack):
    """A spec naming a graph onnx_graphs.py lacks would only show as a KeyError at the end of a lane run."""
    graphs = _graphs_module().GRAPHS
    for model in lane.rec.spec_models(lane.ROOT, stack):
        name = (lane.spec_of(model, stack).get("onnx") or {}).get("graph")
        assert name is None or name in graphs, f"{model} ({stack}): [onnx] graph {name!r} is not in onnx_graphs.GRAPHS"


def test_the_topomlp_graph_is_simple_forward_on_the_prepared_inputs_its_tensors_only():
    """TopoMLP's graph: the repo's simple_forward on prepare()'s img / img_metas; the metas it returns stay out."""
    import torch

    calls = []

    class Detector(torch.nn.Module):
        def simple_forward(self, img, img_metas):
            calls.append((img, img_metas))
            return {"all_lc_preds_list": img.sum(dim=(2, 3, 4)), "all_lcte_preds_list": img.mean().view(1),
                    "lc_img_metas": [{"img_shape": (2, 2, None)}], "te_img_metas": [{"scale_factor": None}]}

    class Adapter:
        model = Detector()

    img = torch.ones(1, 7, 3, 2, 2)
    metas = [{"pad_shape": [(2, 2, 3)]}]
    out = _graphs_module().GRAPHS["topomlp"](Adapter(), {"img": img, "img_metas": metas})
    assert sorted(out) == ["all_lc_preds_list", "all_lcte_preds_list"]
    assert calls[0][1] is metas and torch.equal(calls[0][0], img) and calls[0][0] is not img
