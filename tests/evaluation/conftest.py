"""Evaluation fixtures: the synthetic dataset opened once, and predictions equal to its ground truth.

The "perfect" predictions are read straight from the dataset's own tables through the devkit (boxes)
and from the map-expansion GT builder (polylines); the tests then perturb them by known amounts.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

VERSION = "v1.0-mini"


@pytest.fixture(scope="session")
def nusc(synth_root: Path):
    from onlinemap.evaluation.detection import load_nuscenes

    return load_nuscenes(synth_root, VERSION)


@pytest.fixture(scope="session")
def map_gt(nusc, synth_root):
    from onlinemap.evaluation.mapping import MapGroundTruth

    return MapGroundTruth(nusc, synth_root)


@pytest.fixture(scope="session")
def gt_detections(nusc) -> dict[str, list[dict]]:
    """sample token -> its GT annotations as standard-schema detections (global frame)."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    out = {}
    for sample in nusc.sample:
        dets = []
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            name = category_to_detection_name(ann["category_name"])
            if name is None:
                continue
            vel = nusc.box_velocity(ann_token)[:2]
            attrs = [nusc.get("attribute", t)["name"] for t in ann["attribute_tokens"]]
            dets.append({"label": name, "score": 0.9, "center": list(ann["translation"]), "size": list(ann["size"]),
                         "yaw": Quaternion(ann["rotation"]).yaw_pitch_roll[0],
                         "velocity": [None if math.isnan(v) else float(v) for v in vel],
                         "attribute": attrs[0] if attrs else None, "frame": "global"})
        out[sample["token"]] = dets
    return out


@pytest.fixture(scope="session")
def gt_polylines(nusc, map_gt) -> dict[str, dict]:
    """sample token -> {class: [polyline arrays in the ego frame]} from the map expansion."""
    return {s["token"]: map_gt.polylines(s["token"]) for s in nusc.sample}


# ----------------------------------------------------------------------------- upstream oracles
REPO = Path(__file__).resolve().parents[2]
ORACLES = Path(__file__).resolve().parent / "oracles"
# hustvl/MapTR pins shapely 1.8.5.post1 (its map_utils and VectorizedLocalMap use shapely-1.8-only
# APIs: STRtree.query returning geometries, assignable ring coords); VAD's metric needs scikit-image
ORACLE_REQUIREMENTS = ("shapely==1.8.5.post1", "scikit-image", "terminaltables")


def _upstream_dir() -> Path:
    import os

    return Path(os.environ.get("ONLINEMAP_UPSTREAM_DIR", REPO.parent / "shared" / "upstream"))


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    """``name -> extracted root`` of the upstream snapshots the oracles import (skip without them)."""
    import tarfile

    snapshots = {"MapTR": "hustvl+MapTR-a6872d8d.tar.gz", "VAD": "hustvl+VAD-1688c4b1.tar.gz",
                 "mmdet3d": "open-mmlab+mmdetection3d-f1107977.tar.gz"}
    wanted = {"MapTR": ("projects/mmdet3d_plugin/datasets/map_utils/", "projects/mmdet3d_plugin/datasets/nuscenes_map_dataset.py"),
              "VAD": ("projects/mmdet3d_plugin/VAD/planner/", "projects/mmdet3d_plugin/core/evaluation/metric_motion.py",
                      "tools/data_converter/vad_nuscenes_converter.py"),
              "mmdet3d": ("mmdet3d/datasets/nuscenes_dataset.py",)}
    src = _upstream_dir()
    missing = [f for f in snapshots.values() if not (src / f).is_file()]
    if missing:
        pytest.skip(f"upstream snapshots absent from {src} ({', '.join(missing)}): the reference oracles cannot run")
    out = {}
    for name, tarball in snapshots.items():
        root = tmp_path_factory.mktemp(name)
        with tarfile.open(src / tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.lstrip("./").startswith(wanted[name])]
            tar.extractall(root, members=members)
        out[name] = root
    return out


@pytest.fixture(scope="session")
def oracle_python():
    """Python of a venv for the upstream oracles (``.venv-oracle``, made once and cached): shapely
    1.8.5 as MapTR pins, scikit-image for VAD; everything else (numpy, torch, cv2, the devkit) is the
    test venv's, through a .pth file, so the oracles see the very same versions of those. Built and
    used under a file lock (``tests/venvs.py``): two sessions in one checkout do not race on it."""
    import subprocess
    import sysconfig

    from tests.venvs import cached_venv

    venv = REPO / ".venv-oracle"
    want = [*ORACLE_REQUIREMENTS, f"numpy=={_version('numpy')}", f"scipy=={_version('scipy')}"]
    try:
        with cached_venv(venv, want, pth=sysconfig.get_paths()["purelib"]) as (py, _built):
            yield py
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(f"cannot build the oracle venv {venv} ({' '.join(ORACLE_REQUIREMENTS)}): {str(detail)[-300:]}")


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def run_oracle(python: Path, script: str, args: list, payload) -> object:
    """Run ``oracles/<script>`` in the oracle venv on ``payload`` (JSON) and return its JSON answer."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.json"), Path(tmp, "out.json")
        src.write_text(json.dumps(payload))
        proc = subprocess.run([str(python), str(ORACLES / script), *map(str, args), str(src), str(dst)],
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, f"oracle {script} failed:\n{proc.stderr[-3000:]}"
        return json.loads(dst.read_text())
