"""Env variants (issue 15): the ``paper`` stack and a ``modern`` one per model, chosen from the GPU.

No GPU here: the GPU is faked at the NVML seam (``gpu_info`` with tests/telemetry/fakenvml.FakeNvml, the
only stand-in) or given as the dict ``gpu_info`` returns. Env creation goes through the stand-in conda;
the built-wheel cache is exercised with real pip building a real sdist, offline (PIP_NO_INDEX)."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from onlinemap.environments import check_gpu_arch
from onlinemap.environments.guard import choose_variant
from onlinemap.errors import MissingPrerequisiteError, SpecError
from onlinemap.registry.discover import find_model
from onlinemap.registry.spec import load_model_spec
from tests.telemetry.fakenvml import FakeGpu, FakeNvml

REPO = Path(__file__).resolve().parents[2]
MODELS = ["MapTR", "PETR", "StreamPETR", "TopoMLP", "VAD"]


def gpu(cc, name="NVIDIA H200"):
    return {"available": True, "name": name, "compute_capability": cc}


@pytest.fixture
def fake_gpu(monkeypatch):
    """Make ``gpu_info`` see one GPU of compute capability ``cc`` through the NVML seam (FakeNvml)."""
    import onlinemap.telemetry.nvml as nvml

    real = nvml.gpu_info

    def install(cc: tuple, name: str):
        fake = FakeNvml([FakeGpu(name=name, cc=cc)])
        monkeypatch.setattr(nvml, "gpu_info", lambda device, nvml=None, env=None: real(device, fake, env))
    return install


@pytest.mark.parametrize("model", MODELS)
def test_every_model_has_a_modern_variant_for_hopper_and_blackwell(model):
    paper = find_model(model)
    assert paper.variant == "paper" and paper.variant_names == ["paper", "modern"]
    # the paper variant is today's files, unchanged (same prefix name, same files)
    assert paper.environment_file == paper.folder / "environment.yml" and paper.env_key == model
    modern = paper.with_variant("modern")
    assert modern.environment_file == paper.folder / "variants" / "modern" / "environment.yml"
    assert modern.env_key == f"{model}-modern" and modern.adapter_path == paper.adapter_path
    for cc in (8.0, 8.6, 8.9, 9.0, 10.0, 12.0):
        assert modern.gpu.supports(cc), (model, cc)
    assert not paper.gpu.supports(9.0)
    assert [w.package for w in modern.wheels] == ["mmcv-full"]
    assert {"9.0", "10.0", "12.0"} <= set(modern.gpu.archs)
    # the modern-cuda patches exist and apply to the pinned upstream sources (checked where they are read)
    assert all(f.is_file() for f in modern.patch_files("repo") if "modern-cuda" in str(f))
    assert load_model_spec(paper.folder, "modern") == modern


@pytest.mark.parametrize("cc,want", [("9.0", "modern"), ("10.0", "modern"), ("12.0", "modern"),
                                     ("8.6", "paper"), ("8.0", "paper"), ("8.9", "paper")])
def test_variant_chosen_from_compute_capability(cc, want):
    assert choose_variant(find_model("MapTR"), gpu=gpu(cc)).variant == want


def test_override_and_no_gpu():
    spec = find_model("MapTR")
    assert choose_variant(spec, gpu=gpu("8.6"), requested="modern").variant == "modern"
    assert choose_variant(spec, gpu={"available": False}).variant == "paper"
    assert choose_variant(spec, device="cpu").variant == "paper"
    with pytest.raises(SpecError) as exc:
        choose_variant(spec, gpu=gpu("8.6"), requested="newest")
    assert "no env variant 'newest'" in exc.value.one_line() and "paper, modern" in exc.value.one_line()


def test_paper_on_hopper_is_refused_naming_the_modern_variant(monkeypatch):
    monkeypatch.delenv("ONLINEMAP_IGNORE_GPU_ARCH", raising=False)
    spec = find_model("VAD")
    with pytest.raises(MissingPrerequisiteError) as exc:
        check_gpu_arch(spec, gpu=gpu("9.0"))
    line = exc.value.one_line()
    assert "\n" not in line and exc.value.exit_code == 3
    assert "paper stack" in line and "--variant modern" in line and "8-12" in line
    assert check_gpu_arch(spec.with_variant("modern"), gpu=gpu("12.0"))["compute_capability"] == "12.0"
    assert check_gpu_arch(spec.with_variant("modern"), gpu=gpu("8.6")) is not None    # Ampere: both allowed
    assert check_gpu_arch(spec, gpu=gpu("8.6")) is not None


def _cli(capsys, *args):
    """``onlinemap ARGS`` in this process (so the faked NVML is seen): (exit code, stdout, stderr)."""
    from onlinemap.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_env_create_dry_run_on_faked_hopper_picks_modern_and_shows_its_steps(fake_gpu, om_home, monkeypatch, capsys):
    monkeypatch.setenv("ONLINEMAP_ENVS", str(REPO / "envs"))
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    fake_gpu((9, 0), "NVIDIA H100 80GB HBM3")
    code, stdout, stderr = _cli(capsys, "env", "create", "MapTR", "--dry-run", "--json")
    assert code == 0, stderr
    out = json.loads(stdout)[0]
    assert out["variant"] == "modern" and "/MapTR-modern-" in out["prefix"]
    plan = "\n".join(out["plan"])
    assert "variant modern" in plan and "variants/modern/" in plan
    assert "repo patch patches/modern-cuda/repo/0002-gkt-op-torch2.patch" in plan
    assert "wheel mmcv-full==1.7.2" in plan and "TORCH_CUDA_ARCH_LIST=8.0;8.6;8.9;9.0;10.0;12.0" in plan
    assert "pip install --no-deps --no-build-isolation -v -e mmdetection3d" in plan
    assert "[MapTR] would: variant modern" in stderr
    assert not (om_home / "envs").exists() and not (om_home / "repos").exists()      # nothing was made


def test_env_create_dry_run_on_faked_ampere_picks_paper_unless_told(fake_gpu, om_home, monkeypatch, capsys):
    monkeypatch.setenv("ONLINEMAP_ENVS", str(REPO / "envs"))
    fake_gpu((8, 6), "NVIDIA RTX A6000")
    out = json.loads(_cli(capsys, "env", "create", "MapTR", "--dry-run", "--json")[1])[0]
    assert out["variant"] == "paper" and "/MapTR-modern-" not in out["prefix"]
    assert any("TORCH_CUDA_ARCH_LIST=8.0;8.6" in line for line in out["plan"])
    out = json.loads(_cli(capsys, "env", "create", "MapTR", "--dry-run", "--json", "--variant", "modern")[1])[0]
    assert out["variant"] == "modern"


def test_explicit_paper_on_faked_hopper_exits_3_naming_modern(fake_gpu, om_home, monkeypatch, capsys):
    monkeypatch.setenv("ONLINEMAP_ENVS", str(REPO / "envs"))
    monkeypatch.delenv("ONLINEMAP_IGNORE_GPU_ARCH", raising=False)
    fake_gpu((10, 0), "NVIDIA B200")
    code, _, stderr = _cli(capsys, "env", "create", "PETR", "--dry-run", "--variant", "paper")
    assert code == 3 and "--variant modern" in stderr and "Traceback" not in stderr
    assert len([ln for ln in stderr.splitlines() if ln.startswith("error:")]) == 1


def _variant(folder: Path, toml: str, env: str = "name: v\ndependencies: [python]\n") -> Path:
    d = folder / "variants" / "modern"
    d.mkdir(parents=True, exist_ok=True)
    (d / "variant.toml").write_text(toml)
    (d / "environment.yml").write_text(env)
    return d


BASE_VARIANT = 'schema_version = 1\npython = "3.11"\n[gpu]\nmin_compute = 8.0\nmax_compute = 12.0\n'


@pytest.mark.parametrize("extra,msg", [
    ('colour = "blue"\n', "unknown field 'colour'"),
    ('[ops]\nbuild = "make"\n', "ops.build"),
    ('repo_patches = ["/etc/passwd.patch"]\n', "repo_patches"),
    ('repo_patches = ["../../../../x.patch"]\n', "repo_patches"),
    ('[[wheels]]\npackage = "mmcv-full"\nversion = "1.7.2"\npatches = ["nope.patch"]\n', "wheels[0].patches"),
    ('[[wheels]]\npackage = "mmcv-full"\nversion = "1.7.2"\nsource = "git"\n', "unknown field 'wheels[0].source'"),
])
def test_variant_schema_is_strict(make_pack, extra, msg):
    spec = make_pack()
    _variant(spec.folder, BASE_VARIANT.replace("[gpu]", extra + "[gpu]") if not extra.startswith("[") else BASE_VARIANT + extra)
    with pytest.raises(SpecError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load_model_spec(spec.folder)


def test_variant_without_its_environment_yml_is_refused(make_pack):
    spec = make_pack()
    d = _variant(spec.folder, BASE_VARIANT)
    (d / "environment.yml").unlink()
    with pytest.raises(SpecError, match="environment.yml: missing"):
        load_model_spec(spec.folder)


# --- the built-wheel cache and the patches, through the stand-in conda -------------------------------------

#: an in-tree PEP 517 backend (standard library only), so the stand-in env needs no setuptools/wheel:
#: pip runs it for the metadata (pip download) and the build (pip wheel), as it runs mmcv-full's setup.py
BACKEND = """import base64, hashlib, os, zipfile
NAME, VERSION = open("NAME").read().split()
def _meta():
    return "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (NAME, VERSION)
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(directory, config_settings=None):
    d = os.path.join(directory, "%s-%s.dist-info" % (NAME, VERSION)); os.makedirs(d)
    open(os.path.join(d, "METADATA"), "w").write(_meta())
    return os.path.basename(d)
def build_wheel(directory, config_settings=None, metadata_directory=None):
    whl = "%s-%s-py3-none-any.whl" % (NAME, VERSION); di = "%s-%s.dist-info" % (NAME, VERSION)
    files = {NAME + ".py": open(NAME + ".py", "rb").read(), di + "/METADATA": _meta().encode(),
             di + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    rec = ["%s,sha256=%s,%d" % (k, base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=").decode(), len(v))
           for k, v in files.items()] + [di + "/RECORD,,"]
    with zipfile.ZipFile(os.path.join(directory, whl), "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
        zf.writestr(di + "/RECORD", "\\n".join(rec) + "\\n")
    return whl
"""


def _sdist(dest: Path, name: str, version: str, value: str) -> Path:
    """A real sdist of a one-module package, built by its own in-tree PEP 517 backend."""
    src = dest / f"{name}-{version}"
    src.mkdir(parents=True)
    (src / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                        'backend-path = ["."]\n')
    (src / "backend.py").write_text(BACKEND)
    (src / "NAME").write_text(f"{name} {version}\n")
    (src / f"{name}.py").write_text(f"VALUE = {value!r}\n")
    (src / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    archive = dest / f"{name}-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname=src.name)
    return archive


PATCH = """--- a/tinyop.py
+++ b/tinyop.py
@@ -1 +1 @@
-VALUE = 'plain'
+VALUE = '{value}'
"""


@pytest.fixture
def wheel_pack(make_pack, fakeconda, git_redirect, monkeypatch, tmp_path):
    """A test pack whose modern variant builds ``tinyop`` from a local sdist (pip offline, find-links)."""
    monkeypatch.setenv("FAKECONDA_SYSTEM_SITE", "1")          # the env's python sees pip and setuptools
    links = tmp_path / "links"
    links.mkdir()
    _sdist(tmp_path / "sdist-src", "tinyop", "1.0", "plain")
    (links / "tinyop-1.0.tar.gz").write_bytes((tmp_path / "sdist-src" / "tinyop-1.0.tar.gz").read_bytes())
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    spec = make_pack(lock=None, imports=(), ops=[])
    shared = spec.folder.parent / "_shared" / "wheels"
    shared.mkdir(parents=True)
    (shared / "tinyop.patch").write_text(PATCH.format(value="patched-1"))
    (spec.folder / "patches" / "modern" / "repo").mkdir(parents=True)
    (spec.folder / "patches" / "modern" / "repo" / "0001-marker.patch").write_text(
        "--- a/setup_marker.txt\n+++ b/setup_marker.txt\n@@ -1 +1 @@\n-v1\n+v1 patched\n")
    _variant(spec.folder, BASE_VARIANT.replace("[gpu]", 'repo_patches = ["patches/modern/repo/*.patch"]\n[gpu]')
             + '[[wheels]]\npackage = "tinyop"\nversion = "1.0"\npatches = ["_shared/wheels/tinyop.patch"]\n'
             + '[smoke]\nimports = ["tinyop"]\n',
             env="name: fakemap\nchannels: [local]\ndependencies:\n  - python\n")
    return load_model_spec(spec.folder)


def _installed_value(prefix: Path) -> str:
    py = prefix / "bin" / "python"
    return subprocess.run([str(py), "-c", "import tinyop; print(tinyop.VALUE)"], capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def test_wheel_cache_used_on_second_create_and_keyed_by_patch(wheel_pack, om_home, fakeconda):
    from onlinemap.environments.base import read_env_info
    from onlinemap.environments.create import create_env

    lines: list[str] = []
    first = create_env(wheel_pack, gpu=gpu("9.0"), skip_weights=True, progress=lines.append)
    assert first.variant == "modern" and "/FakeMap-modern-" in first.prefix
    assert [w["cached"] for w in first.wheels] == [False]
    assert _installed_value(Path(first.prefix)) == "patched-1"               # built from the PATCHED sdist
    assert (Path(first.repo) / "setup_marker.txt").read_text() == "v1 patched\n"   # repo patch applied
    assert Path(first.repo).name.endswith("-modern")                           # its own checkout
    info = read_env_info(Path(first.prefix))
    assert info["variant"] == "modern" and info["patches"][0]["file"] == "patches/modern/repo/0001-marker.patch"
    assert info["wheels"][0]["key"] == first.wheels[0]["key"]

    lines.clear()
    second = create_env(wheel_pack, gpu=gpu("9.0"), skip_weights=True, force=True, progress=lines.append)
    assert [w["cached"] for w in second.wheels] == [True] and second.wheels[0]["key"] == first.wheels[0]["key"]
    assert any("from the cache" in line and "tinyop==1.0" in line for line in lines), lines
    assert _installed_value(Path(second.prefix)) == "patched-1"
    # the checkout was reused and its patch recognised as applied, not applied twice
    assert (Path(second.repo) / "setup_marker.txt").read_text() == "v1 patched\n"

    (wheel_pack.folder.parent / "_shared" / "wheels" / "tinyop.patch").write_text(PATCH.format(value="patched-2"))
    third = create_env(load_model_spec(wheel_pack.folder), gpu=gpu("9.0"), skip_weights=True, force=True,
                       progress=lambda s: None)
    assert third.wheels[0]["cached"] is False and third.wheels[0]["key"] != first.wheels[0]["key"]
    assert _installed_value(Path(third.prefix)) == "patched-2"
    assert len(list((om_home / "wheels").glob("tinyop-1.0-*"))) == 2


def test_a_missing_patch_file_fails_in_one_line_and_leaves_no_env(wheel_pack, om_home):
    from onlinemap.environments.create import StepFailed, create_env

    for p in (wheel_pack.folder / "patches" / "modern" / "repo").iterdir():
        p.unlink()
    with pytest.raises(StepFailed, match="matches no file") as exc:
        create_env(wheel_pack, gpu=gpu("9.0"), skip_weights=True, progress=lambda s: None)
    assert "\n" not in exc.value.one_line()
    assert not list((om_home / "envs").glob("FakeMap-modern-*"))


def test_the_run_record_and_compare_carry_the_variant():
    """run.json's env block (EnvHandle.to_dict) names the variant and its patches; compare keys rows on it."""
    from types import SimpleNamespace

    from onlinemap.environments.base import EnvHandle
    from onlinemap.report.compare import _variant

    info = {"variant": "modern", "patches": [{"file": "patches/modern/repo/0001-x.patch", "sha256": "0" * 64}]}
    env = EnvHandle(model="MapTR", kind="conda", python="/p/bin/python", prefix=Path("/p"), info=info).to_dict()
    assert env["variant"] == "modern" and env["patches"] == ["patches/modern/repo/0001-x.patch"]
    assert EnvHandle(model="MapTR", kind="conda", python="/p/bin/python", prefix=Path("/p")).to_dict()["variant"] == "paper"
    assert _variant(SimpleNamespace(env={"kind": "conda"}, model_spec={"variant": "modern"})) == "modern"
    assert _variant(SimpleNamespace(env={"kind": "conda"}, model_spec={})) == "paper"       # runs from before variants
    assert _variant(SimpleNamespace(env={"kind": "host"}, model_spec={})) is None


def test_dry_run_names_a_patch_pattern_that_matches_nothing(make_pack, om_home):
    from onlinemap.environments.create import create_env

    spec = make_pack()
    _variant(spec.folder, BASE_VARIANT.replace("[gpu]", 'repo_patches = ["patches/modern/repo/*.patch"]\n[gpu]'))
    res = create_env(load_model_spec(spec.folder), gpu=gpu("9.0"), dry_run=True, progress=lambda s: None)
    assert res.variant == "modern" and res.plan[0].startswith("variant modern") and "paper, modern)" in res.plan[0]
    assert any("patches/modern/repo/*.patch: MATCHES NO FILE" in line for line in res.plan)
