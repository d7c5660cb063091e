"""Tests for onlinemap.telemetry.nvml: the NVML seam, device mapping, gpu_info and preflight.

NVML cannot exist on this machine (no GPU, no NVIDIA driver), hence the fakes from
``fakenvml.py``: ``FakeNvml`` replaces the ``Nvml`` object, ``FakePynvml`` replaces the pynvml
module under the real ``Nvml`` (with pynvml's real exception classes). The no-driver path of
``load_nvml``/``gpu_info``/``preflight`` runs for real.
"""
from __future__ import annotations

import inspect

import pytest

from onlinemap.errors import MissingPrerequisiteError, UsageError
from onlinemap.telemetry import nvml as nvml_mod
from onlinemap.telemetry.nvml import (REASON_CPU, REASON_NO_DRIVER, Nvml, NvmlCallError,
                                      gpu_info, parse_device, preflight, resolve_device)

from .fakenvml import MIB, FakeGpu, FakeNvml, FakePynvml

# Three GPUs whose NVML order differs from PCI bus order, to see the mapping sort them.
A = FakeGpu(name="GPU A", uuid="GPU-aaaa1111-0000", bus="00000000:81:00.0")
B = FakeGpu(name="GPU B", uuid="GPU-bbbb2222-0000", bus="00000000:07:00.0")
C = FakeGpu(name="GPU C", uuid="GPU-cccc3333-0000", bus="00000000:3B:00.0")
PCI_ORDER = ["GPU B", "GPU C", "GPU A"]


def three() -> FakeNvml:
    return FakeNvml([A, B, C])


def names(nv, env, n):
    return [nv.name(resolve_device(f"cuda:{i}", nv, env).handle) for i in range(n)]


def test_load_nvml_without_driver_gives_reason_not_exception():
    """Real: pynvml is installed but libnvidia-ml.so.1 is not."""
    nv, reason = nvml_mod.load_nvml()
    if nv is not None:  # pragma: no cover - only on a GPU machine
        nv.shutdown()
        pytest.skip("an NVIDIA driver is present here")
    assert reason == REASON_NO_DRIVER


def test_gpu_info_and_preflight_without_driver():
    """Real no-driver path: both answer with a reason, nothing raises."""
    if nvml_mod.load_nvml()[0] is not None:  # pragma: no cover
        pytest.skip("an NVIDIA driver is present here")
    assert gpu_info("cuda:0") == {"available": False, "reason": REASON_NO_DRIVER}
    pre = preflight("cuda:0")
    assert pre["used_mb"] is None and pre["busy"] is False and pre["reason"] == REASON_NO_DRIVER


def test_cpu_device_needs_no_nvml():
    assert gpu_info("cpu") == {"available": False, "reason": REASON_CPU}
    assert preflight("cpu")["reason"] == REASON_CPU
    assert resolve_device("cpu", FakeNvml()) is None


@pytest.mark.parametrize("text, index", [("cpu", None), ("cuda", 0), ("cuda:3", 3), ("CUDA:1", 1)])
def test_parse_device(text, index):
    assert parse_device(text) == index


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:-1", "cuda:x", "mps"])
def test_parse_device_rejects_malformed(text):
    with pytest.raises(UsageError):
        parse_device(text)


def test_fake_matches_the_nvml_interface():
    """The fake must not drift from the seam it replaces: same public methods, same parameters."""
    for name, fn in inspect.getmembers(Nvml, inspect.isfunction):
        if name.startswith("_"):
            continue
        fake = getattr(FakeNvml, name, None)
        assert fake is not None, f"FakeNvml lacks {name}"
        assert list(inspect.signature(fake).parameters) == list(inspect.signature(fn).parameters)


# -- device mapping ---------------------------------------------------------------------------
def test_resolve_without_visible_devices_uses_pci_order():
    nv = three()
    assert names(nv, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, 3) == PCI_ORDER
    ref = resolve_device("cuda:0", nv, {})
    assert (ref.nvml_index, ref.uuid, ref.pci_bus_id) == (1, B.uuid, B.bus)


def test_resolve_with_visible_devices_by_index():
    nv = three()
    env = {"CUDA_VISIBLE_DEVICES": "2,0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert names(nv, env, 2) == ["GPU A", "GPU B"]
    ref = resolve_device("cuda", nv, env)
    assert ref.cuda_index == 0 and ref.nvml_index == 0
    with pytest.raises(MissingPrerequisiteError):
        resolve_device("cuda:2", nv, env)


def test_resolve_with_visible_devices_by_uuid_and_prefix():
    nv = three()
    env = {"CUDA_VISIBLE_DEVICES": "GPU-cccc3333-0000, GPU-aaaa", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert names(nv, env, 2) == ["GPU C", "GPU A"]
    assert names(nv, {"CUDA_VISIBLE_DEVICES": "bbbb2222"}, 1) == ["GPU B"]  # no GPU- prefix


@pytest.mark.parametrize("visible, count", [
    ("1,foo,0", 1),      # CUDA stops at the first invalid entry
    ("0,7,1", 1),        # index out of range
    ("GPU-,2", 0),       # ambiguous prefix (matches all) is invalid
    ("0,0,1", 1),        # a repeated device ends the list
    ("", 0),             # empty: no GPU visible
    ("-1", 0),
])
def test_visible_devices_list_ends_at_first_invalid_entry(visible, count):
    nv = three()
    env = {"CUDA_VISIBLE_DEVICES": visible}
    for i in range(count):
        resolve_device(f"cuda:{i}", nv, env)
    with pytest.raises(MissingPrerequisiteError):
        resolve_device(f"cuda:{count}", nv, env)


def test_mig_instances_are_refused_with_usage_error():
    with pytest.raises(UsageError, match="MIG"):
        resolve_device("cuda:0", three(), {"CUDA_VISIBLE_DEVICES": "MIG-1234"})


def test_device_order_warning_for_mixed_gpus(caplog):
    resolve_device("cuda:0", three(), {})
    assert "CUDA_DEVICE_ORDER" in caplog.text


# -- gpu_info / preflight through the fake -------------------------------------------------
def test_gpu_info_fields():
    nv = FakeNvml([FakeGpu(total_mb=40960, cc=(8, 6))], cuda=11080)
    info = gpu_info("cuda:0", nvml=nv, env={})
    assert info["available"] is True and info["reason"] is None
    assert info["compute_capability"] == "8.6"
    assert info["cuda_driver_version"] == "11.8"
    assert info["driver_version"] == "550.54.15"
    assert info["total_mb"] == 40960 and info["memory_struct"] == "v2"
    assert info["uuid"] == "GPU-aaaa0000" and info["field_errors"] == {}
    assert nv.shutdowns == 0  # a given Nvml is the caller's to shut down


def test_gpu_info_records_a_failed_fact_as_none_with_error():
    nv = FakeNvml(driver=NvmlCallError("Not Supported", 3))
    info = gpu_info("cuda:0", nvml=nv, env={})
    assert info["driver_version"] is None and "driver_version" in info["field_errors"]
    assert info["name"] == "NVIDIA A100-SXM4-80GB"


def test_gpu_info_unknown_index_is_unavailable_with_reason():
    info = gpu_info("cuda:4", nvml=FakeNvml(), env={})
    assert info["available"] is False and "only 1 GPU" in info["reason"]


def test_preflight_idle_and_busy():
    idle = preflight("cuda:0", nvml=FakeNvml([FakeGpu(used_mb=7)]), env={})
    assert idle["busy"] is False and idle["used_mb"] == 7 and idle["reason"] is None
    busy_gpu = FakeGpu(used_mb=12000, procs=[[(4242, 11900), (4343, None)]])
    busy = preflight("cuda:0", threshold_mb=500, nvml=FakeNvml([busy_gpu]), env={})
    assert busy["busy"] is True and busy["used_mb"] == 12000
    assert busy["processes"] == [{"pid": 4242, "used_mb": 11900, "kinds": ["compute"]},
                                 {"pid": 4343, "used_mb": None, "kinds": ["compute"]}]


def test_preflight_v1_struct_says_used_includes_reserved():
    pre = preflight("cuda:0", nvml=FakeNvml([FakeGpu(used_mb=900, struct="v1")]), env={})
    assert pre["memory_struct"] == "v1" and pre["busy"] is True and "reserved" in pre["reason"]


# -- the real Nvml wrapper over a fake pynvml module --------------------------------------
@pytest.fixture
def pynvml():
    return pytest.importorskip("pynvml")


def test_memory_info_uses_v2_struct(pynvml):
    nv = Nvml(FakePynvml(pynvml))
    mem = nv.memory_info("h")
    assert (mem.struct, mem.used, mem.reserved) == ("v2", 10 * MIB, 400 * MIB)
    assert nv.memory_struct == "v2"


def test_memory_info_falls_back_to_v1_once(pynvml):
    mod = FakePynvml(pynvml, has_v2=False)
    nv = Nvml(mod)
    first, second = nv.memory_info("h"), nv.memory_info("h")
    assert first.struct == second.struct == "v1" and nv.memory_struct == "v1"
    assert first.reserved is None and first.used == 410 * MIB  # v1 used includes reserved
    assert mod.calls == ["mem:v2", "mem:v1", "mem:v1"]  # v2 not retried


def test_memory_info_real_errors_are_not_swallowed(pynvml):
    mod = FakePynvml(pynvml)

    def lost(handle, version=None):
        raise pynvml.NVMLError_GpuIsLost()

    mod.nvmlDeviceGetMemoryInfo = lost
    with pytest.raises(NvmlCallError, match="lost"):
        Nvml(mod).memory_info("h")


def test_running_processes_merge_by_pid_and_keep_none(pynvml):
    mod = FakePynvml(pynvml, compute=[(10, 300 * MIB), (11, None)], graphics=[(10, 300 * MIB),
                                                                             (12, 5 * MIB)])
    procs = {p.pid: p for p in Nvml(mod).running_processes("h")}
    assert procs[10].used_bytes == 300 * MIB and procs[10].kinds == ("compute", "graphics")
    assert procs[11].used_bytes is None
    assert procs[12].used_bytes == 5 * MIB


def test_running_processes_fall_back_to_v2_entry_points(pynvml):
    mod = FakePynvml(pynvml, has_v3_procs=False, compute=[(10, 1 * MIB)])
    nv = Nvml(mod)
    assert [p.pid for p in nv.running_processes("h")] == [10]
    nv.running_processes("h")
    assert mod.calls == ["compute:v3", "compute:v2", "graphics:v3", "graphics:v2",
                         "compute:v2", "graphics:v2"]


def test_not_supported_becomes_nvml_call_error(pynvml):
    with pytest.raises(NvmlCallError) as info:
        Nvml(FakePynvml(pynvml)).power_w("h")
    assert info.value.not_supported


def test_pci_bus_id_bytes_are_decoded(pynvml):
    assert Nvml(FakePynvml(pynvml)).pci_bus_id("h") == "00000000:07:00.0"
