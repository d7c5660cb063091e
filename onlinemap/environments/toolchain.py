"""The toolchain preflight: refuse a wrong nvcc or host gcc in one line BEFORE any ops build step.

The ops builds fail late otherwise (an hour into a setup): torch's extension builder and flash-attn's
setup.py raise when nvcc's CUDA differs from the one torch was built with (a CUDA 12 pod image next to
a +cu111 torch; research/models.md §7.3), and nvcc refuses a host compiler newer than it supports
(CUDA 11.1-11.3: gcc <= 10, mlverse/torch#631; 11.4-11.8: gcc <= 11; 12.0-12.3: gcc <= 12, §8.1).

Which CUDA the pack needs comes from its torch pin (``torch==1.9.1+cu111`` -> 11.1); a pack without a
CUDA torch pin, or without ``[ops] build`` steps, has nothing to check. The facts are read inside the
env with the same environment the build gets (activation included, so ``$CC`` from the env's compiler
packages is seen): torch passes ``$CC`` to nvcc as ``-ccbin``, so that is the host compiler checked;
without ``$CC`` it is ``gcc`` on PATH.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Callable

from onlinemap.environments.base import EnvHandle, run_prefix_argv
from onlinemap.errors import MissingPrerequisiteError
from onlinemap.registry.spec import ModelSpec

__all__ = ["check_toolchain", "required_cuda", "max_host_gcc", "judge_toolchain", "ToolchainError"]

_TORCH_PIN = re.compile(r"^torch==[0-9][^+\s]*\+cu(\d+)(\d)$")
_RELEASE = re.compile(r"release (\d+)\.(\d+)")

#: newest host gcc major each nvcc accepts (NVIDIA's host compiler tables; research/models.md §8.1)
_GCC_CEILING = [((11, 0), 9), ((11, 1), 10), ((11, 4), 11), ((12, 0), 12), ((12, 4), 13)]

# Run with the env's python (3.7/3.8: no f-strings needed, stdlib only): print the facts as JSON.
_PROBE = r"""
import json, os, re, subprocess
def version(argv):
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
        return out.stdout
    except Exception as exc:
        return "ERROR " + str(exc)
cuda_home = os.environ.get("CUDA_HOME") or ""
nvcc = os.path.join(cuda_home, "bin", "nvcc") if cuda_home else ""
cc = os.environ.get("CC") or "gcc"
facts = {"cuda_home": cuda_home, "nvcc": nvcc, "cc": cc,
         "nvcc_out": version([nvcc, "--version"]) if nvcc and os.path.exists(nvcc) else None,
         "cc_version": version([cc, "-dumpfullversion", "-dumpversion"]).strip().splitlines()[-1:] or [""]}
print("ONLINEMAP-TOOLCHAIN " + json.dumps(facts))
"""


class ToolchainError(MissingPrerequisiteError):
    """nvcc or the host compiler cannot build this pack's ops (exit 3, before any build step)."""


def required_cuda(spec: ModelSpec) -> tuple[int, int] | None:
    """(major, minor) of the CUDA the pack's torch pin was built with; None when it pins no CUDA torch."""
    from onlinemap.environments.lock_input import split_pip_section
    from onlinemap.environments.lockfile import load_environment_yml

    try:
        doc = load_environment_yml(spec.environment_file)
    except Exception:  # a broken environment.yml is reported by the install step, not here
        return None
    deps = doc.get("dependencies") if isinstance(doc, dict) else None
    for dep in deps or []:
        if isinstance(dep, dict) and "pip" in dep:
            _, _, reqs = split_pip_section(dep["pip"] or [])
            for req in reqs:
                m = _TORCH_PIN.match(req.replace(" ", ""))
                if m:
                    return int(m.group(1)), int(m.group(2))
    return None


def max_host_gcc(nvcc: tuple[int, int]) -> int | None:
    """The newest gcc major ``nvcc`` (major, minor) accepts as host compiler; None for an unknown (old) nvcc."""
    best = None
    for since, gcc in _GCC_CEILING:
        if nvcc >= since:
            best = gcc
    return best


def judge_toolchain(spec: ModelSpec, facts: dict, need: tuple[int, int]) -> None:
    """Raise ToolchainError (one line + fix) when ``facts`` (from the probe) cannot build ``spec``'s ops."""
    want = f"{need[0]}.{need[1]}"
    env_pkg = f"the env's cudatoolkit-dev={want}.x (environment.yml)"
    if not facts.get("nvcc_out"):
        where = f"$CUDA_HOME={facts.get('cuda_home')}" if facts.get("cuda_home") else "the env, $CUDA_HOME, PATH or /usr/local/cuda"
        raise ToolchainError(f"{spec.name}: no nvcc found in {where}; its ops need nvcc {want} (torch +cu{need[0]}{need[1]})",
                             f"recreate the env so that {env_pkg} installs nvcc, or set CUDA_HOME to a CUDA {want} toolkit")
    m = _RELEASE.search(facts["nvcc_out"])
    if not m:
        raise ToolchainError(f"{spec.name}: cannot read the version of {facts.get('nvcc')} "
                             f"({facts['nvcc_out'].strip().splitlines()[-1:]})",
                             f"set CUDA_HOME to a CUDA {want} toolkit")
    have = (int(m.group(1)), int(m.group(2)))
    if have != need:
        raise ToolchainError(f"{spec.name}: nvcc {have[0]}.{have[1]} at {facts.get('nvcc')} cannot build ops for a torch "
                             f"built with CUDA {want} (torch's extension builder and flash-attn refuse a mismatch)",
                             f"recreate the env so that {env_pkg} provides nvcc {want}, or set CUDA_HOME to a CUDA {want} toolkit")
    ceiling = max_host_gcc(have)
    raw = "".join(facts.get("cc_version") or []).strip()
    gm = re.match(r"^(\d+)", raw)
    if not gm:
        raise ToolchainError(f"{spec.name}: the host compiler {facts.get('cc')!r} did not run ({raw or 'no output'})",
                             f"install gcc <= {ceiling} (environment.yml pins gcc_linux-64/gxx_linux-64) or set CC")
    if ceiling is not None and int(gm.group(1)) > ceiling:
        raise ToolchainError(f"{spec.name}: host compiler {facts.get('cc')} is gcc {raw}; nvcc {have[0]}.{have[1]} accepts gcc <= {ceiling}",
                             f"use the env's gcc_linux-64 (its activation sets CC) or set CC to a gcc <= {ceiling}")


def check_toolchain(spec: ModelSpec, handle: EnvHandle, *, env: dict, cuda_home: str | None, log_path: Path,
                    progress: Callable[[str], None] = print) -> dict | None:
    """Probe nvcc and the host compiler inside the env and judge them; the facts, or None when not needed."""
    need = required_cuda(spec)
    if need is None or not spec.ops.build:
        return None
    probe_env = dict(env)
    if cuda_home:
        probe_env["CUDA_HOME"] = cuda_home
    argv = [*run_prefix_argv(handle), handle.python, "-c", _PROBE]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=probe_env, stdin=subprocess.DEVNULL)
        text = out.stdout
    except (OSError, subprocess.SubprocessError) as exc:
        text, out = "", None
        with open(log_path, "a") as fh:
            fh.write(f"toolchain probe could not run: {exc}\n")
    line = next((ln for ln in text.splitlines() if ln.startswith("ONLINEMAP-TOOLCHAIN ")), None)
    if line is None:
        with open(log_path, "a") as fh:
            fh.write(f"toolchain probe output:\n{text}\n{out.stderr if out is not None else ''}\n")
        raise ToolchainError(f"{spec.name}: the toolchain probe failed in {handle.prefix}", f"see {log_path}")
    facts = json.loads(line.split(" ", 1)[1])
    with open(log_path, "a") as fh:
        fh.write(f"toolchain: {json.dumps(facts)}\n")
    judge_toolchain(spec, facts, need)
    progress(f"[{spec.name}] ops preflight: nvcc {need[0]}.{need[1]} at {facts['nvcc']}, host gcc "
             f"{''.join(facts['cc_version'])} ({facts['cc']})")
    return facts
