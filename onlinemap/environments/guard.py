"""Refuse early when the GPU's architecture cannot run a model's locked stack.

MapTR, PETR and VAD are locked to torch 1.9 + cu111: those wheels carry sm_37…sm_86 cubins and no
PTX, so on Hopper (sm_90: H100/H200) every kernel launch fails ("no kernel image is available"),
minutes into a setup or a run (research/models.md §8). ``model.toml [gpu] min_compute..max_compute``
states the range each env runs on; this module compares it with the GPU that NVML reports and raises
one line saying why and what to rent instead. No GPU seen means no refusal: the run is on CPU or the
runner reports the missing GPU itself.
"""
from __future__ import annotations

import os

from onlinemap.errors import MissingPrerequisiteError
from onlinemap.registry.spec import ModelSpec

__all__ = ["check_gpu_arch", "check_cpu_ok", "choose_variant", "IGNORE_ENV"]

IGNORE_ENV = "ONLINEMAP_IGNORE_GPU_ARCH"   # =1: skip the check (e.g. to create an env on a pod you will not run on)
_SUPPORTED_CLASS = "an A100 (8.0), A6000 / RTX 3090 (8.6) or RTX 4090 / L40 (8.9)-class GPU"


def _compute(gpu: dict | None) -> float | None:
    if not gpu or not gpu.get("available"):
        return None
    try:
        return float(gpu.get("compute_capability"))
    except (TypeError, ValueError):
        return None


def _lookup(device: str, gpu: dict | None) -> dict:
    if gpu is not None:
        return gpu
    if not str(device).startswith("cuda"):
        return {"available": False}
    from onlinemap.telemetry.nvml import gpu_info

    return gpu_info(device)


def choose_variant(spec: ModelSpec, device: str = "cuda:0", gpu: dict | None = None,
                   requested: str | None = None) -> ModelSpec:
    """``spec`` as the env variant to use on this GPU: ``requested`` (``--variant``) when given, else the
    first of ``paper``, then the others by name, whose ``[gpu]`` range holds the compute capability.

    Without a GPU (or an unreadable compute capability) the default is ``paper``. Whether the chosen
    variant may run here is :func:`check_gpu_arch`'s call (it names the variant that would)."""
    if requested:
        return spec.with_variant(requested)       # SpecError listing the variants for a wrong name
    base = spec.base()
    cc = _compute(_lookup(device, gpu)) if base.variants else None
    if cc is None:
        return base
    for name in base.variant_names:
        candidate = base.with_variant(name)
        if candidate.gpu.supports(cc):
            return candidate
    return base


def _covering(spec: ModelSpec, cc: float) -> list[str]:
    base = spec.base()
    return [n for n in base.variant_names if n != spec.variant and base.with_variant(n).gpu.supports(cc)]


def check_gpu_arch(spec: ModelSpec, device: str = "cuda:0", gpu: dict | None = None) -> dict | None:
    """Return the GPU facts when ``spec`` can run on ``device``'s GPU (None without a GPU), else raise.

    ``gpu`` is a :func:`onlinemap.telemetry.nvml.gpu_info` dict (looked up when not given).
    Raises MissingPrerequisiteError (exit 3) when the compute capability is outside
    ``spec.gpu.min_compute..max_compute``; set ONLINEMAP_IGNORE_GPU_ARCH=1 to skip.
    """
    if spec.env_kind == "host" or os.environ.get(IGNORE_ENV) == "1":
        return None
    if gpu is None:
        if not str(device).startswith("cuda"):
            return None
        from onlinemap.telemetry.nvml import gpu_info

        gpu = gpu_info(device)
    if not gpu or not gpu.get("available"):
        return None
    raw = gpu.get("compute_capability")
    try:
        cc = float(raw)
    except (TypeError, ValueError):
        return gpu      # NVML could not read it: do not block on a fact we do not have
    if spec.gpu.supports(cc):
        return gpu
    name = gpu.get("name") or "this GPU"
    stack = "locked stack" if not spec.base().variants else f"{spec.variant} stack"
    lo, hi = spec.gpu.min_compute, spec.gpu.max_compute
    others = _covering(spec, cc)
    note = f" Model note: {spec.gpu.note}" if spec.gpu.note else ""
    if cc >= 9.0 > hi:
        why = (f"{spec.name} cannot run on {name} (compute capability {raw}, Hopper or newer): its {stack} "
               f"supports {lo:g}-{hi:g} only (its torch wheels carry no sm_90+ code and no PTX)")
    elif cc > hi:
        why = f"{spec.name} cannot run on {name} (compute capability {raw}): its {stack} supports {lo:g}-{hi:g}"
    else:
        why = (f"{spec.name} cannot run on {name} (compute capability {raw}): it needs at least {lo:g} "
               f"(supported {lo:g}-{hi:g})")
    if others:
        other = spec.base().with_variant(others[0])
        fix = (f"use --variant {others[0]} (its stack supports {other.gpu.min_compute:g}-{other.gpu.max_compute:g}; "
               f"it is chosen automatically when --variant is left out), or run the {spec.variant} variant on "
               f"{_SUPPORTED_CLASS}")
    else:
        fix = f"use {_SUPPORTED_CLASS} for {spec.name}"
    raise MissingPrerequisiteError(why, f"{fix} (set {IGNORE_ENV}=1 to skip this check).{note}".replace("\n", " "))


def check_cpu_ok(spec: ModelSpec, device: str) -> None:
    """Refuse ``--device cpu`` for a pack whose ``[gpu] cpu_ok`` is false (its locked stack is GPU-only).

    Host packs run in the driver's Python and are not refused. The packs of the real models build
    CUDA ops and rely on CUDA-only paths (flash-attn, GKT, fp16), so they keep ``cpu_ok = false``;
    the adapters' own CPU path stays usable through the harness (``demo.py`` standalone, the
    verification lane), which does not pass through this check.
    """
    if spec.env_kind == "host" or spec.gpu.cpu_ok or str(device).startswith("cuda"):
        return
    raise MissingPrerequisiteError(
        f"{spec.name} cannot run with --device {device}: its model.toml [gpu] says cpu_ok = false "
        f"(its locked stack needs an NVIDIA GPU, compute {spec.gpu.min_compute:g}-{spec.gpu.max_compute:g})",
        f"run it with --device cuda on {_SUPPORTED_CLASS}")

