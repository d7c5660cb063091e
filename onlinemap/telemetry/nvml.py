"""NVML seam: the few pynvml calls onlinemap uses, device mapping, GPU facts and the pre-run check.

Design note. Everything GPU goes through :class:`Nvml`, a thin wrapper over the pynvml module. It
exists for two reasons:

* **Testing.** No NVIDIA driver exists on the machines where most tests run, so the tests replace
  this one object by a fake with the same methods (see ``tests/telemetry/fakenvml.py``). The code
  around it (device mapping, attribution rules, the sampler) then runs for real.
* **Driver differences in one place.** pynvml raises ``NVMLError`` subclasses and, for unversioned
  wrappers, ``NVMLLibraryMismatchError``; both become :class:`NvmlCallError`. Versioned calls fall
  back to older versions here: the v2 memory struct (``nvmlDeviceGetMemoryInfo(h,
  version=nvmlMemory_v2)``, which reports driver-reserved memory apart from ``used``; with v1
  ``used`` includes it: ~900 MB on an idle A100, nvml-wrapper #57) falls back to v1 on drivers
  that lack ``nvmlDeviceGetMemoryInfo_v2``, and :attr:`Nvml.memory_struct` records which one
  answered, so results say what "used" means.

Device mapping. NVML ignores ``CUDA_VISIBLE_DEVICES`` and enumerates in PCI bus order; CUDA
enumerates fastest-first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (optimum-benchmark #136). The
runner sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` in the model's environment, and
:func:`resolve_device` maps ``cuda:N`` the way CUDA then does: sort NVML's devices by PCI bus id,
apply ``CUDA_VISIBLE_DEVICES`` (indices, or ``GPU-…`` UUIDs and unique prefixes; the list stops at
the first invalid entry), take the N-th.

Nothing here imports pynvml or touches hardware at import time; :func:`load_nvml` does, when
asked, and returns ``None`` with a reason instead of raising.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType

__all__ = [
    "MIB", "Nvml", "NvmlCallError", "MemoryInfo", "ProcessInfo", "GpuRef",
    "load_nvml", "parse_device", "resolve_device", "gpu_info", "preflight",
    "REASON_NO_PYNVML", "REASON_NO_DRIVER", "REASON_NO_GPU", "REASON_CPU",
    "DEFAULT_PREFLIGHT_THRESHOLD_MB", "CLOCK_EVENT_REASONS", "THROTTLE_REASONS",
    "decode_clock_reasons", "gpu_state", "GPU_STATE_KEYS",
]

log = logging.getLogger(__name__)

#: bytes per MiB; every ``*_mb`` figure in onlinemap is MiB (2**20 bytes), as nvidia-smi prints
MIB = 1 << 20

REASON_NO_PYNVML = "pynvml not installed"
REASON_NO_DRIVER = "NVML library not found (no NVIDIA driver)"
REASON_NO_GPU = "no gpu"
REASON_CPU = "device is cpu"

DEFAULT_PREFLIGHT_THRESHOLD_MB = 500.0

# pynvml error codes (stable NVML ABI values), so callers need not import pynvml to compare
_ERR_UNINITIALIZED = 1
_ERR_NOT_SUPPORTED = 3
_ERR_DRIVER_NOT_LOADED = 9
_ERR_LIBRARY_NOT_FOUND = 12
_ERR_FUNCTION_NOT_FOUND = 13
_ERR_ARGUMENT_VERSION_MISMATCH = 25

# NVML enum values (stable ABI; the same names in nvidia-ml-py 13.615's pynvml.py)
_CLOCK_SM, _CLOCK_MEM = 1, 2            # NVML_CLOCK_SM, NVML_CLOCK_MEM
_TEMPERATURE_GPU = 0                    # NVML_TEMPERATURE_GPU
_COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}

#: bit -> name of NVML's clock event ("throttle") reasons: nvmlClocksEventReason* /
#: nvmlClocksThrottleReason* in pynvml (the same bits under both names)
CLOCK_EVENT_REASONS = {
    0x001: "gpu_idle", 0x002: "applications_clocks_setting", 0x004: "sw_power_cap",
    0x008: "hw_slowdown", 0x010: "sync_boost", 0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown", 0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting", 0x200: "board_limit", 0x400: "reliability",
}
#: the reasons that mean the clocks were held below what the run asked for (power, heat, board);
#: gpu_idle, applications_clocks_setting, sync_boost and display_clock_setting are not throttling
THROTTLE_REASONS = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown",
                              "hw_thermal_slowdown", "hw_power_brake_slowdown", "board_limit",
                              "reliability"})


def decode_clock_reasons(mask: int) -> list[str]:
    """NVML's clock-event bitmask as names; unknown bits as ``0x…`` so nothing is dropped."""
    mask = int(mask)
    names = [name for bit, name in sorted(CLOCK_EVENT_REASONS.items()) if mask & bit]
    rest = mask & ~sum(CLOCK_EVENT_REASONS)
    if rest:
        names.append(hex(rest))
    return names


class NvmlCallError(Exception):
    """An NVML call failed; ``code`` is the NVML error code when known (None otherwise)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code

    @property
    def not_supported(self) -> bool:
        return self.code == _ERR_NOT_SUPPORTED

    @property
    def function_not_found(self) -> bool:
        return self.code == _ERR_FUNCTION_NOT_FOUND


@dataclass(frozen=True)
class MemoryInfo:
    """Device memory in bytes; ``reserved`` is None with the v1 struct (then ``used`` includes it)."""

    total: int
    used: int
    free: int
    reserved: int | None
    struct: str  # "v2" or "v1"


@dataclass(frozen=True)
class ProcessInfo:
    """One process NVML lists on a device. ``used_bytes`` None: NVML_VALUE_NOT_AVAILABLE.

    ``pid`` is whatever the driver reports: in a container with its own PID namespace this is
    often the *host* PID (nvidia-docker #179, #1483), so it may match none of ours.
    """

    pid: int
    used_bytes: int | None
    kinds: tuple = ()  # ("compute",), ("graphics",) or both


@dataclass(frozen=True)
class GpuRef:
    """The NVML device behind a ``cuda:N`` string in a given environment."""

    device: str
    cuda_index: int
    nvml_index: int
    uuid: str
    pci_bus_id: str
    handle: Any = field(default=None, compare=False, repr=False)


class Nvml:
    """Thin wrapper over the pynvml module: only the calls onlinemap uses, errors as NvmlCallError.

    Build one with :func:`load_nvml`. Tests pass a stand-in ``module`` (to check the fallbacks
    here) or replace the whole object by a fake with the same public methods.
    """

    def __init__(self, module: ModuleType | Any):
        self._m = module
        #: "v2" or "v1": which memory struct answered the last :meth:`memory_info` call
        self.memory_struct: str | None = None
        self._v2_ok: bool | None = None  # None: not tried yet
        self._proc_fallback: dict[str, bool] = {}

    # -- plumbing -------------------------------------------------------------------------------
    def _call(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self._m, fn_name, None)
        if fn is None:
            raise NvmlCallError(f"{fn_name} missing from pynvml", _ERR_FUNCTION_NOT_FOUND)
        try:
            return fn(*args, **kwargs)
        except NvmlCallError:
            raise
        except Exception as exc:  # pynvml.NVMLError / NVMLLibraryMismatchError
            code = getattr(exc, "value", None)
            if type(exc).__name__ == "NVMLLibraryMismatchError":
                code = _ERR_FUNCTION_NOT_FOUND
            if not isinstance(code, int):
                code = None
            if code is None and not _is_nvml_error(exc):
                raise
            raise NvmlCallError(f"{fn_name}: {exc}", code) from exc

    @staticmethod
    def _text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    # -- library ----------------------------------------------------------------------------------
    def init(self) -> None:
        self._call("nvmlInit")

    def shutdown(self) -> None:
        self._call("nvmlShutdown")

    def driver_version(self) -> str:
        return self._text(self._call("nvmlSystemGetDriverVersion"))

    def cuda_driver_version(self) -> int:
        """The CUDA version the driver supports, as NVML encodes it (12040 for 12.4)."""
        return int(self._call("nvmlSystemGetCudaDriverVersion"))

    # -- devices ----------------------------------------------------------------------------------
    def device_count(self) -> int:
        return int(self._call("nvmlDeviceGetCount"))

    def handle_by_index(self, index: int) -> Any:
        return self._call("nvmlDeviceGetHandleByIndex", index)

    def handle_by_uuid(self, uuid: str) -> Any:
        return self._call("nvmlDeviceGetHandleByUUID", uuid)

    def handle_by_pci_bus_id(self, bus_id: str) -> Any:
        return self._call("nvmlDeviceGetHandleByPciBusId", bus_id)

    def name(self, handle: Any) -> str:
        return self._text(self._call("nvmlDeviceGetName", handle))

    def uuid(self, handle: Any) -> str:
        return self._text(self._call("nvmlDeviceGetUUID", handle))

    def pci_bus_id(self, handle: Any) -> str:
        return self._text(self._call("nvmlDeviceGetPciInfo", handle).busId)

    def compute_capability(self, handle: Any) -> tuple[int, int]:
        major, minor = self._call("nvmlDeviceGetCudaComputeCapability", handle)
        return int(major), int(minor)

    # -- sampling ---------------------------------------------------------------------------------
    def memory_info(self, handle: Any) -> MemoryInfo:
        """Device memory with the v2 struct, or v1 where the driver lacks v2 (see memory_struct)."""
        if self._v2_ok is not False:
            version = getattr(self._m, "nvmlMemory_v2", None)
            try:
                if version is None:
                    raise NvmlCallError("pynvml has no nvmlMemory_v2", _ERR_FUNCTION_NOT_FOUND)
                mem = self._call("nvmlDeviceGetMemoryInfo", handle, version=version)
            except NvmlCallError as exc:
                # Older drivers lack nvmlDeviceGetMemoryInfo_v2 (FunctionNotFound) or reject the
                # struct version (NotSupported / ArgumentVersionMismatch); anything else is real.
                if self._v2_ok or not (exc.function_not_found or exc.not_supported
                                       or exc.code == _ERR_ARGUMENT_VERSION_MISMATCH):
                    raise
                log.info("NVML memory v2 struct unavailable (%s); using v1: 'used' then "
                         "includes driver-reserved memory", exc)
                self._v2_ok = False
            else:
                self._v2_ok = True
                self.memory_struct = "v2"
                return MemoryInfo(int(mem.total), int(mem.used), int(mem.free),
                                  int(mem.reserved), "v2")
        mem = self._call("nvmlDeviceGetMemoryInfo", handle)
        self.memory_struct = "v1"
        return MemoryInfo(int(mem.total), int(mem.used), int(mem.free), None, "v1")

    def _process_list(self, kind: str, handle: Any) -> list:
        base = ("nvmlDeviceGetComputeRunningProcesses" if kind == "compute"
                else "nvmlDeviceGetGraphicsRunningProcesses")
        if not self._proc_fallback.get(kind):
            try:
                return self._call(base, handle)  # v3 process struct in nvidia-ml-py >= 11.515
            except NvmlCallError as exc:
                if not exc.function_not_found:
                    raise
                self._proc_fallback[kind] = True  # older driver: only the _v2 entry point
        return self._call(base + "_v2", handle)

    def running_processes(self, handle: Any) -> list[ProcessInfo]:
        """Compute and graphics processes on the device, merged by pid.

        A process may be in both lists (type "C+G") with the same memory, so per pid the larger
        value is kept, not the sum. ``usedGpuMemory`` is None where NVML says "not available".
        """
        merged: dict[int, ProcessInfo] = {}
        errors = []
        for kind in ("compute", "graphics"):
            try:
                procs = self._process_list(kind, handle)
            except NvmlCallError as exc:
                errors.append(exc)
                continue
            for p in procs:
                pid = int(p.pid)
                used = getattr(p, "usedGpuMemory", None)
                used = None if used is None else int(used)
                old = merged.get(pid)
                if old is not None:
                    if old.used_bytes is not None and (used is None or old.used_bytes >= used):
                        used = old.used_bytes
                    merged[pid] = ProcessInfo(pid, used, old.kinds + (kind,))
                else:
                    merged[pid] = ProcessInfo(pid, used, (kind,))
        if len(errors) == 2:
            raise errors[0]
        return list(merged.values())

    def utilization_pct(self, handle: Any) -> int:
        """GPU busy percentage over the driver's last sample window (1/6 s to 1 s)."""
        return int(self._call("nvmlDeviceGetUtilizationRates", handle).gpu)

    def power_w(self, handle: Any) -> float:
        return int(self._call("nvmlDeviceGetPowerUsage", handle)) / 1000.0

    # -- GPU state (clocks, limits, modes) -----------------------------------------------------
    def clock_mhz(self, handle: Any, clock: str, application: bool = False) -> int:
        """Current (or application-set) ``clock`` ("sm" or "mem") in MHz."""
        kind = {"sm": _CLOCK_SM, "mem": _CLOCK_MEM}[clock]
        fn = "nvmlDeviceGetApplicationsClock" if application else "nvmlDeviceGetClockInfo"
        return int(self._call(fn, handle, kind))

    def power_limit_w(self, handle: Any) -> float:
        """The power limit the driver enforces (the lower of the user's and the board's), W."""
        return int(self._call("nvmlDeviceGetEnforcedPowerLimit", handle)) / 1000.0

    def temperature_c(self, handle: Any) -> int:
        return int(self._call("nvmlDeviceGetTemperature", handle, _TEMPERATURE_GPU))

    def persistence_mode(self, handle: Any) -> bool:
        return bool(self._call("nvmlDeviceGetPersistenceMode", handle))

    def compute_mode(self, handle: Any) -> str:
        mode = int(self._call("nvmlDeviceGetComputeMode", handle))
        return _COMPUTE_MODES.get(mode, str(mode))

    def mig_mode(self, handle: Any) -> bool:
        """Whether MIG is on now (the pending mode applies after a GPU reset; not reported)."""
        return bool(self._call("nvmlDeviceGetMigMode", handle)[0])

    def ecc_mode(self, handle: Any) -> bool:
        return bool(self._call("nvmlDeviceGetEccMode", handle)[0])

    def clock_event_reasons(self, handle: Any) -> int:
        """The clock event ("throttle") reasons bitmask; the newer name first, then the older one."""
        try:
            return int(self._call("nvmlDeviceGetCurrentClocksEventReasons", handle))
        except NvmlCallError as exc:
            if not exc.function_not_found:
                raise
        return int(self._call("nvmlDeviceGetCurrentClocksThrottleReasons", handle))

    def energy_mj(self, handle: Any) -> int:
        """Energy used since the driver loaded, in mJ (Volta and newer; NotSupported before)."""
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption", handle))


def _is_nvml_error(exc: BaseException) -> bool:
    return any(c.__name__ in ("NVMLError", "NVMLLibraryMismatchError") for c in type(exc).__mro__)


def load_nvml() -> tuple[Nvml | None, str | None]:
    """Import pynvml and initialise NVML: ``(Nvml, None)``, or ``(None, reason)``; never raises.

    The caller owns the returned object and calls ``shutdown()`` when done (NVML counts inits).
    """
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None, REASON_NO_PYNVML
    nv = Nvml(pynvml)
    try:
        nv.init()
    except NvmlCallError as exc:
        if exc.code == _ERR_LIBRARY_NOT_FOUND:
            return None, REASON_NO_DRIVER
        if exc.code == _ERR_DRIVER_NOT_LOADED:
            return None, "NVIDIA driver not loaded"
        return None, f"NVML init failed: {exc}"
    except OSError as exc:  # a broken libnvidia-ml.so
        return None, f"NVML init failed: {exc}"
    try:
        count = nv.device_count()
    except NvmlCallError as exc:
        _quiet_shutdown(nv)
        return None, f"NVML device count failed: {exc}"
    if count <= 0:
        _quiet_shutdown(nv)
        return None, REASON_NO_GPU
    return nv, None


def _quiet_shutdown(nv: Any) -> None:
    try:
        nv.shutdown()
    except Exception as exc:  # shutting down must never hide the result we are returning
        log.debug("NVML shutdown failed: %s", exc)


def parse_device(device: str) -> int | None:
    """``"cpu"`` -> None, ``"cuda"`` -> 0, ``"cuda:N"`` -> N; anything else is a UsageError."""
    text = str(device).strip().lower()
    if text == "cpu":
        return None
    if text == "cuda":
        return 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    from onlinemap.errors import UsageError

    raise UsageError(f"unknown device {device!r}", "use 'cpu', 'cuda' or 'cuda:N'")


def _pci_ordered(nvml: Any) -> list[tuple[int, Any, str, str]]:
    """(nvml_index, handle, uuid, pci_bus_id) for every device, sorted by PCI bus id."""
    devices = []
    for i in range(nvml.device_count()):
        h = nvml.handle_by_index(i)
        devices.append((i, h, nvml.uuid(h), nvml.pci_bus_id(h)))
    devices.sort(key=lambda d: d[3].upper())
    return devices


def _strip_gpu(uuid: str) -> str:
    u = uuid.strip().lower()
    return u[4:] if u.startswith("gpu-") else u


def _apply_visible(visible: str, devices: list) -> list:
    """The devices CUDA shows for ``CUDA_VISIBLE_DEVICES=visible``, in CUDA's order.

    Entries are indices into the PCI-ordered list or UUIDs (``GPU-…``, unique prefixes allowed).
    As in CUDA, the list ends at the first entry that is invalid, unknown, ambiguous or repeated.
    """
    chosen: list = []
    for token in visible.split(","):
        token = token.strip()
        if token.upper().startswith("MIG-"):
            from onlinemap.errors import UsageError

            raise UsageError(f"CUDA_VISIBLE_DEVICES names a MIG instance ({token})",
                             "MIG slices are not supported by onlinemap telemetry; use a full GPU")
        match = None
        if token.isdigit():
            i = int(token)
            match = devices[i] if i < len(devices) else None
        elif token:
            want = _strip_gpu(token)
            hits = [d for d in devices if _strip_gpu(d[2]).startswith(want)]
            match = hits[0] if len(hits) == 1 else None
        if match is None or any(match[0] == c[0] for c in chosen):
            break
        chosen.append(match)
    return chosen


def resolve_device(device: str, nvml: Any, env: Mapping[str, str] | None = None) -> GpuRef | None:
    """The NVML device that ``device`` ("cpu", "cuda", "cuda:N") means in environment ``env``.

    ``env`` is the model process's environment (default: ``os.environ``); its
    ``CUDA_VISIBLE_DEVICES`` is applied with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` semantics. Returns
    None for "cpu"; raises UsageError for a malformed device or a MIG entry and
    MissingPrerequisiteError when ``cuda:N`` does not exist there.
    """
    index = parse_device(device)
    if index is None:
        return None
    env = os.environ if env is None else env
    devices = _pci_ordered(nvml)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    candidates = devices if visible is None else _apply_visible(visible, devices)
    if index >= len(candidates):
        from onlinemap.errors import MissingPrerequisiteError

        shown = "all" if visible is None else repr(visible)
        raise MissingPrerequisiteError(
            f"{device}: only {len(candidates)} GPU(s) visible (NVML sees {len(devices)}, "
            f"CUDA_VISIBLE_DEVICES={shown})", "pick an index below the visible count")
    if env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID" and len(candidates) > 1:
        names = {nvml.name(d[1]) for d in candidates}
        if len(names) > 1:
            log.warning("CUDA_DEVICE_ORDER is not PCI_BUS_ID and the GPUs differ (%s): CUDA may "
                        "number them fastest-first, so %s may not be the GPU measured here",
                        ", ".join(sorted(names)), device)
    nvml_index, handle, uuid, bus = candidates[index]
    return GpuRef(device=str(device), cuda_index=index, nvml_index=nvml_index, uuid=uuid,
                  pci_bus_id=bus, handle=handle)


def _mb(nbytes: int | float | None) -> float | None:
    return None if nbytes is None else round(nbytes / MIB, 2)


def _open(nvml: Any) -> tuple[Any, str | None, bool]:
    """(nvml, reason, owned): use the given one, else load one that the caller must shut down."""
    if nvml is not None:
        return nvml, None, False
    nv, reason = load_nvml()
    return nv, reason, nv is not None


def gpu_info(device: str, nvml: Any = None, env: Mapping[str, str] | None = None) -> dict:
    """Facts about the GPU behind ``device`` for run.json, or ``{"available": False, "reason"}``.

    Keys when available: device, cuda_index, nvml_index, name, uuid, pci_bus_id,
    compute_capability ("8.0"), driver_version, cuda_driver_version ("12.4": the newest CUDA the
    driver supports, not the toolkit torch was built with), total_mb, memory_struct ("v2"/"v1"),
    and ``field_errors`` ({field: reason} for any fact that could not be read; those are None).
    """
    if parse_device(device) is None:
        return {"available": False, "reason": REASON_CPU}
    nv, reason, owned = _open(nvml)
    if nv is None:
        return {"available": False, "reason": reason}
    try:
        try:
            ref = resolve_device(device, nv, env)
        except Exception as exc:  # UsageError / MissingPrerequisiteError / NvmlCallError
            return {"available": False, "reason": str(exc)}
        out: dict = {"available": True, "reason": None, "device": str(device),
                     "cuda_index": ref.cuda_index, "nvml_index": ref.nvml_index,
                     "uuid": ref.uuid, "pci_bus_id": ref.pci_bus_id}
        errors: dict = {}

        def fact(key: str, fn: Any) -> None:
            try:
                out[key] = fn()
            except NvmlCallError as exc:
                out[key] = None
                errors[key] = str(exc)

        fact("name", lambda: nv.name(ref.handle))
        fact("compute_capability", lambda: "%d.%d" % nv.compute_capability(ref.handle))
        fact("driver_version", nv.driver_version)
        fact("cuda_driver_version", lambda: _cuda_version_text(nv.cuda_driver_version()))
        try:
            mem = nv.memory_info(ref.handle)
            out["total_mb"], out["memory_struct"] = _mb(mem.total), mem.struct
        except NvmlCallError as exc:
            out["total_mb"], out["memory_struct"] = None, None
            errors["total_mb"] = str(exc)
        out["field_errors"] = errors
        return out
    finally:
        if owned:
            _quiet_shutdown(nv)


#: keys of :func:`gpu_state`'s result besides ``field_errors``
GPU_STATE_KEYS = ("sm_clock_mhz", "mem_clock_mhz", "sm_app_clock_mhz", "mem_app_clock_mhz",
                  "power_w", "power_limit_w", "temperature_c", "persistence_mode", "compute_mode",
                  "mig_mode", "ecc_mode", "clock_event_reasons", "throttled", "energy_mj")


def gpu_state(nvml: Any, handle: Any) -> dict:
    """A snapshot of what decides a GPU's speed: clocks, power, heat, modes, clock event reasons.

    Every key of :data:`GPU_STATE_KEYS`; a value that could not be read is None and
    ``field_errors[key]`` says why ("not supported" or the NVML error). ``clock_event_reasons``
    are names (:func:`decode_clock_reasons`); ``throttled`` is whether any of them is in
    :data:`THROTTLE_REASONS`. ``energy_mj`` is NVML's cumulative counter, for differences.
    """
    out: dict = {}
    errors: dict = {}

    def read(key: str, fn: Any) -> None:
        try:
            out[key] = fn()
        except NvmlCallError as exc:
            out[key] = None
            errors[key] = "not supported" if exc.not_supported else str(exc)

    read("sm_clock_mhz", lambda: nvml.clock_mhz(handle, "sm"))
    read("mem_clock_mhz", lambda: nvml.clock_mhz(handle, "mem"))
    read("sm_app_clock_mhz", lambda: nvml.clock_mhz(handle, "sm", application=True))
    read("mem_app_clock_mhz", lambda: nvml.clock_mhz(handle, "mem", application=True))
    read("power_w", lambda: nvml.power_w(handle))
    read("power_limit_w", lambda: nvml.power_limit_w(handle))
    read("temperature_c", lambda: nvml.temperature_c(handle))
    read("persistence_mode", lambda: nvml.persistence_mode(handle))
    read("compute_mode", lambda: nvml.compute_mode(handle))
    read("mig_mode", lambda: nvml.mig_mode(handle))
    read("ecc_mode", lambda: nvml.ecc_mode(handle))
    read("clock_event_reasons", lambda: decode_clock_reasons(nvml.clock_event_reasons(handle)))
    reasons = out["clock_event_reasons"]
    out["throttled"] = None if reasons is None else bool(THROTTLE_REASONS.intersection(reasons))
    read("energy_mj", lambda: nvml.energy_mj(handle))
    out["field_errors"] = errors
    return out


def _cuda_version_text(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def preflight(device: str, threshold_mb: float = DEFAULT_PREFLIGHT_THRESHOLD_MB, nvml: Any = None,
              env: Mapping[str, str] | None = None) -> dict:
    """How much memory the GPU already holds before launch, and whether that is too much.

    Returns ``{"device", "used_mb", "threshold_mb", "busy", "processes", "processes_reason",
    "memory_struct", "reason"}``. ``busy`` is ``used_mb > threshold_mb``; when nothing could be read (cpu, no
    driver) ``used_mb`` is None, ``busy`` False and ``reason`` says why. The check uses device
    memory, not PIDs, because PIDs are unreliable in containers (optimum-benchmark's isolation
    watcher is blind there). ``processes`` lists what NVML shows (pid as the driver reports it,
    possibly a host pid; ``used_mb`` None when not available). With the v1 struct ``used`` includes
    driver-reserved memory, so an idle GPU can pass the threshold: ``reason`` says so.
    """
    out: dict = {"device": str(device), "used_mb": None, "threshold_mb": float(threshold_mb),
                 "busy": False, "processes": [], "processes_reason": None, "memory_struct": None,
                 "reason": None}
    if parse_device(device) is None:
        out["reason"] = REASON_CPU
        return out
    nv, reason, owned = _open(nvml)
    if nv is None:
        out["reason"] = reason
        return out
    try:
        try:
            ref = resolve_device(device, nv, env)
            mem = nv.memory_info(ref.handle)
        except Exception as exc:
            out["reason"] = str(exc)
            return out
        out["used_mb"] = _mb(mem.used)
        out["memory_struct"] = mem.struct
        out["busy"] = out["used_mb"] > threshold_mb
        try:
            out["processes"] = [{"pid": p.pid, "used_mb": _mb(p.used_bytes), "kinds": list(p.kinds)}
                                for p in nv.running_processes(ref.handle)]
        except NvmlCallError as exc:
            out["processes_reason"] = str(exc)
        if mem.struct == "v1":
            out["reason"] = ("v1 memory struct: used includes driver-reserved memory, "
                             "so an idle GPU may exceed the threshold")
        return out
    finally:
        if owned:
            _quiet_shutdown(nv)
