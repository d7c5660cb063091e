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


def test_reference_on_cuda_records_the_gpu_state_throttling_and_energy(om_home):
    """The GPU-state block read from a real driver (only the fake NVML has driven it elsewhere)."""
    proc = run_cli("test", "--model", "reference", "--device", "cuda:0", "-n", "60", "--warmup", "5")
    assert proc.returncode == 0, proc.stderr
    tele = json.loads((only_run_dir(om_home) / "run.json").read_text())["summary"]["telemetry"]
    for key in ("gpu_state_before", "gpu_state_after"):
        state = tele[key]
        assert state is not None, tele.get("gpu_state_reason")
        for field in ("sm_clock_mhz", "mem_clock_mhz", "power_limit_w", "temperature_c"):
            # a value the GPU does not give is null with its reason, never a silent null
            assert (state[field] is not None and state[field] > 0) or state["field_errors"].get(field), (key, field)
        assert isinstance(state["clock_event_reasons"], list) or state["field_errors"].get("clock_event_reasons")
        assert isinstance(state["compute_mode"], str) or state["field_errors"].get("compute_mode")
    assert isinstance(tele["throttled"], bool) or tele["throttle_reason"]
    assert tele["throttle_checked_ticks"] > 0 or tele["throttle_reason"]
    assert (tele["energy_per_sample_j"] is not None and tele["energy_per_sample_j"] > 0) or tele["energy_reason"]
