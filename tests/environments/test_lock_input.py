"""What conda-lock is given: the packs' pip options rewritten into what conda-lock's parser accepts.

The contract test runs conda-lock's own environment.yml parser (conda-lock 4.0.3, installed into a
venv of its own, as `pipx install conda-lock` would) on the derived file of every real pack, with the
find-links pages stubbed by the wheel names they list upstream. Nothing here reaches a conda channel.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from onlinemap.environments.lock_input import (conda_lock_input, find_links_wheels, split_pip_section,
                                               wheel_matches)
from onlinemap.errors import MissingPrerequisiteError, SpecError
from onlinemap.registry.spec import load_model_spec

REPO = Path(__file__).resolve().parents[2]
PACKS = ["MapTR", "PETR", "StreamPETR", "TopoMLP", "VAD"]

# the wheels the real pages list for these pins (file names as upstream publishes them)
PAGES = {
    "https://download.pytorch.org/whl/torch_stable.html": [
        "cu111/torch-1.9.1%2Bcu111-cp38-cp38-linux_x86_64.whl", "cu111/torch-1.9.1%2Bcu111-cp39-cp39-linux_x86_64.whl",
        "cu102/torch-1.9.1-cp38-cp38-linux_x86_64.whl", "cu111/torchvision-0.10.1%2Bcu111-cp38-cp38-linux_x86_64.whl",
        "torchaudio-0.9.1-cp38-cp38-linux_x86_64.whl", "cu111/torch-1.9.1%2Bcu111-cp38-cp38-win_amd64.whl"],
    "https://download.openmmlab.com/mmcv/dist/cu111/torch1.9.0/index.html": [
        "mmcv_full-1.4.0-cp38-cp38-manylinux1_x86_64.whl", "mmcv_full-1.4.0-cp37-cp37m-manylinux1_x86_64.whl",
        "mmcv_full-1.5.2-cp38-cp38-manylinux1_x86_64.whl", "mmcv_full-1.6.0-cp38-cp38-manylinux1_x86_64.whl"],
}


def _page(url: str) -> str:
    return "<html><body>" + "".join(f'<a href="{h}">{h}</a><br/>' for h in PAGES[url]) + "</body></html>"


def test_pip_options_are_split_from_requirements():
    idx, pages, reqs = split_pip_section(["--extra-index-url https://i.example/simple", "-f https://p.example/x.html",
                                          "--find-links=https://q.example/", "torch==1.9.0+cu111  # why", "numpy==1.19.5"])
    assert idx == ["https://i.example/simple"] and pages == ["https://p.example/x.html", "https://q.example/"]
    assert reqs == ["torch==1.9.0+cu111", "numpy==1.19.5"]
    with pytest.raises(SpecError, match="--pre"):
        split_pip_section(["--pre", "numpy"])


@pytest.mark.parametrize("name, ok", [
    ("torch-1.9.1+cu111-cp38-cp38-linux_x86_64.whl", True),
    ("mmcv_full-1.4.0-cp38-cp38-manylinux1_x86_64.whl", True),
    ("mmcv_full-1.4.0-py3-none-any.whl", True),
    ("torch-1.9.1+cu111-cp39-cp39-linux_x86_64.whl", False),          # another Python
    ("torch-1.9.1+cu111-cp38-cp38-win_amd64.whl", False),             # another OS
    ("torch-1.9.1-cp38-cp38-linux_x86_64.whl", False),                # the CPU/cu102 build: another version
    ("mmcv_full-1.4.0-cp38-cp38-manylinux_2_28_x86_64.whl", False),   # newer glibc than the packs declare
])
def test_wheel_tags_follow_pip(name, ok):
    pin = ("torch", "1.9.1+cu111") if name.startswith("torch") else ("mmcv-full", "1.4.0")
    assert wheel_matches(name, *pin, python="3.8") is ok


def test_find_links_pages_are_read_with_relative_and_quoted_links(tmp_path):
    page = tmp_path / "stable.html"
    page.write_text('<a href="cu111/torch-1.9.1%2Bcu111-cp38-cp38-linux_x86_64.whl">x</a><a href="README">r</a>')
    wheels = find_links_wheels([page.as_uri()])
    assert wheels == [("torch-1.9.1+cu111-cp38-cp38-linux_x86_64.whl",
                       tmp_path.as_uri() + "/cu111/torch-1.9.1%2Bcu111-cp38-cp38-linux_x86_64.whl")]
    with pytest.raises(MissingPrerequisiteError, match="could not read the pip --find-links page"):
        find_links_wheels([(tmp_path / "missing.html").as_uri()])


@pytest.mark.parametrize("model", PACKS)
def test_every_pack_becomes_options_free(model, tmp_path):
    spec = load_model_spec(REPO / "envs" / model)
    out = conda_lock_input(spec.environment_file, tmp_path / "environment.yml", python=spec.python, fetch=_page)
    doc = yaml.safe_load(out.read_text())
    pip = next(d["pip"] for d in doc["dependencies"] if isinstance(d, dict))
    assert not [r for r in pip if r.startswith("-")]
    mmcv = [r for r in pip if r.startswith("mmcv-full")]
    assert len(mmcv) == 1 and " @ https://download.openmmlab.com/mmcv/dist/cu111/torch1.9.0/mmcv_full-" in mmcv[0]
    assert "-cp38-cp38-manylinux1_x86_64.whl" in mmcv[0]
    torch = next(r for r in pip if r.startswith("torch=") or r.startswith("torch "))
    if "--extra-index-url https://download.pytorch.org/whl/cu111" in spec.environment_file.read_text():
        assert doc["pip-repositories"] == ["https://download.pytorch.org/whl/cu111"] and torch.startswith("torch==")
    else:   # torch_stable.html packs: torch becomes its cu111 cp38 wheel
        assert torch == "torch @ https://download.pytorch.org/whl/cu111/torch-1.9.1%2Bcu111-cp38-cp38-linux_x86_64.whl"
    original = yaml.safe_load(spec.environment_file.read_text())
    assert [d for d in doc["dependencies"] if not isinstance(d, dict)] == \
        [d for d in original["dependencies"] if not isinstance(d, dict)]             # the conda part is untouched


_PARSE = """
import json, pathlib, sys
from conda_lock.src_parser.environment_yaml import parse_environment_file
spec = parse_environment_file(pathlib.Path(sys.argv[1]), platforms=["linux-64"], mapping_url=sys.argv[2])
pip = [d for d in spec.dependencies["linux-64"] if d.manager == "pip"]
print(json.dumps({"pip": [[d.name, getattr(d, "url", None), getattr(d, "version", None)] for d in pip],
                  "repos": [r.url for r in spec.pip_repositories]}))
"""


def test_conda_lock_itself_reads_every_derived_file(conda_lock_python, tmp_path):
    mapping = tmp_path / "pypi-to-conda.json"
    mapping.write_text("{}")                       # the name mapping is only needed for the solve
    for model in PACKS:
        spec = load_model_spec(REPO / "envs" / model)
        raw = subprocess.run([str(conda_lock_python), "-c", _PARSE, str(spec.environment_file), mapping.as_uri()],
                             capture_output=True, text=True)
        assert raw.returncode != 0 and "InvalidRequirement" in raw.stderr, f"{model}: the raw file now parses?"
        derived = conda_lock_input(spec.environment_file, tmp_path / f"{model}.yml", python=spec.python, fetch=_page)
        proc = subprocess.run([str(conda_lock_python), "-c", _PARSE, str(derived), mapping.as_uri()],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{model}: {proc.stderr[-1500:]}"
        got = json.loads(proc.stdout)
        urls = {name: url for name, url, _v in got["pip"] if url}
        assert urls["mmcv-full"].endswith("-cp38-cp38-manylinux1_x86_64.whl"), model
        assert len(got["pip"]) >= 20, model
