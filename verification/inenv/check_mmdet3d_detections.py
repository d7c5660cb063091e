"""Reference check of a detector's boxes against mmdet3d's own ``NuScenesDataset._format_bbox``.

Usage: check_mmdet3d_detections.py REPO CONFIG DATAROOT INFO_FILE TAP_DIR PREDICTIONS OUT.json
(run in the verification venv). The test dataset is built from the real config as the adapter
builds it; for the tapped samples (raw model output, ``verification/inenv/tap_adapter.py``) the
dataset's own ``_format_bbox`` writes a nuScenes submission, and every box of the adapter's
prediction is compared with it: same count, labels, scores and attributes; max differences of
centre, size, yaw and velocity. Writes ``{"checks": [...]}``; each check has ``name``, ``passed``,
``max_diff`` and ``detail``.
"""
import glob
import importlib
import json
import math
import os
import sys
import tempfile

TOL_M = 1e-4      # float32 network output through two rigid transforms: agreement is ~1e-7 m
TOL_RAD = 1e-5


def _dataset(repo, config, dataroot, info_file):
    from mmcv import Config

    sys.path.insert(0, repo)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "envs", "_shared"))
    import onlinemap_adapterlib as lib

    cfg = Config.fromfile(config)
    module = lib.plugin_module_name(cfg, config, repo)
    if module:
        importlib.import_module(module)
    from mmdet3d.datasets import build_dataset

    cfg.data.test.test_mode = True
    cfg.data.test.data_root = os.path.abspath(dataroot) + os.sep
    cfg.data.test.ann_file = os.path.join(os.path.abspath(dataroot), info_file)
    return build_dataset(cfg.data.test)


def _yaw(quat):
    from pyquaternion import Quaternion
    return Quaternion(quat).yaw_pitch_roll[0]


def _wrap(a):
    return (a + math.pi) % (2 * math.pi) - math.pi


def main(repo, config, dataroot, info_file, tap_dir, predictions, out):
    import torch

    dataset = _dataset(repo, config, dataroot, info_file)
    by_token = {info["token"]: info for info in dataset.data_infos}
    taps = [torch.load(p, weights_only=False) for p in sorted(glob.glob(os.path.join(tap_dir, "*.pt")))]
    preds = {}
    with open(predictions) as fh:
        for line in fh:
            if line.strip():
                p = json.loads(line)
                preds[p["sample_token"]] = p
    tokens = [t["sample"]["token"] for t in taps]
    dataset.data_infos = [by_token[t] for t in tokens]
    results = []
    for t in taps:
        raw = t["raw"]
        raw = raw[0] if isinstance(raw, (list, tuple)) else raw
        results.append(raw["pts_bbox"] if "pts_bbox" in raw else raw)
    with tempfile.TemporaryDirectory() as tmp:
        with open(dataset._format_bbox(results, tmp)) as fh:
            reference = json.load(fh)["results"]

    worst = {"center_m": 0.0, "size_m": 0.0, "yaw_rad": 0.0, "velocity_mps": 0.0}
    problems = []
    total = 0
    for token in tokens:
        ours = sorted(preds[token]["detections_3d"], key=lambda d: (-d["score"], d["label"]))
        ref = sorted(reference[token], key=lambda d: (-d["detection_score"], d["detection_name"]))
        if len(ours) != len(ref):
            problems.append("%s: %d boxes, _format_bbox keeps %d" % (token, len(ours), len(ref)))
            continue
        for a, b in zip(ours, ref):
            total += 1
            if a["label"] != b["detection_name"] or abs(a["score"] - b["detection_score"]) > 1e-6:
                problems.append("%s: box (%s, %.6f) vs (%s, %.6f)" % (token, a["label"], a["score"],
                                                                      b["detection_name"], b["detection_score"]))
                break
            if (a.get("attribute") or "") != (b["attribute_name"] or ""):
                problems.append("%s: attribute %r vs %r" % (token, a.get("attribute"), b["attribute_name"]))
            worst["center_m"] = max(worst["center_m"], max(abs(x - y) for x, y in zip(a["center"], b["translation"])))
            worst["size_m"] = max(worst["size_m"], max(abs(x - y) for x, y in zip(a["size"], b["size"])))
            worst["yaw_rad"] = max(worst["yaw_rad"], abs(_wrap(a["yaw"] - _yaw(b["rotation"]))))
            worst["velocity_mps"] = max(worst["velocity_mps"], max(abs(x - y) for x, y in zip(a["velocity"], b["velocity"])))
    ok = not problems and total > 0 and worst["center_m"] <= TOL_M and worst["size_m"] <= TOL_M \
        and worst["yaw_rad"] <= TOL_RAD and worst["velocity_mps"] <= TOL_M
    check = {"name": "boxes vs mmdet3d NuScenesDataset._format_bbox", "passed": ok, "max_diff": worst,
             "detail": "%d boxes over %d samples compared%s" % (total, len(tokens),
                                                                  ("; " + "; ".join(problems[:5])) if problems else "")}
    with open(out, "w") as fh:
        json.dump({"checks": [check]}, fh, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
