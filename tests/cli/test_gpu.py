"""The reference model on a real CUDA GPU: torch and NVML memory figures are measured, not null.

Skipped where there is no CUDA GPU (this workplace's CPU machines and CI); run it on a GPU pod with
`./scripts/run-tests.sh -m gpu`.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import only_run_dir, run_cli


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="no CUDA GPU on this machine")]


def test_reference_on_cuda_measures_every_memory_figure(om_home):
    proc = run_cli("test", "--model", "reference", "--device", "cuda:0", "-n", "20", "--warmup", "5",
                   "--timer", "cuda-events")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    mem = record["summary"]["memory"]
    assert mem["torch_max_allocated_mb"] > 0 and mem["torch_max_reserved_mb"] >= mem["torch_max_allocated_mb"]
    assert mem["nvml_device_delta_peak_mb"] > mem["torch_max_reserved_mb"]  # includes the CUDA context
    assert mem["nvml_process_used_peak_mb"] is not None or mem["nvml_process_reason"]
    assert record["summary"]["latency_ms"]["forward_cuda"]["count"] == 20
    assert record["gpu"]["name"] and record["gpu"]["uuid"]
