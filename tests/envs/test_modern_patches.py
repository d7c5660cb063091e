"""The modern variants' repo patches apply, in their order, to the pinned upstream sources.

The checkout is rebuilt from ../shared/upstream (the repo and its side clone where the [ops] steps put
it); each patch file the variant names is ``git apply``-ed in turn, as env create does. Skips where
the snapshots are absent (they are read-only third-party code, never copied into the project)."""
from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from onlinemap.registry.spec import load_model_spec

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = REPO.parent / "shared" / "upstream"
#: model -> (repo tarball, [(side-clone tarball, path in the checkout)])
SOURCES = {
    "MapTR": ("hustvl+MapTR-a6872d8d.tar.gz", []),
    "PETR": ("megvii-research+PETR-f7525f93.tar.gz", [("open-mmlab+mmdetection3d-f1107977.tar.gz", "mmdetection3d")]),
    "VAD": ("hustvl+VAD-1688c4b1.tar.gz", [("open-mmlab+mmdetection3d-f1107977.tar.gz", "third_party/mmdet3d")]),
    "StreamPETR": ("exiawsh+StreamPETR-95f64702.tar.gz",
                   [("open-mmlab+mmdetection3d-47285b3f.tar.gz", "mmdetection3d")]),
    "TopoMLP": ("wudongming97+TopoMLP-89259679.tar.gz", [("open-mmlab+mmdetection3d-47285b3f.tar.gz", "mmdetection3d")]),
}


def _unpack(tarball: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tf:
        tf.extractall(dest, filter="data")


@pytest.mark.parametrize("model", sorted(SOURCES))
def test_modern_repo_patches_apply_to_the_pinned_sources(model, tmp_path):
    repo_tar, sides = SOURCES[model]
    if not (UPSTREAM / repo_tar).is_file():
        pytest.skip(f"{UPSTREAM / repo_tar} is not here")
    checkout = tmp_path / model
    _unpack(UPSTREAM / repo_tar, checkout)
    for tar, where in sides:
        _unpack(UPSTREAM / tar, checkout / where)
    spec = load_model_spec(REPO / "envs" / model, "modern")
    patches = spec.patch_files("repo")
    assert any("modern-cuda" in str(p) for p in patches)
    for patch in patches:
        if not patch.is_file():
            continue      # a series file of another branch (the lane's) not merged here yet
        out = subprocess.run(["git", "apply", "-v", str(patch)], cwd=checkout, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{patch.relative_to(REPO)} does not apply after the ones before it:\n{out.stderr}"
        assert subprocess.run(["git", "apply", "-R", "--check", str(patch)], cwd=checkout,
                              capture_output=True).returncode == 0
    if model in ("MapTR", "PETR", "VAD"):
        ops = next(checkout.rglob("ball_query.cpp"))
        assert "THC" not in ops.read_text()
        setup = next(p for p in (checkout / "mmdetection3d" / "setup.py", checkout / "third_party/mmdet3d/setup.py")
                     if p.is_file())
        assert "-std=c++17" in setup.read_text() and "-std=c++14" not in setup.read_text()
