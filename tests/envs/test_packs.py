"""Every model pack is complete and consistent: model.toml, environment.yml, virtual-packages.yml
and an adapter that imports without the model's packages (heavy imports happen at load time)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from onlinemap.registry.spec import load_model_spec
from tests.envs.helpers import load_adapter

REPO = Path(__file__).resolve().parents[2]
CONDA_PACKS = sorted(p for p in (REPO / "envs").iterdir() if (p / "model.toml").exists() and
                     'env_kind = "conda"' in (p / "model.toml").read_text())
EXPECTED = {"MapTR", "PETR", "StreamPETR", "TopoMLP", "VAD"}
CONDA_PIN = re.compile(r"^[A-Za-z0-9_.\-]+(=|==)[0-9][^\s*]*$")           # name=1.2.3 / name==1.2.3
PIP_PIN = re.compile(r"^[A-Za-z0-9_.\-\[\]]+(==[0-9][^\s*]*| @ (https://|git\+https://)\S+)$")
PIP_OPTION = re.compile(r"^--(extra-index-url|find-links|index-url) https://\S+$|^-f https://\S+$")


def test_the_five_models_have_packs():
    assert {p.name for p in CONDA_PACKS} == EXPECTED


@pytest.mark.parametrize("pack", CONDA_PACKS, ids=lambda p: p.name)
def test_model_toml_is_complete(pack):
    spec = load_model_spec(pack)
    assert spec.env_kind == "conda" and spec.repo and spec.config and spec.checkpoint
    assert spec.checkpoint.file and (spec.checkpoint.url or spec.checkpoint.gdrive_id)
    if not spec.checkpoint.sha256:
        assert "pinned on first" in spec.checkpoint.note.lower() or "first verified" in spec.checkpoint.note.lower(), \
            "an unpinned checkpoint must say when its sha256 gets pinned"
    assert spec.gpu.max_compute < 9.0 or spec.name not in {"MapTR", "PETR", "VAD"}, "cu111 stacks cannot run on Hopper"
    assert spec.gpu.note and spec.smoke.imports and spec.data.needs
    # setup makes the info files itself: a nuScenes pack names its converter; the by-hand one says how
    if "nuscenes" in spec.data.needs:
        assert spec.data.converter and "{root}" in spec.data.converter and "{version}" in spec.data.converter
        assert ("--canbus" in spec.data.converter) == ("can_bus" in spec.data.needs)
    else:
        assert not spec.data.converter and "preprocess" in spec.data.note


@pytest.mark.parametrize("pack", CONDA_PACKS, ids=lambda p: p.name)
def test_environment_yml_pins_everything(pack):
    spec = load_model_spec(pack)
    env = yaml.safe_load((pack / "environment.yml").read_text())
    assert set(env) <= {"name", "channels", "dependencies"} and env["channels"]
    assert "defaults" not in env["channels"], "Anaconda's defaults channel has licence terms; use conda-forge"
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pips = [d for d in env["dependencies"] if isinstance(d, dict)]
    pythons = [d for d in conda if d.startswith("python=")]
    assert pythons == [f"python={spec.python}"] or pythons[0].startswith(f"python={spec.python}")
    for dep in conda:
        assert CONDA_PIN.match(dep.replace(" ", "")), f"{pack.name}: conda dependency {dep!r} is not pinned exactly"
    assert len(pips) == 1 and set(pips[0]) == {"pip"}
    for line in pips[0]["pip"]:
        assert PIP_OPTION.match(line) or PIP_PIN.match(line), f"{pack.name}: pip entry {line!r} is not pinned exactly"
    names = [line.split("==")[0].lower() for line in pips[0]["pip"] if "==" in line]
    assert len(names) == len(set(names)), f"{pack.name}: a pip package is listed twice"


@pytest.mark.parametrize("pack", CONDA_PACKS, ids=lambda p: p.name)
def test_virtual_packages_name_cuda_and_glibc(pack):
    vp = yaml.safe_load((pack / "virtual-packages.yml").read_text())
    packages = vp["subdirs"]["linux-64"]["packages"]
    assert re.match(r"^11\.\d+$", str(packages["__cuda"])) and re.match(r"^2\.\d+$", str(packages["__glibc"]))


@pytest.mark.parametrize("pack", CONDA_PACKS + [REPO / "envs" / "reference"], ids=lambda p: p.name)
def test_adapter_imports_without_the_models_packages(pack):
    spec = importlib.util.spec_from_file_location(f"pack_{pack.name}", pack / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no mmcv / mmdet3d here: must not be imported at module level
    adapter = module.Adapter({"model": pack.name, "device": "cpu", "options": {}, "dataroot": "/nonexistent",
                              "version": "v1.0-mini", "repo": None, "config": None, "checkpoint": None})
    for method in ("load", "prepare", "forward", "convert"):
        assert callable(getattr(adapter, method))


@pytest.mark.parametrize("pack", CONDA_PACKS, ids=lambda p: p.name)
def test_pack_readme_says_what_was_verified(pack):
    text = (pack / "README.md").read_text().lower()
    assert "unverified" in text and ("not run" in text or "never run" in text or "was not run" in text)


@pytest.mark.parametrize("model", ["MapTR", "VAD"])
def test_load_refuses_a_missing_checkout_or_checkpoint_before_importing_mmcv(model, tmp_path):
    """The one-line cause, not an ImportError or a config path error from deep inside mmcv."""
    demo = load_adapter(model)
    with pytest.raises(RuntimeError, match=f"must be the {model} checkout"):
        demo.Adapter({"repo": str(tmp_path / "missing"), "checkpoint": "x.pth", "dataroot": str(tmp_path)}).load()
    with pytest.raises(RuntimeError, match=r"settings\['checkpoint'\] is required"):
        demo.Adapter({"repo": str(tmp_path), "checkpoint": None, "dataroot": str(tmp_path)}).load()
