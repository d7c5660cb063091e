"""A run whose GPU throttled while it measured is flagged in run.json, and refused on request.

The whole runner runs for real (the torch-free ``crashref`` test pack, a real worker process, a
real sampler thread); only NVML is faked, because no GPU exists here: the sampler built by the
runner is given a FakeNvml GPU that reports a planted clock event reason on every read.
"""
from __future__ import annotations

import json

import pytest

from onlinemap import api
from onlinemap.errors import EXIT_FAILED
from onlinemap.telemetry import sampler as sampler_mod
from tests.conftest import only_run_dir

from .fakenvml import FakeGpu, FakeNvml

HW_THERMAL, GPU_IDLE = 0x40, 0x1


def _fake_gpu_sampler(monkeypatch, reasons: int) -> None:
    real = sampler_mod.TelemetrySampler

    class OnFakeGpu(real):
        def __init__(self, device="cpu", period_s=0.02, csv_path=None, **kw):
            super().__init__("cuda:0", period_s=0.01, csv_path=csv_path,
                             nvml=FakeNvml([FakeGpu(reasons=reasons)]), env={})

    monkeypatch.setattr(sampler_mod, "TelemetrySampler", OnFakeGpu)


def _run(om_home, monkeypatch, reasons: int, refuse: bool):
    _fake_gpu_sampler(monkeypatch, reasons)
    monkeypatch.setenv("ONLINEMAP_TEST_CRASHREF_SLEEP_S", "0.05")   # ticks between samples
    outcome = api.test("crashref", samples=8, warmup=1, device="cpu", echo=False,
                       refuse_throttled=refuse)
    record = json.loads((only_run_dir(om_home) / "run.json").read_text())
    return outcome, record


@pytest.mark.parametrize("refuse", [False, True])
def test_planted_thermal_slowdown_flags_the_run(om_home, monkeypatch, refuse):
    outcome, record = _run(om_home, monkeypatch, HW_THERMAL, refuse)
    tel = record["summary"]["telemetry"]
    assert tel["throttled"] is True and tel["throttle_reasons"] == ["hw_thermal_slowdown"]
    assert tel["gpu_state_before"]["clock_event_reasons"] == ["hw_thermal_slowdown"]
    assert tel["energy_per_sample_j"] is not None and tel["energy_samples"] >= 1
    if refuse:
        assert outcome.status == "failed" and outcome.exit_code == EXIT_FAILED
        assert "throttled" in record["error"]["message"] and record["error"]["hint"]
        assert record["summary"]["samples"]["measured"] == 8      # the results are kept
    else:
        assert outcome.status == "ok"


def test_an_idle_reason_is_not_refused(om_home, monkeypatch):
    outcome, record = _run(om_home, monkeypatch, GPU_IDLE, True)
    assert outcome.status == "ok" and record["summary"]["telemetry"]["throttled"] is False
