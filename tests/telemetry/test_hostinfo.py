"""Tests for onlinemap.telemetry.hostinfo: machine facts, the pod allow-list, container guess.

The real ``host_record()`` runs on this machine; pod variables are passed as an ``env`` mapping
(RunPod cannot exist here, and the process environment is never edited).
"""
from __future__ import annotations

import json
import os

from onlinemap.telemetry import hostinfo
from onlinemap.telemetry.hostinfo import (POD_ENV_ALLOWLIST, container_evidence, host_record,
                                          pod_record)

POD_ENV = {
    "RUNPOD_POD_ID": "abc123xyz",
    "RUNPOD_DC_ID": "EU-RO-1",
    "RUNPOD_GPU_COUNT": "1",
    "RUNPOD_CPU_COUNT": "16",
    "RUNPOD_POD_HOSTNAME": "abc123xyz-64410d4e",
    "RUNPOD_API_KEY": "rpa_SECRETVALUE_1",
    "RUNPOD_PUBLIC_IP": "203.0.113.7",
    "RUNPOD_TCP_PORT_22": "40022",
    "RUNPOD_SOME_TOKEN": "tok_SECRETVALUE_2",
    "HF_TOKEN": "hf_SECRETVALUE_3",
    "AWS_SECRET_ACCESS_KEY": "SECRETVALUE_4",
    "JUPYTER_PASSWORD": "SECRETVALUE_5",
    "PUBLIC_KEY": "ssh-ed25519 AAAASECRETVALUE_6",
}


def test_host_record_on_this_machine():
    rec = host_record(env={})
    for key in ("hostname", "os", "kernel", "python", "cpu_model", "cpu_logical_cores",
                "ram_total_mb", "container", "pod"):
        assert key in rec
    assert rec["os"] == "Linux" and rec["cpu_logical_cores"] >= 1
    assert rec["ram_total_mb"] > 100 and rec["pod"] is None
    assert isinstance(rec["container"], bool)
    json.dumps(rec)


def test_pod_record_keeps_only_the_allow_list():
    pod = pod_record(POD_ENV)
    assert set(pod) <= set(POD_ENV_ALLOWLIST)
    assert pod["RUNPOD_POD_ID"] == "abc123xyz" and pod["RUNPOD_GPU_COUNT"] == "1"
    assert "RUNPOD_PUBLIC_IP" not in pod and "RUNPOD_TCP_PORT_22" not in pod


def test_secrets_never_reach_the_record():
    text = json.dumps(host_record(env=POD_ENV))
    assert "SECRETVALUE" not in text
    assert "API_KEY" not in text and "TOKEN" not in text and "PASSWORD" not in text
    assert "203.0.113.7" not in text
    assert json.loads(text)["container"] is True  # RUNPOD_POD_ID: a pod is a container


def test_allow_list_names_no_secret():
    assert not [n for n in POD_ENV_ALLOWLIST
                if any(w in n for w in ("KEY", "TOKEN", "SECRET", "PASSWORD"))]


def test_container_evidence_from_files(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cgroup").write_text("0::/kubepods/besteffort/pod123\n")
    (tmp_path / ".dockerenv").write_text("")
    seen = container_evidence(proc_root=str(tmp_path), fs_root=str(tmp_path), env={})
    assert "/.dockerenv" in seen and any("kubepods" in s for s in seen)
    empty = tmp_path / "bare"
    empty.mkdir()
    assert container_evidence(proc_root=str(empty), fs_root=str(empty), env={}) == []


def test_cgroup_limits(tmp_path):
    (tmp_path / "cpu.max").write_text("400000 100000\n")
    (tmp_path / "memory.max").write_text(str(16 << 30) + "\n")
    assert hostinfo._cgroup_cpu_limit(tmp_path) == 4.0
    assert hostinfo._cgroup_memory_limit_mb(tmp_path) == 16384.0
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert hostinfo._cgroup_cpu_limit(tmp_path) is None
    assert hostinfo._cgroup_memory_limit_mb(tmp_path) is None


def test_usable_cpus_is_the_affinity_capped_by_the_cgroup_quota(tmp_path):
    mask = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert hostinfo.usable_cpus(tmp_path) == mask == hostinfo.affinity_cores()
    (tmp_path / "cpu.max").write_text("50000 100000\n")       # half a CPU: still one process
    assert hostinfo.usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{100000 * (mask + 8)} 100000\n")   # a quota above the mask
    assert hostinfo.usable_cpus(tmp_path) == mask


def test_cpu_model_and_meminfo_parsing():
    assert hostinfo._cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core\n") == \
        "AMD EPYC 7763 64-Core"
    assert hostinfo._mem_total_mb("MemTotal:       16384000 kB\nMemFree: 1 kB\n") == 16000.0
    assert hostinfo._os_release('NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n') == \
        "Ubuntu 22.04.4 LTS"


def test_process_environment_untouched():
    before = dict(os.environ)
    host_record()
    assert dict(os.environ) == before
