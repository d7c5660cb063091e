"""The lane's onnx stage script (verification/inenv/onnx_check.py), run for real on a small model.

It runs with the test venv's interpreter (torch CPU, onnx and onnxruntime from the test extras) instead of a
model's lane venv; the export, ONNX Runtime and comparison code are the same. Its outcomes are what the
record keeps: passed with the differences, failed with the tensor named, and an adapter that cannot even
load recorded as a one-line outcome instead of a crash.
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "verification" / "inenv" / "onnx_check.py"

ADAPTER = '''
import torch


class Adapter(object):
    name = "tiny"

    def __init__(self, settings):
        self.settings = settings

    def load(self):
        if self.settings.get("fail_load"):
            raise RuntimeError("checkpoint tiny.pth is not a checkpoint\\nsecond line")
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()

    def prepare(self, sample):
        g = torch.Generator().manual_seed(int(sample["token"]))
        return {"img": [torch.rand(1, 3, 8, 8, generator=g)], "img_metas": [{"scale": 2.0, "name": sample["token"]}]}

    def forward(self, inputs):
        return self.model(inputs["img"][0])

    def convert(self, raw, sample):
        return {"sample_token": sample["token"]}
'''

GRAPHS = '''
CALLS = []


def tiny(adapter, inputs, state=None):
    feat = adapter.model(inputs["img"][0]) * inputs["img_metas"][0]["scale"]
    out = {"feat": feat}
    if state is not None:
        feat = feat + state["memory"]
    out["state"] = {"memory": feat * 0.5}
    return out


def drifting(adapter, inputs, state=None):
    """Differs between the trace and the reference call: ONNX Runtime must be caught disagreeing."""
    CALLS.append(1)
    return {"feat": adapter.model(inputs["img"][0]) + float(len(CALLS))}
'''


def _run(tmp_path, graph, temporal=False, **settings):
    (tmp_path / "tiny_adapter.py").write_text(ADAPTER)
    (tmp_path / "tiny_graphs.py").write_text(textwrap.dedent(GRAPHS))
    out = tmp_path / "out"
    out.mkdir()
    job = {"adapter": str(tmp_path / "tiny_adapter.py"), "settings": settings,
           "samples": [{"token": "1"}, {"token": "2"}], "temporal": temporal,
           "graph": f"{tmp_path / 'tiny_graphs.py'}:{graph}", "out_dir": str(out), "rtol": 1e-3, "atol": 1e-5}
    (out / "job.json").write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out / "job.json")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "result.json").read_text()), out


def test_a_temporal_model_passes_both_graphs_with_state_as_explicit_inputs_and_outputs(tmp_path):
    result, out = _run(tmp_path, "tiny", temporal=True)
    assert result["status"] == "passed", result
    first, later = result["graphs"]
    assert (first["graph"], later["graph"]) == ("first-frame", "later-frame")
    assert first["state_inputs"] == [] and first["state_outputs"] == ["state.memory"]
    assert later["state_inputs"] == ["state.memory"] and later["state_outputs"] == ["state.memory"]
    assert first["baked"] == 2                 # img_metas' scale and name: read at trace time
    assert result["max_abs"] < 1e-5 and result["exporter"] == "torch.onnx.export(dynamo=False)"
    assert result["opset"] == 17 and result["torch"] and result["onnxruntime"]
    assert later["chained_from_onnxruntime_state"]["outputs_beyond_tolerance"] == 0
    assert (out / "first-frame.onnx").is_file() and (out / "later-frame.onnx").is_file()


def test_onnxruntime_disagreeing_with_torch_is_a_failed_outcome_naming_the_tensor(tmp_path):
    result, _ = _run(tmp_path, "drifting")
    assert result["status"] == "failed" and result["stage"] == "compare", result
    assert "worst feat" in result["reason"] and "\n" not in result["reason"]
    assert result["max_abs"] >= 0.99


def test_an_adapter_that_cannot_load_is_a_one_line_outcome_not_a_crash(tmp_path):
    result, _ = _run(tmp_path, "tiny", fail_load=True)
    assert result["status"] == "failed" and result["stage"] == "load", result
    assert result["reason"] == "RuntimeError: checkpoint tiny.pth is not a checkpoint"
