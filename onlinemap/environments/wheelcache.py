"""Built wheels of compiled dependencies, made once per pod volume: ``ONLINEMAP_HOME/wheels/``.

mmcv-full, mmdet3d or flash-attn take 20-60 minutes each to compile. A variant's ``[[wheels]]`` entry
names the PyPI sdist, the patch files applied to it (e.g. mmcv's ``-std=c++14`` -> ``c++17`` for
torch >= 2.1 headers) and its build variables. The wheel is built with the env's own pip
(``pip download`` of the sdist, ``git apply`` of the patches, ``pip wheel --no-build-isolation``, so it
compiles against the env's torch) and stored under a key of everything that changes the binary:
(package, version, torch version, torch's CUDA, TORCH_CUDA_ARCH_LIST, hash of the patch files and the
build variables). A second env, a recreated env or a new pod on the same network volume installs the
cached wheel with ``pip install --no-deps`` in seconds. A finished wheel is moved into place last,
so an interrupted build never leaves a cache entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.environments.base import EnvHandle, run_prefix_argv
from onlinemap.environments.installers import StepFailed, env_child_env, run_step
from onlinemap.registry.spec import WheelSpec

__all__ = ["wheels_dir", "wheel_key", "torch_facts", "ensure_wheel", "WheelResult"]

_TORCH_FACTS = ("import json\ntry:\n    import torch\n    print(json.dumps([torch.__version__, torch.version.cuda or 'cpu']))\n"
                "except ImportError:\n    print(json.dumps(['none', 'none']))\n")


@dataclass
class WheelResult:
    package: str
    version: str
    key: str
    wheel: str
    cached: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def wheels_dir() -> Path:
    return paths.home() / "wheels"


def _patch_digest(wheel: WheelSpec, patch_root: Path) -> str:
    h = hashlib.sha256()
    for rel in wheel.patches:
        h.update(rel.encode() + b"\0" + (patch_root / rel).read_bytes() + b"\0")
    h.update(json.dumps(wheel.env, sort_keys=True).encode())
    return h.hexdigest()[:16]


def wheel_key(wheel: WheelSpec, patch_root: Path, *, torch: str, cuda: str, arch_list: str) -> str:
    """16 hex digits of (package, version, torch, CUDA, arch list, patch files + build variables)."""
    facts = [wheel.package.lower(), wheel.version, torch, cuda, arch_list, _patch_digest(wheel, patch_root)]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def torch_facts(handle: EnvHandle) -> tuple[str, str]:
    """(torch version, torch's CUDA version) in the env; ("none", "none") without torch."""
    try:
        out = subprocess.run([handle.python, "-c", _TORCH_FACTS], capture_output=True, text=True, timeout=300,
                             env=env_child_env(handle.prefix), stdin=subprocess.DEVNULL)
        torch, cuda = json.loads(out.stdout.strip().splitlines()[-1])
        return str(torch), str(cuda)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return "none", "none"


def _unpack(archive: Path, dest: Path) -> Path:
    """The sdist's source folder (its single top-level directory)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(dest)
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise StepFailed(f"{archive.name}: expected one top-level folder in the sdist, found {len(tops)}",
                         "check the [[wheels]] package and version")
    return tops[0]


def ensure_wheel(wheel: WheelSpec, handle: EnvHandle, patch_root: Path, *, arch_list: str, log_path: Path,
                 env: dict, progress: Callable[[str], None], echo: bool = False) -> WheelResult:
    """Install ``wheel`` into the env from the cache, building and caching it first when it is not there."""
    torch, cuda = torch_facts(handle)
    key = wheel_key(wheel, patch_root, torch=torch, cuda=cuda, arch_list=arch_list)
    slot = wheels_dir() / f"{wheel.package.lower()}-{wheel.version}-{key}"
    label = f"{wheel.package}=={wheel.version}"
    model = handle.model
    built = sorted(slot.glob("*.whl")) if slot.is_dir() else []
    cached = bool(built)
    if cached:
        progress(f"[{model}] wheels: {label} from the cache {slot} (key {key}: torch {torch}, CUDA {cuda}, "
                 f"archs {arch_list})")
    else:
        progress(f"[{model}] wheels: building {label} from its sdist (key {key}; cached in {slot} for next time)")
        work = wheels_dir() / f".build-{key}-{os.getpid()}-{int(time.time())}"
        try:
            (work / "sdist").mkdir(parents=True)
            py = [*run_prefix_argv(handle), handle.python, "-m", "pip"]
            run_step(f"wheel {label}: download sdist",
                     [*py, "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
                      "-d", str(work / "sdist"), label], model=model, log_path=log_path, env=env, cwd=work, echo=echo)
            archives = sorted(p for p in (work / "sdist").iterdir() if p.is_file())
            if not archives:
                raise StepFailed(f"{model}: pip download of {label} gave no sdist", f"see {log_path}")
            src = _unpack(archives[0], work / "src")
            for rel in wheel.patches:
                patch = patch_root / rel
                run_step(f"wheel {label}: patch {rel}", ["git", "apply", "--check", "-v", str(patch)], model=model,
                         log_path=log_path, env=env, cwd=src, echo=echo)
                run_step(f"wheel {label}: patch {rel}", ["git", "apply", str(patch)], model=model,
                         log_path=log_path, env=env, cwd=src, echo=echo)
            run_step(f"wheel {label}: build", [*py, "wheel", "--no-deps", "--no-build-isolation", "-w",
                                               str(work / "out"), str(src)],
                     model=model, log_path=log_path, env={**env, **wheel.env}, cwd=work, echo=echo)
            built_now = sorted((work / "out").glob("*.whl"))
            if not built_now:
                raise StepFailed(f"{model}: building {label} left no wheel", f"see {log_path}")
            done = work / "slot"
            done.mkdir()
            for whl in built_now:
                shutil.move(str(whl), str(done / whl.name))
            (done / "key.json").write_text(json.dumps({"package": wheel.package, "version": wheel.version,
                                                       "torch": torch, "cuda": cuda, "arch_list": arch_list,
                                                       "patches": wheel.patches, "env": wheel.env}, indent=1) + "\n")
            if slot.exists():            # another process finished the same key first: keep theirs
                shutil.rmtree(done)
            else:
                os.replace(done, slot)  # LAST: from here on the cache entry is complete
        finally:
            shutil.rmtree(work, ignore_errors=True)
        built = sorted(slot.glob("*.whl"))
    run_step(f"wheel {label}: install", [*run_prefix_argv(handle), handle.python, "-m", "pip", "install", "--no-deps",
                                         "--no-index", *map(str, built)],
             model=model, log_path=log_path, env=env, cwd=slot, echo=echo)
    return WheelResult(wheel.package, wheel.version, key, str(built[0]), cached)
