"""Reference checks of VAD's adapter against VAD's own formatting code (run in the verification venv).

Usage: check_vad.py REPO CONFIG DATAROOT INFO_FILE TAP_DIR PREDICTIONS OUT.json. The dataset is the
one the real adapter builds (its ``load()``, same settings as the worker's job). Boxes: VAD's
``VADCustomNuScenesDataset._format_bbox`` (``output_to_nusc_box`` + ``lidar_nusc_box_to_global`` and
its 0.2 score threshold) on the tapped raw outputs vs the adapter's boxes. Map: the dataset's own
GT vectors through the adapter's ``convert_map_vectors`` vs the synthetic map's dividers (as for
MapTR). Plan: finite waypoints within a plausible 3 s reach, in the ego frame.
"""
import importlib.util
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_maptr_polylines import divider_check  # noqa: E402
from check_mmdet3d_detections import compare_boxes  # noqa: E402

from taps import load_predictions, load_taps  # verification/inenv/taps.py (this script's folder is on sys.path)

MAX_PLAN_REACH_M = 60.0   # 3 s at 20 m/s


def prev_bev_check(taps):
    """Each forward is fed the previous frame's BEV (bit for bit) within a scene, and None at the first
    sample, on a gap and on a new scene (the reset pattern derived from the samples alone)."""
    from check_mmdet3d_detections import expected_resets

    resets = expected_resets([t["sample"] for t in taps])
    problems = []
    worst = 0.0
    prev_after = None
    for t, reset in zip(taps, resets):
        after = t.get("state_after") or {}
        if not after.get("fed_seen"):
            problems.append("%s: simple_test was not observed" % t["sample"]["token"])
            break
        fed = after.get("fed_prev_bev")
        if reset:
            if fed is not None:
                problems.append("%s: fed a prev_bev where the stream restarts" % t["sample"]["token"])
        elif fed is None or prev_after is None:
            problems.append("%s: fed no prev_bev within a scene" % t["sample"]["token"])
        else:
            worst = max(worst, float((fed - prev_after).abs().max()))
        prev_after = after.get("prev_bev")
    return {"name": "prev_bev propagated within a scene, reset on a gap and a new scene",
            "passed": not problems and worst == 0.0 and any(resets) and not all(resets),
            "max_diff": {"fed_vs_previous_bev": worst},
            "detail": "expected resets %s%s" % (resets, ("; " + "; ".join(problems)) if problems else "")}


def main(repo, config, dataroot, info_file, tap_dir, predictions, out):
    import torch

    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    spec = importlib.util.spec_from_file_location("_onlinemap_adapter_VAD", os.path.join(root, "envs", "VAD", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    taps = load_taps(tap_dir)
    with open(os.path.join(os.path.dirname(tap_dir), "job.json")) as fh:
        settings = json.load(fh)["settings"]
    adapter = demo.Adapter(settings)
    adapter.load()
    dataset = adapter.dataset
    preds = load_predictions(predictions)
    tokens = [t["sample"]["token"] for t in taps]
    index = {info["token"]: i for i, info in enumerate(dataset.data_infos)}
    infos = list(dataset.data_infos)
    dataset.data_infos = [infos[index[t]] for t in tokens]
    with tempfile.TemporaryDirectory() as tmp:
        import mmcv

        # VAD writes results_nusc.pkl when the plan results hold tensors, else .json: mmcv.load reads either
        threshold = float((settings.get("options") or {}).get("det_score_threshold", demo.DET_SCORE_THRESHOLD))
        reference = mmcv.load(dataset._format_bbox([t["raw"]["result"] for t in taps], tmp,
                                                   score_thresh=threshold))["results"]
    dataset.data_infos = infos
    checks = [compare_boxes(tokens, preds, reference, "boxes vs VAD's _format_bbox (output_to_nusc_box + "
                                                      "lidar_nusc_box_to_global)")]
    checks.append(divider_check(dataset, index, taps, lambda fake, token, info: {"map_elements": demo.convert_map_vectors(
        fake["scores_3d"], fake["labels_3d"], fake["pts_3d"], info["lidar2ego_rotation"], info["lidar2ego_translation"],
        map_classes=adapter.map_classes)}, dataroot))
    checks.append(prev_bev_check(taps))
    reach = 0.0
    finite = True
    for p in preds.values():
        for x, y in p["plan"]["waypoints"]:
            finite = finite and math.isfinite(x) and math.isfinite(y)
            reach = max(reach, math.hypot(x, y))
    checks.append({"name": "plan waypoints finite, in metres around the ego", "passed": finite and reach <= MAX_PLAN_REACH_M,
                   "max_diff": {"farthest_waypoint_m": reach}, "detail": "farthest waypoint %.2f m" % reach})
    with open(out, "w") as fh:
        json.dump({"checks": checks}, fh, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
