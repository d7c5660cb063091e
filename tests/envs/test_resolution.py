"""Every pack's pip section resolves for real (uv against PyPI, the pack's Python, linux-64).

What the check covers and what it cannot is in tests/envs/resolution.py's docstring and in
docs/models.md ("what was verified where"). Skips, with the reason, where PyPI or uv is missing.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from onlinemap.environments.lock_input import fetch_page
from onlinemap.errors import MissingPrerequisiteError
from onlinemap.registry.spec import load_model_spec
from tests.envs import resolution as rs

REPO = Path(__file__).resolve().parents[2]
PACKS = sorted(p for p in (REPO / "envs").iterdir() if (p / "environment.yml").exists())
#: every env variant of every pack: (pack folder, variant name); ids "MapTR" (paper) and "MapTR-modern"
VARIANTS = [(p, v) for p in PACKS for v in load_model_spec(p).variant_names]


def _vid(pv) -> str:
    return pv[0].name if pv[1] == "paper" else f"{pv[0].name}-{pv[1]}"


def _reqs(spec, environment_file: Path | None = None) -> rs.PackRequirements:
    """The variant's pip section + its [ops] pip pins + its [[wheels]] sdists (built --no-deps in the env)."""
    wheels = [["python", "-m", "pip", "install", "--no-deps", f"{w.package}=={w.version}"] for w in spec.wheels]
    return rs.pack_requirements(environment_file or spec.environment_file, python=spec.python,
                                ops_build=[*spec.ops.build, *wheels])


def _platform(spec) -> str:
    return rs.platform_for(spec.virtual_packages_file)


@pytest.fixture(scope="module")
def uv() -> str:
    exe = rs.uv_binary()
    if exe is None:
        pytest.skip("uv is not installed (pip install -e '.[test]' installs it)")
    why = rs.pypi_reachable()
    if why:
        pytest.skip(why)
    return exe


@pytest.fixture(scope="module")
def resolutions(uv) -> dict:
    """Every variant of every pack resolved once, concurrently (uv is network-bound: all of them side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(pv):
        spec = load_model_spec(*pv)
        return rs.resolve(_reqs(spec), uv=uv, platform=_platform(spec))

    with ThreadPoolExecutor(max_workers=len(VARIANTS)) as pool:
        return dict(zip([_vid(pv) for pv in VARIANTS], pool.map(one, VARIANTS)))


def _check(pack: Path, uv: str, environment_file: Path | None = None) -> rs.Resolution:
    spec = load_model_spec(pack)
    reqs = rs.pack_requirements(environment_file or spec.environment_file, python=spec.python,
                                ops_build=spec.ops.build)
    res = rs.resolve(reqs, uv=uv)
    if res.network:
        pytest.skip(f"PyPI could not be reached by uv: {res.message.splitlines()[-1] if res.message else ''}")
    return res


@pytest.mark.parametrize("pv", VARIANTS, ids=_vid)
def test_pip_section_resolves_against_pypi(pv, resolutions):
    res = resolutions[_vid(pv)]
    spec = load_model_spec(*pv)
    if res.network:
        pytest.skip(f"PyPI could not be reached by uv: {res.message.splitlines()[-1] if res.message else ''}")
    assert res.ok, (f"{_vid(pv)}: {spec.environment_file.relative_to(REPO)}'s pip section does not resolve for "
                    f"CPython {spec.python} on linux-64:\n{res.message}\n({rs.describe(res.argv)})")
    # what the pack pins is what the resolver picked (nothing silently replaced by a dependency's wish)
    for line in _reqs(spec).pypi:
        m = rs._PIN.match(line.replace(" ", ""))
        if m:
            assert res.pinned.get(rs._canon(m.group(1))) == m.group(2), (_vid(pv), line)


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_modern_variant_torch_is_the_cuda_12_8_build(pack, resolutions):
    """PyPI's torch 2.8.0 for Linux is the CUDA 12.8 build: the resolver pulls NVIDIA's 12.8 runtime wheels."""
    res = resolutions[f"{pack.name}-modern"]
    if res.network:
        pytest.skip("PyPI could not be reached by uv")
    assert res.ok, res.message
    assert res.pinned.get("torch") == "2.8.0"
    assert res.pinned.get("nvidia-cuda-runtime-cu12", "").startswith("12.8."), res.pinned.get("nvidia-cuda-runtime-cu12")


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_modern_variant_needs_no_other_index(pack):
    """The modern stack comes from PyPI alone: torch without a +cu label, mmcv-full as a PyPI sdist built in the env."""
    spec = load_model_spec(pack, "modern")
    reqs = _reqs(spec)
    assert reqs.other_index == [] and not reqs.indexes and not reqs.pages
    assert ("mmcv-full", "1.7.2") in reqs.built_in_env


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_other_index_pins_have_a_wheel(pack):
    """torch +cuNNN / torchvision / mmcv-full: a wheel for the pack's Python on linux-64 on its own pages."""
    spec = load_model_spec(pack)
    reqs = rs.pack_requirements(spec.environment_file, python=spec.python, ops_build=spec.ops.build)
    assert {rs._canon(n) for n, _, _ in reqs.other_index} >= {"mmcv-full", "torch"}, \
        f"{pack.name}: torch and mmcv-full must be named and checked here, not against PyPI"
    try:
        problems = rs.other_index_pins(reqs, fetch_page)
    except MissingPrerequisiteError as exc:
        pytest.skip(f"{pack.name}: the torch / OpenMMLab pages cannot be read here ({exc.message})")
    assert not problems, f"{pack.name}: " + "; ".join(problems)


def _copy_pack(pack: Path, tmp_path: Path) -> Path:
    dest = tmp_path / pack.name
    shutil.copytree(pack, dest)
    return dest


@pytest.mark.parametrize("old,new,culprit", [
    ("shapely==1.8.5 ", "shapely==1.8.5.post1 ", "shapely"),        # the conflict the pack had (devkit Shapely<=1.8.5)
    ("ortools==9.3.10497", "ortools==9.2.9972", "ortools"),        # a version PyPI no longer serves
])
def test_an_unresolvable_pin_fails_naming_pack_package_and_conflict(old, new, culprit, uv, tmp_path):
    pack = next(p for p in PACKS if old in (p / "environment.yml").read_text())
    copy = _copy_pack(pack, tmp_path)
    env = copy / "environment.yml"
    env.write_text(env.read_text().replace(old, new, 1))
    res = _check(copy, uv, env)
    assert not res.ok
    assert culprit in res.message and ("conclude" in res.message or "no version" in res.message), res.message


def test_a_built_in_env_pin_that_does_not_exist_fails(uv, tmp_path):
    """[ops] pip pins (built --no-build-isolation) are resolved too: a wrong version is caught."""
    copy = _copy_pack(REPO / "envs" / "PETR", tmp_path)
    toml = copy / "model.toml"
    toml.write_text(toml.read_text().replace('"pycocotools==2.0.1"', '"pycocotools==2.0.99"', 1))
    res = _check(copy, uv)
    assert not res.ok and "pycocotools" in res.message, res.message


def test_requirements_split_names_the_other_index_packages():
    spec = load_model_spec(REPO / "envs" / "StreamPETR")
    reqs = rs.pack_requirements(spec.environment_file, python=spec.python, ops_build=spec.ops.build)
    assert ("torch", "1.9.0", "+cu111") in reqs.other_index and "torch==1.9.0" in reqs.pypi
    assert not any(r.startswith("mmcv-full") for r in reqs.pypi)
    assert ("flash-attn", "0.2.2") in reqs.built_in_env and "flash-attn==0.2.2" in reqs.pypi
