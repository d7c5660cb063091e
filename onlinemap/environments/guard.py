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

__all__ = ["check_gpu_arch", "check_cpu_ok", "IGNORE_ENV"]

IGNORE_ENV = "ONLINEMAP_IGNORE_GPU_ARCH"   # =1: skip the check (e.g. to create an env on a pod you will not run on)
_SUPPORTED_CLASS = "an A100 (8.0), A6000 / RTX 3090 (8.6) or RTX 4090 / L40 (8.9)-class GPU"


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
    lo, hi = spec.gpu.min_compute, spec.gpu.max_compute
    note = f" Model note: {spec.gpu.note}" if spec.gpu.note else ""
    if cc >= 9.0 > hi:
        why = (f"{spec.name} cannot run on {name} (compute capability {raw}, Hopper or newer): its locked stack "
               f"supports {lo:g}-{hi:g} only (the cu111 torch 1.9 wheels have no sm_90 code and no PTX)")
    elif cc > hi:
        why = f"{spec.name} cannot run on {name} (compute capability {raw}): its locked stack supports {lo:g}-{hi:g}"
    else:
        why = (f"{spec.name} cannot run on {name} (compute capability {raw}): it needs at least {lo:g} "
               f"(supported {lo:g}-{hi:g})")
    raise MissingPrerequisiteError(
        why, f"use {_SUPPORTED_CLASS} for {spec.name} (set {IGNORE_ENV}=1 to skip this check).{note}".replace("\n", " "))


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

