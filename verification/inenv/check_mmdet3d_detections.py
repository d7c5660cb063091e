"""Reference check of a detector's boxes against mmdet3d's own ``NuScenesDataset._format_bbox``.

Usage: check_mmdet3d_detections.py REPO CONFIG DATAROOT INFO_FILE TAP_DIR PREDICTIONS OUT.json
(run in the verification venv). The test dataset is built from the real config as the adapter
builds it; for the tapped samples (raw model output, ``verification/inenv/tap_adapter.py``) the
dataset's own ``_format_bbox`` writes a nuScenes submission, and every box of the adapter's
prediction is compared with it: same count, labels, scores and attributes; max differences of
centre, size, yaw and velocity. Writes ``{"checks": [...]}``; each check has ``name``, ``passed``,
``max_diff`` and ``detail``.
"""
import importlib
import json
import math
import os
import sys
import tempfile

from taps import load_predictions, load_taps  # verification/inenv/taps.py (this script's folder is on sys.path)

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


def compare_boxes(tokens, preds, reference, name):
    """The adapter's boxes vs a nuScenes submission's ``results`` (same samples): one check dict."""
    worst = {"center_m": 0.0, "size_m": 0.0, "yaw_rad": 0.0, "velocity_mps": 0.0}
    problems = []
    total = 0
    for token in tokens:
        ours = preds[token]["detections_3d"]
        ref = list(reference[token])
        if len(ours) != len(ref):
            problems.append("%s: %d boxes, the reference keeps %d" % (token, len(ours), len(ref)))
            continue
        # match each box to the reference box of the same label and score nearest to it (scores can tie)
        unused = list(range(len(ref)))
        for a in ours:
            cands = [j for j in unused if ref[j]["detection_name"] == a["label"]
                     and abs(ref[j]["detection_score"] - a["score"]) <= 1e-6]
            if not cands:
                problems.append("%s: no reference box for (%s, %.6f)" % (token, a["label"], a["score"]))
                break
            j = min(cands, key=lambda k: sum((x - y) ** 2 for x, y in zip(a["center"], ref[k]["translation"])))
            unused.remove(j)
            b = ref[j]
            total += 1
            if (a.get("attribute") or "") != (b["attribute_name"] or ""):
                problems.append("%s: attribute %r vs %r" % (token, a.get("attribute"), b["attribute_name"]))
            worst["center_m"] = max(worst["center_m"], max(abs(x - y) for x, y in zip(a["center"], b["translation"])))
            worst["size_m"] = max(worst["size_m"], max(abs(x - y) for x, y in zip(a["size"], b["size"])))
            worst["yaw_rad"] = max(worst["yaw_rad"], abs(_wrap(a["yaw"] - _yaw(b["rotation"]))))
            worst["velocity_mps"] = max(worst["velocity_mps"], max(abs(x - y) for x, y in zip(a["velocity"], b["velocity"])))
    ok = not problems and total > 0 and worst["center_m"] <= TOL_M and worst["size_m"] <= TOL_M \
        and worst["yaw_rad"] <= TOL_RAD and worst["velocity_mps"] <= TOL_M
    return {"name": name, "passed": ok, "max_diff": worst,
             "detail": "%d boxes over %d samples compared%s" % (total, len(tokens),
                                                                  ("; " + "; ".join(problems[:5])) if problems else "")}


def main(repo, config, dataroot, info_file, tap_dir, predictions, out):
    import torch

    dataset = _dataset(repo, config, dataroot, info_file)
    by_token = {info["token"]: info for info in dataset.data_infos}
    taps = load_taps(tap_dir)
    preds = load_predictions(predictions)
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

    checks = [compare_boxes(tokens, preds, reference, "boxes vs mmdet3d NuScenesDataset._format_bbox")]
    if any((t.get("state_after") or {}).get("memory_embedding") is not None for t in taps):
        checks.append(memory_check(taps))
    with open(out, "w") as fh:
        json.dump({"checks": checks}, fh, indent=1)


def expected_resets(samples):
    """Independent of the adapter: a stream restarts at the first sample, a new scene or a skipped frame."""
    out = []
    prev = None
    for s in samples:
        out.append(prev is None or prev["scene_token"] != s["scene_token"]
                   or prev["index_in_scene"] + 1 != s["index_in_scene"])
        prev = s
    return out


def memory_check(taps):
    """StreamPETR's streaming memory after each forward is ``cat(top-k of this frame, previous memory)``
    (streampetr_head.py post_update_memory), the previous part zeroed on a reset (pre_update_memory,
    prev_exists = 0). So: propagated frames carry the previous memory bit for bit, reset frames zeros."""
    resets = expected_resets([t["sample"] for t in taps])
    worst_prop = worst_reset = 0.0
    problems = []
    prev = None
    for t, reset in zip(taps, resets):
        state = t["state_after"]
        mem = state["memory_embedding"]
        k, length = state["topk_proposals"], state["memory_len"]
        carried = mem[:, k:k + length] if prev is not None else None
        if reset:
            if carried is not None:
                worst_reset = max(worst_reset, float(carried.abs().max()))
        else:
            if carried is None:
                problems.append("%s: no carried memory to compare" % t["sample"]["token"])
            else:
                worst_prop = max(worst_prop, float((carried - prev[:, :length]).abs().max()))
                if float(carried.abs().max()) == 0.0:
                    problems.append("%s: the carried memory is all zeros" % t["sample"]["token"])
        prev = mem
    ok = not problems and worst_prop == 0.0 and worst_reset == 0.0 and any(resets) and not all(resets)
    return {"name": "streaming memory propagated within a scene, reset on a gap and a new scene",
            "passed": ok, "max_diff": {"propagated_vs_previous": worst_prop, "reset_carried_abs": worst_reset},
            "detail": "expected resets %s%s" % (resets, ("; " + "; ".join(problems)) if problems else "")}


if __name__ == "__main__":
    main(*sys.argv[1:])
