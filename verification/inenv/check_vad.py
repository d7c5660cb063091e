"""Reference checks of VAD's adapter against VAD's own formatting code (run in the verification venv).

Usage: check_vad.py REPO CONFIG DATAROOT INFO_FILE TAP_DIR PREDICTIONS OUT.json. The dataset is the
one the real adapter builds (its ``load()``, same settings as the worker's job). Boxes: VAD's
``VADCustomNuScenesDataset._format_bbox`` (``output_to_nusc_box`` + ``lidar_nusc_box_to_global`` and
its 0.2 score threshold) on the tapped raw outputs vs the adapter's boxes. Map: the dataset's own
GT vectors through the adapter's ``convert_map_vectors`` vs the synthetic map's dividers (as for
MapTR). Plan: finite waypoints within a plausible 3 s reach, in the ego frame.
"""
import glob
import importlib.util
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_maptr_polylines import divider_check  # noqa: E402
from check_mmdet3d_detections import compare_boxes  # noqa: E402

MAX_PLAN_REACH_M = 60.0   # 3 s at 20 m/s


def main(repo, config, dataroot, info_file, tap_dir, predictions, out):
    import torch

    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    spec = importlib.util.spec_from_file_location("_onlinemap_adapter_VAD", os.path.join(root, "envs", "VAD", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    taps = [torch.load(p, weights_only=False) for p in sorted(glob.glob(os.path.join(tap_dir, "*.pt")))]
    with open(os.path.join(os.path.dirname(tap_dir), "job.json")) as fh:
        settings = json.load(fh)["settings"]
    adapter = demo.Adapter(settings)
    adapter.load()
    dataset = adapter.dataset
    preds = {}
    with open(predictions) as fh:
        for line in fh:
            if line.strip():
                p = json.loads(line)
                preds[p["sample_token"]] = p
    tokens = [t["sample"]["token"] for t in taps]
    index = {info["token"]: i for i, info in enumerate(dataset.data_infos)}
    infos = list(dataset.data_infos)
    dataset.data_infos = [infos[index[t]] for t in tokens]
    with tempfile.TemporaryDirectory() as tmp:
        with open(dataset._format_bbox([t["raw"]["result"] for t in taps], tmp)) as fh:
            reference = json.load(fh)["results"]
    dataset.data_infos = infos
    checks = [compare_boxes(tokens, preds, reference, "boxes vs VAD's _format_bbox (output_to_nusc_box + "
                                                      "lidar_nusc_box_to_global)")]
    checks.append(divider_check(dataset, index, taps, lambda fake, token, info: {"map_elements": demo.convert_map_vectors(
        fake["scores_3d"], fake["labels_3d"], fake["pts_3d"], info["lidar2ego_rotation"], info["lidar2ego_translation"],
        map_classes=adapter.map_classes)}, dataroot))
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
