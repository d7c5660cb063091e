"""GPU state, throttling during the measured window, and energy per sample (issue 16).

NVML cannot exist here (no GPU, no driver), so the GPU is ``FakeNvml``; the sampler thread and
its window bookkeeping are real. Each test drives the window the way the runner does: one
``note_measured()`` per measured sample line, then ``stop()``.
"""
from __future__ import annotations

import json
import os
import time

from onlinemap.telemetry.nvml import (GPU_STATE_KEYS, THROTTLE_REASONS, Nvml, decode_clock_reasons,
                                      gpu_state)
from onlinemap.telemetry.sampler import TelemetrySampler

from .fakenvml import FakeGpu, FakeNvml, FakePynvml, not_supported, wait_for

SW_POWER_CAP, HW_THERMAL, GPU_IDLE = 0x4, 0x40, 0x1


def measured_run(gpu: FakeGpu, samples: int = 4, ticks_between: int = 3) -> dict:
    """Start, note ``samples`` measured samples with a few sampler ticks between each, stop."""
    nv = FakeNvml([gpu])
    s = TelemetrySampler("cuda:0", period_s=0.002, nvml=nv, env={})
    s.take_baseline()
    s.start(root_pid=os.getpid())
    wait_for(lambda: gpu.calls["memory_info"] >= 3)   # a tick reads memory first, every time
    for _ in range(samples):
        n = gpu.calls["memory_info"]
        wait_for(lambda: gpu.calls["memory_info"] >= n + ticks_between)
        s.note_measured()
    rec = s.stop()
    json.dumps(rec, allow_nan=False)
    return rec


def test_decode_names_and_keeps_unknown_bits():
    assert decode_clock_reasons(0) == []
    assert decode_clock_reasons(GPU_IDLE | SW_POWER_CAP) == ["gpu_idle", "sw_power_cap"]
    assert decode_clock_reasons(0x40000) == ["0x40000"]
    assert "gpu_idle" not in THROTTLE_REASONS and "hw_thermal_slowdown" in THROTTLE_REASONS


def test_gpu_state_reads_every_field_and_names_unsupported_ones():
    gpu = FakeGpu(reasons=SW_POWER_CAP, state={"ecc_mode": not_supported()})
    st = gpu_state(FakeNvml([gpu]), gpu)
    assert set(st) == set(GPU_STATE_KEYS) | {"field_errors"}
    assert st["sm_clock_mhz"] == 1980 and st["power_limit_w"] == 700.0
    assert st["clock_event_reasons"] == ["sw_power_cap"] and st["throttled"] is True
    assert st["ecc_mode"] is None and st["field_errors"] == {"ecc_mode": "not supported"}


def test_planted_throttle_reason_during_measurement_flags_the_run():
    # throttling only in the middle of the run: not in the before snapshot, not at the end
    seq = [0] * 8 + [HW_THERMAL] * 4 + [0] * 1000
    rec = measured_run(FakeGpu(reasons=seq), samples=6, ticks_between=2)
    assert rec["throttled"] is True and rec["throttle_reasons"] == ["hw_thermal_slowdown"]
    assert 1 <= rec["throttle_ticks"] <= rec["throttle_checked_ticks"]
    assert rec["throttle_reason"] is None


def test_idle_and_app_clock_reasons_are_not_throttling():
    rec = measured_run(FakeGpu(reasons=GPU_IDLE | 0x2))
    assert rec["throttled"] is False and rec["throttle_reasons"] == []
    assert rec["throttle_checked_ticks"] > 0


def test_throttling_after_the_last_sample_does_not_count():
    gpu = FakeGpu()
    nv = FakeNvml([gpu])
    s = TelemetrySampler("cuda:0", period_s=0.002, nvml=nv, env={})
    s.start(root_pid=os.getpid())
    for _ in range(3):
        n = gpu.calls["clock_event_reasons"]
        wait_for(lambda: gpu.calls["clock_event_reasons"] >= n + 2)
        s.note_measured()
    # the model has exited; the GPU now reports a power cap while the driver winds down
    n = gpu.calls["clock_event_reasons"]
    gpu._reasons = lambda k: SW_POWER_CAP
    wait_for(lambda: gpu.calls["clock_event_reasons"] >= n + 3)
    rec = s.stop()
    assert rec["throttled"] is False


def test_before_after_state_and_energy_per_sample():
    # energy counter: +500 mJ per tick
    rec = measured_run(FakeGpu(energy_mj=lambda n: 5_000_000 + 500 * n), samples=5)
    assert rec["gpu_state_before"]["temperature_c"] == 41
    assert rec["gpu_state_after"]["persistence_mode"] is True
    assert rec["energy_samples"] == 4            # from the first measured sample to the last
    assert rec["energy_j"] > 0 and rec["energy_reason"] is None
    assert abs(rec["energy_per_sample_j"] - rec["energy_j"] / 4) < 1e-3


def test_unsupported_queries_give_null_with_reason():
    rec = measured_run(FakeGpu(reasons=not_supported(), energy_mj=not_supported()))
    assert rec["throttled"] is None and rec["throttle_reason"] == "not supported"
    assert rec["energy_j"] is None and rec["energy_reason"] == "not supported"
    assert rec["gpu_state_before"]["clock_event_reasons"] is None


def test_cpu_run_has_reasons_not_figures():
    s = TelemetrySampler("cpu", period_s=0.01)
    s.start()
    s.note_measured()
    time.sleep(0.02)
    rec = s.stop()
    assert rec["gpu_state_before"] is None and rec["gpu_state_reason"] == "device is cpu"
    assert rec["throttled"] is None and rec["throttle_reason"] == "device is cpu"
    assert rec["energy_reason"] == "device is cpu"


def test_real_wrapper_uses_the_newer_reason_call_then_the_older():
    import pynvml

    class Old(FakePynvml):
        def nvmlDeviceGetCurrentClocksEventReasons(self, h):
            raise pynvml.NVMLError_FunctionNotFound()

        def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
            return SW_POWER_CAP

    class New(FakePynvml):
        def nvmlDeviceGetCurrentClocksEventReasons(self, h):
            return HW_THERMAL

    assert Nvml(Old(pynvml)).clock_event_reasons(None) == SW_POWER_CAP
    assert Nvml(New(pynvml)).clock_event_reasons(None) == HW_THERMAL


def test_pynvml_names_exist_in_the_installed_package():
    import pynvml

    for name in ("nvmlDeviceGetClockInfo", "nvmlDeviceGetApplicationsClock",
                 "nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetTemperature",
                 "nvmlDeviceGetPersistenceMode", "nvmlDeviceGetComputeMode",
                 "nvmlDeviceGetMigMode", "nvmlDeviceGetEccMode",
                 "nvmlDeviceGetCurrentClocksEventReasons",
                 "nvmlDeviceGetCurrentClocksThrottleReasons",
                 "nvmlDeviceGetTotalEnergyConsumption"):
        assert callable(getattr(pynvml, name)), name
    assert pynvml.NVML_CLOCK_SM == 1 and pynvml.NVML_CLOCK_MEM == 2
    assert pynvml.NVML_TEMPERATURE_GPU == 0
    assert pynvml.nvmlClocksEventReasonSwPowerCap == SW_POWER_CAP
    assert pynvml.nvmlClocksThrottleReasonHwThermalSlowdown == HW_THERMAL


def test_the_window_is_placed_by_the_samples_times_not_when_the_runner_reads_them():
    """The runner reads samples.jsonl in batches (every 0.25 s while they flow): a batch read after
    the model ended still places throttling inside the samples' own times, and what came after the
    last sample's end stays out, however late the batch is read."""
    gpu = FakeGpu(energy_mj=lambda n: 1_000_000 + 100 * n)
    s = TelemetrySampler("cuda:0", period_s=0.002, nvml=FakeNvml([gpu]), env={})
    s.start(root_pid=os.getpid())

    def ticks(k):
        n = gpu.calls["clock_event_reasons"]
        wait_for(lambda: gpu.calls["clock_event_reasons"] >= n + k)

    ticks(3)                                   # the model loads: no reason
    gpu._reasons = lambda k: HW_THERMAL        # throttled while the samples run ...
    times, energy_calls = [], []
    for _ in range(4):
        t0 = time.time()
        ticks(3)
        times.append((t0, time.time()))
        energy_calls.append(gpu.calls["energy_mj"])
    gpu._reasons = lambda k: SW_POWER_CAP      # ... and a power cap after the last one ended
    ticks(5)
    for t_start, t_end in times:               # read by the runner only now, in one batch
        s.note_measured(t_end, t_start)
    ticks(3)
    rec = s.stop()
    assert rec["throttled"] is True and rec["throttle_reasons"] == ["hw_thermal_slowdown"]
    assert rec["throttle_ticks"] == rec["throttle_checked_ticks"] >= 9   # 3 per sample, the cap never
    assert rec["energy_samples"] == 3
    # the counter rises 100 mJ per call: the calls between the first sample's end and the last's
    # (each end up to one tick early), not the ones while the runner had not read them yet
    between = energy_calls[-1] - energy_calls[0]
    assert (between - 2) * 0.1 - 1e-9 <= rec["energy_j"] <= (between + 2) * 0.1 + 1e-9
