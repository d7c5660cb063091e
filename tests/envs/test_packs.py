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


def _upstream_ext_modules(tarball: str, setup_path: str) -> set[str]:
    """``module.name`` of every make_cuda_ext(name=..., module=...) in an upstream setup.py (shared/upstream)."""
    import tarfile

    path = REPO.parent / "shared" / "upstream" / tarball
    if not path.exists():
        pytest.skip(f"{path} is not here (the upstream snapshots live in the shared folder)")
    with tarfile.open(path) as tf:
        member = next(m for m in tf.getmembers() if m.name.lstrip("./") == setup_path)
        text = tf.extractfile(member).read().decode()
    return {f"{mod}.{name}" for name, mod in re.findall(r"name='(\w+)',\s*module='([\w.]+)'", text)}


@pytest.mark.parametrize("pack", CONDA_PACKS, ids=lambda p: p.name)
def test_smoke_names_the_compiled_modules_and_the_plugin(pack):
    """`import mmdet3d` / `import flash_attn` load no compiled code: the smoke list must name the .so modules."""
    spec = load_model_spec(pack)
    ops = set(spec.ops.cuda_ops)
    assert "mmcv._ext" in ops and spec.smoke.plugin
    steps = " ".join(" ".join(a) for a in spec.ops.build)
    if "f1107977dfd26155fc1f83779ee6535d2468f449" in steps:          # mmdet3d v0.17.1 built here
        want = _upstream_ext_modules("open-mmlab+mmdetection3d-f1107977.tar.gz", "setup.py")
        assert len(want) == 11 and want <= ops, sorted(want - ops)
    if spec.name == "MapTR":                                          # vendored mmdet3d 0.17.2 + GKT
        want = _upstream_ext_modules("hustvl+MapTR-a6872d8d.tar.gz", "mmdetection3d/setup.py")
        assert want <= ops and "GeometricKernelAttention" in ops, sorted(want - ops)
    if "flash-attn==" in steps:
        assert {"flash_attn_cuda", "flash_attn.flash_attn_interface"} <= ops
    if spec.name in ("MapTR", "VAD", "PETR"):
        assert "torch.cuda.synchronize()" in spec.smoke.cuda_check


@pytest.mark.parametrize("pack", CONDA_PACKS, ids=lambda p: p.name)
def test_packs_that_build_ops_pin_their_compilers_nvcc_and_ninja(pack):
    spec = load_model_spec(pack)
    env = yaml.safe_load((pack / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert spec.ops.build
    assert "gcc_linux-64=9.5.0" in conda and "gxx_linux-64=9.5.0" in conda     # nvcc 11.1 needs gcc <= 10
    assert "cudatoolkit-dev=11.1.1" in conda                                     # nvcc 11.1 for +cu111 torch
    assert any(str(p).startswith("ninja==") for p in pip)
    # the arch list is env create's (recorded in the env info), never a per-step override
    assert not any(a.startswith(("TORCH_CUDA_ARCH_LIST=", "FORCE_CUDA=")) for argv in spec.ops.build for a in argv)


def test_petr_info_stage_calls_only_the_info_function(tmp_path):
    """PETR's converter runs mmdet3d 0.17.1's create_nuscenes_infos alone (no 2-D COCO export, no GT database).

    The argv runs for real against a stand-in ``tools/data_converter/nuscenes_converter.py`` whose
    functions have the upstream signatures (read from the v0.17.1 snapshot) and record their calls.
    """
    import ast
    import json
    import subprocess
    import sys
    import tarfile

    from onlinemap.setup.data import converter_argv

    snap = REPO.parent / "shared" / "upstream" / "open-mmlab+mmdetection3d-f1107977.tar.gz"
    if not snap.exists():
        pytest.skip(f"{snap} is not here")
    with tarfile.open(snap) as tf:
        member = next(m for m in tf.getmembers() if m.name.lstrip("./") == "tools/data_converter/nuscenes_converter.py")
        tree = ast.parse(tf.extractfile(member).read().decode())
    upstream = {f.name: [a.arg for a in f.args.args]
                for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert upstream["create_nuscenes_infos"] == ["root_path", "info_prefix", "version", "max_sweeps"]
    cwd = tmp_path / "mmdetection3d"
    (cwd / "tools" / "data_converter").mkdir(parents=True)
    (cwd / "tools" / "__init__.py").write_text("")
    (cwd / "tools" / "data_converter" / "__init__.py").write_text("")
    calls = tmp_path / "calls.jsonl"
    stub = "import json\n"
    for name, args in upstream.items():
        stub += (f"def {name}({', '.join(args)}):\n"
                 f"    open({str(calls)!r}, 'a').write(json.dumps([{name!r}, {', '.join(args)}]) + '\\n')\n")
    (cwd / "tools" / "data_converter" / "nuscenes_converter.py").write_text(stub)
    spec = load_model_spec(REPO / "envs" / "PETR")
    assert spec.data.converter_cwd == "mmdetection3d"
    for version, want in (("v1.0-trainval", "v1.0-trainval"), ("v1.0-mini", "v1.0-mini")):
        root = tmp_path / version
        (root / version).mkdir(parents=True)
        (root / version / "sample.json").write_text("[]")
        argv = converter_argv(spec, root)
        subprocess.run([sys.executable, *argv[1:]], cwd=cwd, check=True, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})
        rows = [json.loads(line) for line in calls.read_text().splitlines()]
        assert rows == [["create_nuscenes_infos", str(root), "nuscenes", want, 10]], rows
        calls.unlink()


@pytest.mark.parametrize("pack", CONDA_PACKS, ids=lambda p: p.name)
def test_smoke_code_is_python_38(pack):
    """The smoke step's source (imports, plugin, CUDA check) parses as the env's Python 3.8."""
    import ast

    from onlinemap.environments.create import smoke_code

    code = smoke_code(load_model_spec(pack))
    ast.parse(code, feature_version=(3, 8))
    assert "import mmcv._ext" in code and "importlib.import_module(" in code
