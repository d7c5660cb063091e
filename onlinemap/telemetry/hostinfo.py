"""What machine a run ran on, for run.json: host, OS, Python, CPU, RAM, pod and container facts.

Design note. run.json files are shared (network volumes, notebooks, maybe published), so the pod
block is built from an **allow-list** of RunPod variables, never by prefix: a pod also carries
``RUNPOD_API_KEY`` (pod-scoped, preinstalled; research/runpod-eval.md §1.2), ``PUBLIC_KEY`` and
``JUPYTER_PASSWORD``. Even an allow-listed name is dropped if it contains KEY, TOKEN, SECRET or
PASSWORD. Network-exposure variables (``RUNPOD_PUBLIC_IP``, ``RUNPOD_TCP_PORT_*``) are left out on
purpose: they say how to reach the pod's SSH port and add nothing to a benchmark.

A pod's container sees the host's CPUs and RAM in ``/proc``, while its cgroup may allow fewer, so
both are recorded (``cpu_logical_cores`` vs ``cpu_affinity_cores`` / ``cgroup_cpu_limit``,
``ram_total_mb`` vs ``cgroup_memory_limit_mb``). Everything is read from files and the standard
library when called; nothing runs at import time.
"""
from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Mapping

__all__ = ["host_record", "pod_record", "container_evidence", "POD_ENV_ALLOWLIST"]

#: RunPod variables safe to record (research/runpod-eval.md §1.2); nothing else is copied
POD_ENV_ALLOWLIST = (
    "RUNPOD_POD_ID",
    "RUNPOD_POD_HOSTNAME",
    "RUNPOD_DC_ID",
    "RUNPOD_GPU_COUNT",
    "RUNPOD_CPU_COUNT",
    "RUNPOD_VOLUME_ID",
)
_NEVER = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _cpu_model(cpuinfo: str | None) -> str | None:
    for line in (cpuinfo or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or None


def _mem_total_mb(meminfo: str | None) -> float | None:
    for line in (meminfo or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return round(int(parts[1]) / 1024.0, 1)  # kB -> MiB
    return None


def _os_release(text: str | None) -> str | None:
    for line in (text or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"') or None
    return None


def _cgroup_cpu_limit(root: Path) -> float | None:
    """CPUs the cgroup allows (quota / period), v2 ``cpu.max`` or v1 ``cpu.cfs_*``; None: no limit."""
    text = _read(root / "cpu.max")
    if text:
        quota, _, period = text.strip().partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
            return round(int(quota) / int(period), 2)
        return None
    quota, period = _read(root / "cpu/cpu.cfs_quota_us"), _read(root / "cpu/cpu.cfs_period_us")
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return round(q / p, 2) if q > 0 and p > 0 else None


def affinity_cores() -> int | None:
    """CPUs this process may run on (its affinity mask); None where the platform cannot say."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """How many processes can run at once for us: the affinity mask, capped by the cgroup's CPU quota
    (a pod often sees the host's cores but may use a few); at least 1."""
    cpus = affinity_cores() or os.cpu_count() or 1
    quota = _cgroup_cpu_limit(cgroup_root)
    if quota:
        cpus = min(cpus, max(int(quota), 1))
    return max(cpus, 1)


def _cgroup_memory_limit_mb(root: Path) -> float | None:
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        text = (_read(root / name) or "").strip()
        if text.isdigit():
            value = int(text)
            if value < (1 << 60):  # v1 writes a huge number for "no limit"
                return round(value / (1 << 20), 1)
            return None
    return None


def container_evidence(proc_root: str = "/proc", fs_root: str = "/",
                       env: Mapping[str, str] | None = None) -> list[str]:
    """Signs that this process runs in a container (an empty list means none were seen)."""
    env = os.environ if env is None else env
    seen = []
    for marker in (".dockerenv", "run/.containerenv"):
        if os.path.exists(os.path.join(fs_root, marker)):
            seen.append("/" + marker)
    cgroup = _read(os.path.join(proc_root, "1", "cgroup")) or ""
    for word in ("docker", "kubepods", "containerd", "lxc", "libpod"):
        if word in cgroup:
            seen.append(f"/proc/1/cgroup mentions {word}")
            break
    if env.get("container"):
        seen.append(f"container={env['container']}")
    if env.get("RUNPOD_POD_ID"):
        seen.append("RUNPOD_POD_ID set (RunPod pods are containers)")
    if env.get("KUBERNETES_SERVICE_HOST"):
        seen.append("KUBERNETES_SERVICE_HOST set")
    return seen


def pod_record(env: Mapping[str, str] | None = None) -> dict | None:
    """The allow-listed RunPod variables that are set, or None when none is (not on a pod)."""
    env = os.environ if env is None else env
    pod = {}
    for name in POD_ENV_ALLOWLIST:
        if any(word in name.upper() for word in _NEVER):
            continue  # defence in depth, should the allow-list ever be edited carelessly
        value = env.get(name)
        if value:
            pod[name] = value
    return pod or None


def host_record(env: Mapping[str, str] | None = None) -> dict:
    """Facts about this machine for run.json (``env`` defaults to ``os.environ``)."""
    env = os.environ if env is None else env
    uname = platform.uname()
    cgroup_root = Path("/sys/fs/cgroup")
    evidence = container_evidence(env=env)
    return {
        "hostname": socket.gethostname(),
        "os": uname.system,
        "os_release": _os_release(_read("/etc/os-release")),
        "kernel": uname.release,
        "arch": uname.machine,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "cpu_model": _cpu_model(_read("/proc/cpuinfo")),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_affinity_cores": affinity_cores(),
        "cgroup_cpu_limit": _cgroup_cpu_limit(cgroup_root),
        "ram_total_mb": _mem_total_mb(_read("/proc/meminfo")),
        "cgroup_memory_limit_mb": _cgroup_memory_limit_mb(cgroup_root),
        "container": bool(evidence),
        "container_evidence": evidence,
        "pod": pod_record(env),
    }
