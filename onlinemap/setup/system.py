"""The machine: GPU, driver, the CUDA the driver allows, disk free, RunPod variables; and the driver venv.

Read-only facts gathered when asked (nothing at import time). ``/workspace`` matters because it is the
only disk that survives a pod stop (research/runpod-eval.md §1.1); a *network* volume there (MooseFS,
NFS, FUSE) makes conda envs with many small files slow to create and import, so the check says so.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Optional

from onlinemap import paths
from onlinemap.setup.stages import CheckResult, SetupContext, Stage

__all__ = ["system_facts", "disk_free_gb", "mount_fstype", "is_network_fs", "system_stage", "driver_stage",
           "missing_system_libs", "MODEL_SYSTEM_LIBS", "MIN_FREE_GB_REFERENCE", "MIN_FREE_GB_PER_CONDA_MODEL",
           "POD_VARS"]

MIN_FREE_GB_REFERENCE = 1.0        # driver venv exists already; synthetic data + results
MIN_FREE_GB_PER_CONDA_MODEL = 15.0  # env (~6-9 GB with CUDA libs) + repo + weights + build (docs/runpod.md)
POD_VARS = ("RUNPOD_POD_ID", "RUNPOD_GPU_COUNT", "RUNPOD_DC_ID", "RUNPOD_VOLUME_ID")
#: shared libraries the model envs load from the system: opencv-python (non-headless, pinned by every
#: pack; mmcv imports cv2 at import time) links libGL and glib, which minimal pod images lack
#: ("ImportError: libGL.so.1: cannot open shared object file"). Debian/Ubuntu packages in the fix.
MODEL_SYSTEM_LIBS = {"libGL.so.1": "libgl1", "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0"}
_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "fuse", "fuse.moosefs", "moosefs", "ceph", "fuse.ceph", "glusterfs",
               "fuse.glusterfs", "9p", "lustre", "fuse.juicefs", "fuse.sshfs")


def disk_free_gb(path: Path) -> Optional[float]:
    """Free GB on the filesystem holding ``path`` (its nearest existing parent); None if unreadable."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return round(shutil.disk_usage(p).free / 1e9, 1)
    except OSError:
        return None


def mount_fstype(path: Path, mounts_text: Optional[str] = None) -> Optional[str]:
    """The filesystem type of the longest mount point containing ``path`` (from /proc/mounts)."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = str(Path(path).absolute())
    best, fstype = "", None
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, parts[2]
    return fstype


def is_network_fs(fstype: Optional[str]) -> bool:
    return bool(fstype) and (fstype in _NETWORK_FS or fstype.startswith("fuse."))


def system_facts(ctx: Optional[SetupContext] = None) -> dict:
    """GPU (NVML), driver, max CUDA, disk free on ONLINEMAP_HOME / /workspace / the container root, pod vars."""
    gpu = ctx.gpu if ctx is not None and ctx.gpu is not None else None
    if gpu is None:
        from onlinemap.telemetry.nvml import gpu_info

        gpu = gpu_info("cuda:0")
        if ctx is not None:
            ctx.gpu = gpu
    home = paths.home()
    ws = Path("/workspace")
    return {
        "gpu": gpu,
        "home": str(home),
        "home_free_gb": disk_free_gb(home),
        "workspace": ws.is_dir(),
        "workspace_free_gb": disk_free_gb(ws) if ws.is_dir() else None,
        "workspace_fstype": mount_fstype(ws) if ws.is_dir() else None,
        "container_free_gb": disk_free_gb(Path("/")),
        "home_on_workspace": str(home).startswith("/workspace/"),
        "pod": {k: os.environ[k] for k in POD_VARS if os.environ.get(k)},
    }


def missing_system_libs(libs=None) -> list:
    """The libraries in ``libs`` (default :data:`MODEL_SYSTEM_LIBS`) the dynamic loader cannot open."""
    import ctypes

    missing = []
    for name in libs if libs is not None else MODEL_SYSTEM_LIBS:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def _gpu_line(gpu: dict) -> str:
    if not gpu.get("available"):
        return f"no NVIDIA GPU ({gpu.get('reason') or 'NVML not available'})"
    return (f"{gpu.get('name')} (compute {gpu.get('compute_capability')}), driver {gpu.get('driver_version')}, "
            f"CUDA <= {gpu.get('cuda_driver_version')} allowed by the driver")


def _models_without_env(specs: list) -> list:
    """The conda models whose env is not installed and ready yet: only those still need disk."""
    from onlinemap.environments import resolve_environment
    from onlinemap.errors import OnlinemapError

    pending = []
    for spec in specs:
        try:
            resolve_environment(spec)
        except OnlinemapError:
            pending.append(spec)
    return pending


def _check_system(ctx: SetupContext) -> CheckResult:
    f = system_facts(ctx)
    warnings = []
    if not f["workspace"]:
        warnings.append(f"no /workspace: not a RunPod pod (or no volume); everything goes to {f['home']}, "
                        "which does not survive a pod stop if this is one")
    elif not f["home_on_workspace"]:
        warnings.append(f"ONLINEMAP_HOME={f['home']} is outside /workspace: it is lost when the pod stops")
    if f["workspace"] and is_network_fs(f["workspace_fstype"]):
        warnings.append(f"/workspace is a network volume ({f['workspace_fstype']}): env creation and imports of "
                        "many small files are slow there; prefer a volume disk (docs/runpod.md)")
    if f["workspace"] and not f["pod"]:
        warnings.append("no RUNPOD_POD_ID: /workspace exists but this does not look like a RunPod pod")
    pending = _models_without_env(ctx.conda_models)  # a rerun must not demand room for envs it already has
    need = MIN_FREE_GB_REFERENCE + MIN_FREE_GB_PER_CONDA_MODEL * len(pending)
    free = f["home_free_gb"]
    disk = f"{free} GB free at {f['home']}" if free is not None else f"free space at {f['home']} unknown"
    pod = f"pod {f['pod']['RUNPOD_POD_ID']}" if f["pod"].get("RUNPOD_POD_ID") else "not a pod"
    detail = f"{_gpu_line(f['gpu'])}; {disk} (need ~{need:g} GB: {len(pending)} env(s) to create); {pod}"
    if f["container_free_gb"] is not None:
        detail += f"; container disk {f['container_free_gb']} GB free"
    if free is not None and free < need:
        return CheckResult(False, f"not enough disk: {detail}",
                           "free space under ONLINEMAP_HOME, grow the pod's volume, or set fewer --models", warnings)
    libs = missing_system_libs() if ctx.conda_models else []
    if libs:
        apt = sorted({MODEL_SYSTEM_LIBS.get(lib, lib) for lib in libs})
        return CheckResult(False, f"the model envs' opencv-python (imported by mmcv) needs {', '.join(libs)}, "
                                  f"which this system lacks; {detail}",
                           f"apt-get update && apt-get install -y {' '.join(apt)}", warnings)
    return CheckResult(True, detail + "".join(f" | warning: {w}" for w in warnings), None, warnings)


def system_stage() -> Stage:
    return Stage("system", "check GPU, driver, disk free and pod variables", _check_system)


def _check_driver(ctx: SetupContext) -> CheckResult:
    import sys

    import onlinemap

    where = Path(onlinemap.__file__).resolve().parent.parent
    missing = [m for m in ("torch", "nuscenes", "click") if importlib.util.find_spec(m) is None]
    if missing:
        return CheckResult(False, f"the driver's Python ({sys.executable}) lacks {', '.join(missing)}",
                           f"./runpod_setup.sh (or {sys.executable} -m pip install -e '{where}[torch]')")
    return CheckResult(True, f"{sys.executable} (Python {sys.version.split()[0]}), onlinemap from {where}")


def driver_stage() -> Stage:
    # created by runpod_setup.sh before Python exists; here it is only checked
    return Stage("driver", "check the driver venv (created by ./runpod_setup.sh)", _check_driver)
