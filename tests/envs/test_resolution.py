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
    """Every pack resolved once, concurrently (uv is network-bound: the five run side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(pack):
        spec = load_model_spec(pack)
        return rs.resolve(rs.pack_requirements(spec.environment_file, python=spec.python, ops_build=spec.ops.build),
                          uv=uv)

    with ThreadPoolExecutor(max_workers=len(PACKS)) as pool:
        return dict(zip([p.name for p in PACKS], pool.map(one, PACKS)))


def _check(pack: Path, uv: str, environment_file: Path | None = None) -> rs.Resolution:
    spec = load_model_spec(pack)
    reqs = rs.pack_requirements(environment_file or spec.environment_file, python=spec.python,
                                ops_build=spec.ops.build)
    res = rs.resolve(reqs, uv=uv)
    if res.network:
        pytest.skip(f"PyPI could not be reached by uv: {res.message.splitlines()[-1] if res.message else ''}")
    return res


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_pip_section_resolves_against_pypi(pack, resolutions):
    res = resolutions[pack.name]
    if res.network:
        pytest.skip(f"PyPI could not be reached by uv: {res.message.splitlines()[-1] if res.message else ''}")
    assert res.ok, (f"{pack.name}: envs/{pack.name}/environment.yml's pip section does not resolve for "
                    f"CPython {load_model_spec(pack).python} on linux-64:\n{res.message}\n({rs.describe(res.argv)})")
    # what the pack pins is what the resolver picked (nothing silently replaced by a dependency's wish)
    reqs = rs.pack_requirements(pack / "environment.yml", python=load_model_spec(pack).python,
                                ops_build=load_model_spec(pack).ops.build)
    for line in reqs.pypi:
        m = rs._PIN.match(line.replace(" ", ""))
        if m:
            assert res.pinned.get(rs._canon(m.group(1))) == m.group(2), (pack.name, line)


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
