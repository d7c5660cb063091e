"""The toolchain preflight refuses a wrong nvcc or host gcc in one line BEFORE any ops build step.

nvcc cannot run here: a stand-in prints exactly what NVIDIA's nvcc 11.1 / 12.2 print for ``--version``
(the "release X.Y" line is what torch and flash-attn's setup.py parse). The host compiler for the
"too new" case is this machine's real gcc; a stand-in prints gcc 9.5's ``-dumpfullversion`` answer.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from onlinemap.environments.toolchain import ToolchainError, max_host_gcc, required_cuda
from tests.environments.test_create import create, lock_with

NVCC = {"11.1": "Cuda compilation tools, release 11.1, V11.1.105\nBuild cuda_11.1.TC455_06.29190527_0",
        "12.2": "Cuda compilation tools, release 12.2, V12.2.140\nBuild cuda_12.2.r12.2/compiler.33191640_0"}
ENV_YML = ("name: fakemap\nchannels: [local]\ndependencies:\n  - python\n  - hello-mod\n  - pip:\n"
           "      - torch==1.9.1+cu111\n")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\ncat <<'EOF'\n" + body + "\nEOF\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def cuda_pack(make_pack, channel, git_redirect, tmp_path):
    spec = make_pack(lock=lock_with(channel), ops=[["python", "-c", "open('built.txt', 'w').write('ok')"]])
    spec.environment_file.write_text(ENV_YML)
    return spec


def _toolkit(tmp_path, version, monkeypatch):
    home = tmp_path / f"cuda-{version}"
    _script(home / "bin" / "nvcc", "nvcc: NVIDIA (R) Cuda compiler driver\n" + NVCC[version])
    monkeypatch.setenv("CUDA_HOME", str(home))
    return home


def test_required_cuda_comes_from_the_torch_pin():
    root = Path(__file__).resolve().parents[2]
    from onlinemap.registry.spec import load_model_spec

    for name in ("MapTR", "PETR", "StreamPETR", "TopoMLP", "VAD"):
        assert required_cuda(load_model_spec(root / "envs" / name)) == (11, 1)
    assert max_host_gcc((11, 1)) == 10 and max_host_gcc((11, 8)) == 11 and max_host_gcc((12, 2)) == 12


def test_a_cuda_12_nvcc_is_refused_before_any_build_step(fakeconda, cuda_pack, tmp_path, monkeypatch, om_home):
    _toolkit(tmp_path, "12.2", monkeypatch)
    monkeypatch.setenv("CC", str(_script(tmp_path / "gcc95", "9.5.0")))
    with pytest.raises(ToolchainError) as exc:
        create(cuda_pack, skip_weights=True)
    line = exc.value.one_line()
    assert "nvcc 12.2" in line and "CUDA 11.1" in line and "cudatoolkit-dev" in line and "\n" not in line
    assert exc.value.exit_code == 3
    assert not list((om_home / "repos").glob("*/built.txt")), "no ops step ran"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on this machine")
def test_a_too_new_host_gcc_is_refused(fakeconda, cuda_pack, tmp_path, monkeypatch, om_home):
    real = subprocess.run(["gcc", "-dumpfullversion", "-dumpversion"], capture_output=True, text=True).stdout.strip()
    if int(real.split(".")[0]) <= 10:
        pytest.skip(f"this machine's gcc {real} is old enough for nvcc 11.1")
    _toolkit(tmp_path, "11.1", monkeypatch)
    monkeypatch.setenv("CC", shutil.which("gcc"))
    with pytest.raises(ToolchainError, match=rf"gcc {real}; nvcc 11.1 accepts gcc <= 10"):
        create(cuda_pack, skip_weights=True)
    assert not list((om_home / "repos").glob("*/built.txt"))


def test_the_right_toolchain_passes_and_the_build_runs(fakeconda, cuda_pack, tmp_path, monkeypatch, om_home):
    _toolkit(tmp_path, "11.1", monkeypatch)
    monkeypatch.setenv("CC", str(_script(tmp_path / "gcc95", "9.5.0")))
    lines = []
    create(cuda_pack, skip_weights=True, progress=lines.append)
    assert any("ops preflight: nvcc 11.1" in ln and "gcc 9.5.0" in ln for ln in lines), lines
    assert list((om_home / "repos").glob("*/built.txt"))


def _real_nvcc() -> str | None:
    for cand in (shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).exists():
            out = subprocess.run([cand, "--version"], capture_output=True, text=True)
            if out.returncode == 0 and "release" in out.stdout:
                return cand
    return None


@pytest.mark.skipif(_real_nvcc() is None, reason="no real nvcc on this machine")
def test_this_machines_real_nvcc_is_judged_against_the_torch_pin(fakeconda, cuda_pack, tmp_path, monkeypatch, om_home):
    """The real nvcc here (a CUDA 12/13 toolkit, as on current pod images) is refused for a +cu111 pack."""
    real = _real_nvcc()
    release = subprocess.run([real, "--version"], capture_output=True, text=True).stdout
    home = tmp_path / "real-cuda"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "nvcc").symlink_to(real)
    monkeypatch.setenv("CUDA_HOME", str(home))
    monkeypatch.setenv("CC", str(_script(tmp_path / "gcc95", "9.5.0")))
    if "release 11.1," in release:
        create(cuda_pack, skip_weights=True)            # the right one: passes
        return
    with pytest.raises(ToolchainError, match=r"nvcc \d+\.\d+ at .* cannot build ops for a torch built with CUDA 11\.1"):
        create(cuda_pack, skip_weights=True)
    assert not list((om_home / "repos").glob("*/built.txt"))


def test_no_nvcc_at_all_is_refused(fakeconda, cuda_pack, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "no-such-toolkit"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin:" + str(fakeconda.bin))
    if shutil.which("nvcc") or Path("/usr/local/cuda").is_dir():
        pytest.skip("this machine has an nvcc")
    with pytest.raises(ToolchainError, match="no nvcc found"):
        create(cuda_pack, skip_weights=True)
