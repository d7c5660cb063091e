"""Tests for onlinemap.telemetry.sampler: attribution rules, baseline, peaks, CSV, lifecycle.

NVML cannot exist on this machine (no GPU, no NVIDIA driver), hence ``FakeNvml`` for every GPU
figure. The sampler's thread, psutil and the process trees are real; the end-to-end tests at the
bottom use no fake at all and check that a run here gets None-with-reason for every GPU field.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading

import pytest

from onlinemap.telemetry.nvml import REASON_CPU, REASON_NO_DRIVER, load_nvml
from onlinemap.telemetry.sampler import (CSV_HEADER, DEFAULT_HOST_ONLY_PERIOD_S, RECORD_KEYS,
                                         REASON_NO_PROCESS_LISTED,
                                         REASON_NOT_AVAILABLE, REASON_NOT_STARTED,
                                         REASON_NOT_SUPPORTED, REASON_PID_NOT_VISIBLE,
                                         TelemetrySampler)

from .fakenvml import FakeGpu, FakeNvml, not_supported, wait_for

ME = os.getpid()           # the root of the sampled tree in the fake-NVML tests
OTHER = 4_000_000          # above pid_max: never one of ours (a host pid seen from a container)

CONTRACT_KEYS = {
    "nvml_device_used_peak_mb", "nvml_device_baseline_mb", "nvml_device_delta_peak_mb",
    "nvml_device_reason", "nvml_process_used_peak_mb", "nvml_process_reason",
    "host_rss_peak_mb", "host_cpu_time_s", "samples", "period_s", "sampler_cpu_s",
    "gpu_util_peak_pct", "power_peak_w",
}


def run(gpu: FakeGpu, *, calls: int = 6, baseline: bool = True, **kw) -> dict:
    """Baseline, start on this process, wait until the fake has served ``calls`` samples, stop."""
    nv = FakeNvml([gpu])
    s = TelemetrySampler("cuda:0", period_s=0.005, nvml=nv, env={}, **kw)
    if baseline:
        s.take_baseline()
    s.start(root_pid=ME)
    wait_for(lambda: gpu.calls["running_processes"] >= calls)
    rec = s.stop()
    assert nv.shutdowns == 0  # an injected Nvml is not ours to shut down
    json.dumps(rec, allow_nan=False)  # JSON-ready
    return rec


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_record_has_every_contract_key():
    rec = run(FakeGpu())
    assert CONTRACT_KEYS <= set(rec) and tuple(rec) == RECORD_KEYS


def test_device_peak_over_series_minus_baseline():
    # first value is the baseline (before launch), then the model's context and tensors arrive
    rec = run(FakeGpu(used_mb=[1000, 1000, 1400, 3000, 2500, 1200]))
    assert rec["nvml_device_baseline_mb"] == 1000
    assert rec["nvml_device_used_peak_mb"] == 3000
    assert rec["nvml_device_delta_peak_mb"] == 2000
    assert rec["nvml_device_reason"] is None and rec["nvml_memory_struct"] == "v2"
    assert rec["gpu_uuid"] == "GPU-aaaa0000"


def test_process_found_with_value_peak_of_our_sum_only():
    series = [[(ME, 300)], [(ME, 900), (OTHER, 5000)], [(ME, 600)], [(ME, 600)]]
    rec = run(FakeGpu(procs=series))
    assert rec["nvml_process_used_peak_mb"] == 900
    assert rec["nvml_process_reason"] is None


def test_process_found_with_none_is_not_available():
    rec = run(FakeGpu(procs=[[(ME, None), (OTHER, 700)]]))
    assert rec["nvml_process_used_peak_mb"] is None
    assert rec["nvml_process_reason"] == REASON_NOT_AVAILABLE


def test_process_found_with_zero_is_not_a_figure():
    rec = run(FakeGpu(procs=[[(ME, 0)]]))
    assert rec["nvml_process_used_peak_mb"] is None
    assert rec["nvml_process_reason"] == REASON_NOT_AVAILABLE
    assert any("0 MiB" in n for n in rec["notes"])


def test_zero_then_value_keeps_the_value():
    rec = run(FakeGpu(procs=[[(ME, 0)], [(ME, 450)]]))
    assert rec["nvml_process_used_peak_mb"] == 450 and rec["nvml_process_reason"] is None


def test_pid_not_visible_when_only_other_pids_listed():
    rec = run(FakeGpu(procs=[[(OTHER, 2000), (OTHER + 1, 10)]]))
    assert rec["nvml_process_used_peak_mb"] is None
    assert rec["nvml_process_reason"] == REASON_PID_NOT_VISIBLE
    # the device figure does not depend on pids and is still there
    assert rec["nvml_device_used_peak_mb"] is not None


def test_no_process_listed():
    rec = run(FakeGpu(procs=[[]]))
    assert rec["nvml_process_reason"] == REASON_NO_PROCESS_LISTED


def test_zero_device_values_are_real_zeros():
    """A device that reports 0 used is a measurement (not None): the delta is 0, not missing."""
    rec = run(FakeGpu(used_mb=0))
    assert rec["nvml_device_used_peak_mb"] == 0 and rec["nvml_device_delta_peak_mb"] == 0
    assert rec["nvml_device_reason"] is None


def test_process_query_not_supported():
    rec = run(FakeGpu(procs=not_supported()), calls=1)
    assert rec["nvml_process_reason"] == REASON_NOT_SUPPORTED


def test_v1_struct_is_recorded_with_a_note():
    rec = run(FakeGpu(struct="v1"))
    assert rec["nvml_memory_struct"] == "v1"
    assert any("v1" in n for n in rec["notes"])


def test_util_and_power_peaks_or_reason():
    rec = run(FakeGpu(util=[0, 35, 97, 60], power=[60.5, 250.25, 180.0]))
    assert rec["gpu_util_peak_pct"] == 97 and rec["power_peak_w"] == 250.25
    assert rec["gpu_util_reason"] is None and rec["power_reason"] is None
    rec = run(FakeGpu(util=not_supported(), power=not_supported()))
    assert rec["gpu_util_peak_pct"] is None and rec["gpu_util_reason"] == REASON_NOT_SUPPORTED
    assert rec["power_peak_w"] is None and rec["power_reason"] == REASON_NOT_SUPPORTED


def test_baseline_missing_gives_peak_but_no_delta():
    from onlinemap.telemetry.nvml import NvmlCallError

    rec = run(FakeGpu(used_mb=[NvmlCallError("Timeout", 10), 800]))
    assert rec["nvml_device_used_peak_mb"] == 800
    assert rec["nvml_device_baseline_mb"] is None and rec["nvml_device_delta_peak_mb"] is None
    assert "baseline query failed" in rec["nvml_device_reason"]


def test_baseline_taken_at_start_when_forgotten_is_noted():
    rec = run(FakeGpu(), baseline=False)
    assert rec["nvml_device_baseline_mb"] is not None
    assert any("after launch" in n for n in rec["notes"])


def test_unknown_gpu_index_gives_reason_not_exception():
    s = TelemetrySampler("cuda:3", period_s=0.005, nvml=FakeNvml(), env={})
    assert s.take_baseline() is None
    s.start(root_pid=ME)
    rec = s.stop()
    assert rec["nvml_device_used_peak_mb"] is None
    assert rec["nvml_device_reason"].startswith("device not resolved")
    assert rec["nvml_process_reason"] == rec["nvml_device_reason"]


def test_csv_series(tmp_path):
    path = tmp_path / "run" / "telemetry.csv"
    gpu = FakeGpu(used_mb=[100, 200, 300], procs=[[(ME, None)], [(ME, 150)]],
                  power=not_supported())
    rec = run(gpu, csv_path=path, host_every=2)
    rows = read_csv(path)
    assert tuple(rows[0]) == CSV_HEADER
    body = rows[1:]
    assert len(body) == rec["samples"]
    assert body[0][1] == "200.00"               # first tick after the baseline value
    assert body[0][2] == ""                     # our pid listed with None: empty, not 0
    assert all(r[2] == "150.00" for r in body[1:])
    assert all(r[4] == "" for r in body)        # power not supported
    assert body[0][5] != "" and body[1][5] == ""  # host RSS every 2nd tick
    assert rec["host_period_s"] == 0.01            # with a GPU: period_s * host_every
    times = [float(r[0]) for r in body]
    assert times == sorted(times)


def test_stop_is_idempotent_and_thread_safe():
    gpu = FakeGpu()
    s = TelemetrySampler("cuda:0", period_s=0.005, nvml=FakeNvml([gpu]), env={})
    s.take_baseline()
    s.start(ME)
    wait_for(lambda: gpu.calls["memory_info"] >= 3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(s.stop())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == results[0] for r in results) and s.stop() == results[0]
    samples = results[0]["samples"]
    assert gpu.calls["memory_info"] == samples + 1  # + baseline: nothing sampled after stop


def test_stop_before_start_and_start_twice():
    s = TelemetrySampler("cpu")
    rec = s.stop()
    assert rec["samples"] == 0 and rec["host_reason"] == REASON_NOT_STARTED
    assert rec["nvml_device_reason"] == REASON_CPU
    with pytest.raises(RuntimeError):
        s.start(ME)
    s2 = TelemetrySampler("cuda:0", nvml=FakeNvml(), env={})
    assert s2.stop()["nvml_device_reason"] == REASON_NOT_STARTED


def test_bad_arguments_fail_before_launch():
    from onlinemap.errors import UsageError

    with pytest.raises(UsageError):
        TelemetrySampler("gpu0")
    with pytest.raises(ValueError):
        TelemetrySampler("cpu", period_s=0)


# -- real end to end on this CPU machine: no fake anywhere --------------------------------
CHILD = r"""
import subprocess, sys, time
gc = subprocess.Popen([sys.executable, "-c",
    "import sys, time; x = b'\\x01' * (100 << 20); open(sys.argv[1], 'w').close(); time.sleep(30)",
    sys.argv[1]])
time.sleep(30)
"""


def _tree(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ready)], start_new_session=True)
    return proc, ready


def _kill_group(proc):
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_end_to_end_without_gpu(tmp_path, device):
    """Real: no NVML here. GPU fields are None with a reason, host figures are real."""
    if device != "cpu" and load_nvml()[0] is not None:  # pragma: no cover
        pytest.skip("an NVIDIA driver is present here")
    s = TelemetrySampler(device=device, period_s=0.02, csv_path=tmp_path / "telemetry.csv")
    assert s.take_baseline() is None
    proc, ready = _tree(tmp_path)
    try:
        s.start(root_pid=proc.pid)
        wait_for(ready.exists, timeout=10)
        wait_for(lambda: s._host.samples >= 3 and (s._host.peak_rss_bytes or 0) > 100 << 20)
        rec = s.stop()      # while the tree lives: every wake-up below found it
    finally:
        _kill_group(proc)
    want = REASON_CPU if device == "cpu" else REASON_NO_DRIVER
    for key in ("nvml_device_used_peak_mb", "nvml_device_baseline_mb", "nvml_device_delta_peak_mb",
                "nvml_process_used_peak_mb", "gpu_util_peak_pct", "power_peak_w"):
        assert rec[key] is None, key
    for key in ("nvml_device_reason", "nvml_process_reason", "gpu_util_reason", "power_reason"):
        assert rec[key] == want, key
    assert rec["host_rss_peak_mb"] >= 100 and rec["host_reason"] is None
    assert rec["host_cpu_time_s"] is not None and rec["host_cpu_time_s"] > 0
    assert rec["host_samples"] >= 3
    # no GPU to read: the thread wakes only for host readings (every period_s * host_every), so
    # each wake-up is one; + 1 for the reading track() takes at once
    assert rec["host_samples"] == rec["samples"] + 1
    # ... every host_only_period_s, not every period_s * host_every (a load can only make it fewer)
    assert rec["host_period_s"] == DEFAULT_HOST_ONLY_PERIOD_S
    assert rec["samples"] <= rec["duration_s"] / DEFAULT_HOST_ONLY_PERIOD_S + 2
    assert rec["sampler_cpu_s"] is not None and rec["sampler_cpu_s"] >= 0
    rows = read_csv(tmp_path / "telemetry.csv")
    assert tuple(rows[0]) == CSV_HEADER and len(rows) > 1
    assert all(r[1:5] == ["", "", "", ""] for r in rows[1:])  # no GPU: empty, never 0


def test_import_does_no_work():
    """Habit 1: importing telemetry loads neither pynvml, psutil nor numpy."""
    code = ("import sys; import onlinemap.telemetry as t, onlinemap.telemetry.nvml, "
            "onlinemap.telemetry.host, onlinemap.telemetry.sampler, onlinemap.telemetry.hostinfo, "
            "onlinemap.telemetry.stats; t.TelemetrySampler; "
            "print(sorted(m for m in ('pynvml', 'psutil', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == "[]"
