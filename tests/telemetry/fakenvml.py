"""Test-only stand-ins for NVML: NVML cannot exist on the machines these tests run on.

There is no GPU and no NVIDIA driver here (``libnvidia-ml.so.1`` is absent), so every test that
needs GPU figures goes through one of these instead. Nothing else is faked: processes, psutil,
threads and files are real.

* :class:`FakeNvml` has the public methods of :class:`onlinemap.telemetry.nvml.Nvml`
  (``test_nvml.py`` checks the signatures match) and replays scripted series per call.
* :class:`FakePynvml` imitates the pynvml *module*, raising pynvml's real exception classes, to
  test the fallbacks inside the real ``Nvml`` wrapper (v2 -> v1 memory struct, v3 -> v2 process
  lists).
"""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, Callable

from onlinemap.telemetry.nvml import MIB, MemoryInfo, NvmlCallError, ProcessInfo

__all__ = ["FakeGpu", "FakeNvml", "FakePynvml", "not_supported", "wait_for", "MIB"]


def _series(value: Any) -> Callable[[int], Any]:
    """A per-call value: a list is replayed (its last item repeats), anything else is constant."""
    if callable(value):
        return value
    if isinstance(value, list):
        items = list(value)
        return lambda n: items[min(n, len(items) - 1)]
    return lambda n: value


class FakeGpu:
    """One scripted device. ``used_mb`` / ``procs`` may be lists replayed one item per call.

    ``procs`` items are lists of (pid, used_mb or None). ``util`` / ``power`` may be an
    NvmlCallError instance to raise.
    """

    def __init__(self, name: str = "NVIDIA A100-SXM4-80GB", uuid: str = "GPU-aaaa0000",
                 bus: str = "00000000:07:00.0", total_mb: float = 81920, used_mb: Any = 10,
                 procs: Any = (), util: Any = 50, power: Any = 100.0, cc: tuple = (8, 0),
                 struct: str = "v2", reasons: Any = 0, energy_mj: Any = None,
                 state: dict | None = None):
        self.name, self.uuid, self.bus, self.total_mb, self.cc = name, uuid, bus, total_mb, cc
        self.struct = struct
        if isinstance(procs, BaseException):
            self._procs = _series(procs)
        else:
            self._procs = _series(list(procs) if procs else [[]])
        self._used = _series(used_mb)
        self._util, self._power = _series(util), _series(power)
        # clock event reasons (bitmask) and the energy counter (mJ) are replayed per call too;
        # energy_mj None: a counter rising 250 mJ a call (a 100 W GPU read every 2.5 ms)
        self._reasons = _series(reasons)
        self._energy = _series(energy_mj if energy_mj is not None else (lambda n: 10**9 + 250 * n))
        #: the static readings of gpu_state(); a value may be an NvmlCallError to raise
        self.state = {"sm": 1980, "mem": 2619, "sm_app": 1980, "mem_app": 2619,
                      "power_limit_w": 700.0, "temperature_c": 41, "persistence_mode": True,
                      "compute_mode": "default", "mig_mode": False, "ecc_mode": True}
        self.state.update(state or {})
        self.calls = {"memory_info": 0, "running_processes": 0, "utilization_pct": 0,
                      "power_w": 0, "clock_event_reasons": 0, "energy_mj": 0}
        self._lock = threading.Lock()

    def next(self, what: str) -> int:
        with self._lock:
            n = self.calls[what]
            self.calls[what] += 1
            return n


def _raise_or(value: Any) -> Any:
    if isinstance(value, BaseException):
        raise value
    return value


class FakeNvml:
    """Stand-in for ``Nvml`` over a list of FakeGpu, in NVML (enumeration) order."""

    def __init__(self, gpus: list[FakeGpu] | None = None, driver: str = "550.54.15",
                 cuda: int = 12040):
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.driver, self.cuda = driver, cuda
        self.memory_struct: str | None = None
        self.inits = self.shutdowns = 0

    def init(self) -> None:
        self.inits += 1

    def shutdown(self) -> None:
        self.shutdowns += 1

    def driver_version(self) -> str:
        return _raise_or(self.driver)

    def cuda_driver_version(self) -> int:
        return self.cuda

    def device_count(self) -> int:
        return len(self.gpus)

    def handle_by_index(self, index: int) -> Any:
        return self.gpus[index]

    def handle_by_uuid(self, uuid: str) -> Any:
        return next(g for g in self.gpus if g.uuid == uuid)

    def handle_by_pci_bus_id(self, bus_id: str) -> Any:
        return next(g for g in self.gpus if g.bus == bus_id)

    def name(self, handle: Any) -> str:
        return handle.name

    def uuid(self, handle: Any) -> str:
        return handle.uuid

    def pci_bus_id(self, handle: Any) -> str:
        return handle.bus

    def compute_capability(self, handle: Any) -> tuple[int, int]:
        return handle.cc

    def memory_info(self, handle: Any) -> MemoryInfo:
        used = _raise_or(handle._used(handle.next("memory_info")))
        self.memory_struct = handle.struct
        total = int(handle.total_mb * MIB)
        used = int(used * MIB)
        return MemoryInfo(total, used, total - used, 0 if handle.struct == "v2" else None,
                          handle.struct)

    def running_processes(self, handle: Any) -> list[ProcessInfo]:
        procs = _raise_or(handle._procs(handle.next("running_processes")))
        return [ProcessInfo(pid, None if mb is None else int(mb * MIB), ("compute",))
                for pid, mb in procs]

    def utilization_pct(self, handle: Any) -> int:
        return int(_raise_or(handle._util(handle.next("utilization_pct"))))

    def power_w(self, handle: Any) -> float:
        return float(_raise_or(handle._power(handle.next("power_w"))))

    def clock_mhz(self, handle: Any, clock: str, application: bool = False) -> int:
        return int(_raise_or(handle.state[clock + ("_app" if application else "")]))

    def power_limit_w(self, handle: Any) -> float:
        return float(_raise_or(handle.state["power_limit_w"]))

    def temperature_c(self, handle: Any) -> int:
        return int(_raise_or(handle.state["temperature_c"]))

    def persistence_mode(self, handle: Any) -> bool:
        return bool(_raise_or(handle.state["persistence_mode"]))

    def compute_mode(self, handle: Any) -> str:
        return str(_raise_or(handle.state["compute_mode"]))

    def mig_mode(self, handle: Any) -> bool:
        return bool(_raise_or(handle.state["mig_mode"]))

    def ecc_mode(self, handle: Any) -> bool:
        return bool(_raise_or(handle.state["ecc_mode"]))

    def clock_event_reasons(self, handle: Any) -> int:
        return int(_raise_or(handle._reasons(handle.next("clock_event_reasons"))))

    def energy_mj(self, handle: Any) -> int:
        return int(_raise_or(handle._energy(handle.next("energy_mj"))))


def not_supported() -> NvmlCallError:
    return NvmlCallError("Not Supported", 3)


class FakePynvml:
    """Imitates the pynvml module for one device; raises pynvml's real exception classes."""

    nvmlMemory_v2 = 0x02000028

    def __init__(self, pynvml: Any, *, has_v2: bool = True, has_v3_procs: bool = True,
                 compute: list | None = None, graphics: list | None = None):
        self._p = pynvml
        self.has_v2, self.has_v3_procs = has_v2, has_v3_procs
        self.compute = compute or []
        self.graphics = graphics or []
        self.calls: list[str] = []
        self.NVMLError = pynvml.NVMLError

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        self.calls.append(f"mem:{'v2' if version else 'v1'}")
        if version:
            if not self.has_v2:
                raise self._p.NVMLError_FunctionNotFound()
            return SimpleNamespace(version=version, total=80 * MIB, reserved=400 * MIB,
                                   free=70 * MIB, used=10 * MIB)
        return SimpleNamespace(total=80 * MIB, free=70 * MIB, used=10 * MIB + 400 * MIB)

    def _procs(self, rows: list) -> list:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in rows]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list:
        self.calls.append("compute:v3")
        if not self.has_v3_procs:  # what pynvml's throwOnVersionMismatch raises
            raise self._p.NVMLLibraryMismatchError("Unversioned function called ...")
        return self._procs(self.compute)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: Any) -> list:
        self.calls.append("compute:v2")
        return self._procs(self.compute)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list:
        self.calls.append("graphics:v3")
        if not self.has_v3_procs:
            raise self._p.NVMLLibraryMismatchError("Unversioned function called ...")
        return self._procs(self.graphics)

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, handle: Any) -> list:
        self.calls.append("graphics:v2")
        return self._procs(self.graphics)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        raise self._p.NVMLError_NotSupported()

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        return SimpleNamespace(busId=b"00000000:07:00.0")


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true (the sampler runs in its own thread)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(0.005)
