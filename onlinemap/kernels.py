"""Jupyter kernels per model env: ``onlinemap kernel install MODEL|--all``, ``list``, ``remove``.

A kernelspec is a folder ``<kernels dir>/onlinemap-<model>/kernel.json`` whose argv starts the
model env's own python with ipykernel (``[python, -m, ipykernel_launcher, -f, {connection_file}]``)
and whose ``env`` puts the model's repo checkout on PYTHONPATH, so a notebook can ``import`` the
model's code as demo.py does. The reference model (``host`` kind) gets the driver's python.

We only write kernelspec files: no kernel or server is started or exposed here; Jupyter starts
the kernel when a notebook picks it. The user kernels dir is ``$JUPYTER_DATA_DIR/kernels`` (else
``~/.local/share/jupyter/kernels``), or ``--prefix P`` -> ``P/share/jupyter/kernels`` (what
``jupyter kernelspec list`` reads from a venv's or env's prefix). ipykernel must be installed in
the model env (``micromamba install -p PREFIX ipykernel``): we check, never install it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from onlinemap.errors import MissingPrerequisiteError

__all__ = ["KERNEL_PREFIX", "kernel_name", "kernels_dir", "kernel_spec", "install_kernel", "list_kernels",
           "remove_kernel", "KernelInfo"]

KERNEL_PREFIX = "onlinemap-"


def kernel_name(model: str) -> str:
    """Jupyter lower-cases kernel names: ``onlinemap-<model in lower case>``."""
    return f"{KERNEL_PREFIX}{model.lower()}"


def kernels_dir(prefix: Path | str | None = None) -> Path:
    """Where kernelspecs go: ``PREFIX/share/jupyter/kernels``, else the user's Jupyter data dir."""
    if prefix:
        return Path(prefix).expanduser().absolute() / "share" / "jupyter" / "kernels"
    data = os.environ.get("JUPYTER_DATA_DIR")
    if data:
        return Path(data).expanduser() / "kernels"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "jupyter" / "kernels"


def kernel_spec(model: str) -> dict:
    """The kernel.json for ``model``: its env's python + ipykernel, its repo on PYTHONPATH."""
    from onlinemap import paths
    from onlinemap.environments import resolve_environment
    from onlinemap.readiness import repo_dir
    from onlinemap.registry import find_model

    spec = find_model(model)
    env = resolve_environment(spec)       # MissingPrerequisiteError when the env is not created yet
    check = subprocess.run([env.python, "-c", "import ipykernel"], capture_output=True, text=True)
    if check.returncode != 0:
        where = f"-p {env.prefix} " if env.prefix else ""
        raise MissingPrerequisiteError(f"{spec.name}: ipykernel is not installed in its env ({env.python})",
                                       f"micromamba install {where}-c conda-forge ipykernel" if env.prefix
                                       else "pip install ipykernel in the onlinemap venv")
    kenv = {"ONLINEMAP_HOME": str(paths.home()), "PYTHONNOUSERSITE": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    repo = repo_dir(spec)
    if repo is not None:
        kenv["PYTHONPATH"] = str(repo)
    return {"argv": [env.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"onlinemap: {spec.name}" + (" (driver python)" if env.kind == "host" else ""),
            "language": "python", "env": kenv,
            "metadata": {"onlinemap": {"model": spec.name, "env_kind": env.kind,
                                       "prefix": str(env.prefix) if env.prefix else None}}}


def install_kernel(model: str, *, prefix: Path | str | None = None) -> Path:
    """Write (or overwrite) ``onlinemap-<model>``'s kernelspec; return its folder."""
    data = kernel_spec(model)
    dest = kernels_dir(prefix) / kernel_name(data["metadata"]["onlinemap"]["model"])
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "kernel.json.tmp"
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, dest / "kernel.json")
    return dest


@dataclass
class KernelInfo:
    name: str
    model: str | None
    python: str | None
    path: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def list_kernels(*, prefix: Path | str | None = None) -> list[KernelInfo]:
    """The onlinemap kernelspecs in the kernels dir (user, or ``prefix``)."""
    out = []
    root = kernels_dir(prefix)
    for d in sorted(root.glob(f"{KERNEL_PREFIX}*")) if root.is_dir() else []:
        try:
            data = json.loads((d / "kernel.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        meta = (data.get("metadata") or {}).get("onlinemap") or {}
        out.append(KernelInfo(d.name, meta.get("model"), (data.get("argv") or [None])[0], str(d)))
    return out


def remove_kernel(model: str, *, prefix: Path | str | None = None) -> bool:
    """Remove ``onlinemap-<model>``'s kernelspec; True if there was one."""
    dest = kernels_dir(prefix) / kernel_name(model)
    if not (dest / "kernel.json").exists():
        return False
    shutil.rmtree(dest)
    return True
