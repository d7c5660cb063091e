"""GPU-architecture guard. There is no GPU (and no NVML) on the machines these tests run on, so the
guard is fed the dicts ``onlinemap.telemetry.nvml.gpu_info`` returns (the only thing mocked here)."""
from __future__ import annotations

import pytest

from onlinemap.environments import check_gpu_arch
from onlinemap.errors import MissingPrerequisiteError
from onlinemap.registry.discover import find_model


def gpu(cc, name="NVIDIA H100 80GB HBM3"):
    return {"available": True, "name": name, "compute_capability": cc}


@pytest.mark.parametrize("model", ["MapTR", "PETR", "VAD"])
def test_hopper_refused_for_cu111_stacks(model, monkeypatch):
    monkeypatch.delenv("ONLINEMAP_IGNORE_GPU_ARCH", raising=False)
    spec = find_model(model)
    with pytest.raises(MissingPrerequisiteError) as exc:
        check_gpu_arch(spec, gpu=gpu("9.0"))
    line = exc.value.one_line()
    assert "\n" not in line and exc.value.exit_code == 3
    assert "H100" in line and "sm_90" in line and "A100" in line and "4090" in line
    assert spec.gpu.note.split(";")[0] in line                  # the model's own note is cited


def test_supported_gpus_and_no_gpu_pass(monkeypatch):
    monkeypatch.delenv("ONLINEMAP_IGNORE_GPU_ARCH", raising=False)
    spec = find_model("MapTR")
    for cc in ("8.0", "8.6", "8.9"):
        assert check_gpu_arch(spec, gpu=gpu(cc, "A100"))["compute_capability"] == cc
    assert check_gpu_arch(spec, gpu={"available": False, "reason": "no NVML"}) is None
    assert check_gpu_arch(spec, device="cpu") is None
    assert check_gpu_arch(find_model("reference"), gpu=gpu("9.0")) is None        # host kind: anything goes


def test_too_old_and_override(monkeypatch):
    spec = find_model("StreamPETR")                                # min 7.5: flash-attn 0.2.2
    with pytest.raises(MissingPrerequisiteError, match="needs at least 7.5"):
        check_gpu_arch(spec, gpu=gpu("7.0", "Tesla V100"))
    monkeypatch.setenv("ONLINEMAP_IGNORE_GPU_ARCH", "1")
    assert check_gpu_arch(spec, gpu=gpu("9.0")) is None


def test_create_env_checks_before_any_work(make_pack, fakeconda, om_home):
    spec = make_pack()
    from onlinemap.environments.create import create_env

    with pytest.raises(MissingPrerequisiteError, match="Hopper"):
        create_env(spec, gpu=gpu("9.0"), progress=lambda s: None)
    assert fakeconda.calls() == [] and not (om_home / "envs").exists()
