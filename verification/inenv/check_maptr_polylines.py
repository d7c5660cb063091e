"""Reference check of a map adapter's polyline frame against the synthetic map's own geometry.

Usage: check_maptr_polylines.py REPO CONFIG DATAROOT INFO_FILE TAP_DIR PREDICTIONS OUT.json
(run in the verification venv). Random weights give random polylines, so the frame is checked
with the repo's own ground truth instead: for each tapped sample the dataset's
``vectormap_pipeline`` (MapTR's VectorizedLocalMap, in the LiDAR BEV patch the head decodes into)
yields the GT vectors; they go through the adapter's own ``convert_maptr_outputs`` as if the head
had predicted them, are moved from the ego frame to global with the sample's ego pose and compared
with the divider lines of the synthetic map (nuscenes-devkit's NuScenesMap): every divider point
must lie on a divider. The same points taken as if already in the ego frame (no conversion) are
reported too, to show what a frame bug would cost. Also checks that every predicted polyline
lies inside the BEV range around the ego.
"""
import importlib
import importlib.util
import json
import math
import os
import sys

from taps import load_predictions, load_taps  # verification/inenv/taps.py (this script's folder is on sys.path)

TOL_M = 1e-3


def divider_check(dataset, index, taps, convert, dataroot):
    """GT vectors of the repo's own vectormap_pipeline, through ``convert(fake_result, token, info)``,
    moved to global with the ego pose, vs the synthetic map's dividers (one check dict)."""
    import numpy as np
    import torch
    from nuscenes.map_expansion.map_api import NuScenesMap
    from pyquaternion import Quaternion
    from shapely.geometry import Point
    from shapely.ops import unary_union

    maps = {}
    worst_conv = worst_raw = 0.0
    divider_points = 0
    for t in taps:
        token = t["sample"]["token"]
        idx = index[token]
        info = dataset.data_infos[idx]
        input_dict = dataset.get_data_info(idx)
        example = {}
        example = dataset.vectormap_pipeline(example, input_dict) or example
        prefix = "map_" if "map_gt_bboxes_3d" in example else ""   # VAD keeps the map GT beside its boxes
        lines = example[prefix + "gt_bboxes_3d"].data
        labels = example[prefix + "gt_labels_3d"].data
        pts = lines.fixed_num_sampled_points
        fake = {"scores_3d": torch.ones(len(labels)), "labels_3d": labels, "pts_3d": pts}
        conv = convert(fake, token, info)
        location = input_dict["map_location"]
        if location not in maps:
            nmap = NuScenesMap(dataroot=dataroot, map_name=location)
            maps[location] = unary_union([nmap.extract_line(r["line_token"]) for layer in ("road_divider", "lane_divider")
                                          for r in getattr(nmap, layer)])
        dividers = maps[location]
        e2g_r = Quaternion(info["ego2global_rotation"]).rotation_matrix
        e2g_t = np.array(info["ego2global_translation"])
        for element, raw in zip(conv["map_elements"], pts.tolist()):
            if element["label"] != "divider":
                continue
            for (x, y), (rx, ry) in zip(element["points"], raw):
                g = e2g_r @ np.array([x, y, 0.0]) + e2g_t
                worst_conv = max(worst_conv, dividers.distance(Point(g[0], g[1])))
                gr = e2g_r @ np.array([rx, ry, 0.0]) + e2g_t
                worst_raw = max(worst_raw, dividers.distance(Point(gr[0], gr[1])))
                divider_points += 1
    return {"name": "GT dividers through the adapter's conversion lie on the synthetic map's dividers",
            "passed": divider_points > 0 and worst_conv <= TOL_M,
            "max_diff": {"converted_m": worst_conv, "unconverted_m": worst_raw},
            "detail": "%d divider points over %d samples; taken as ego-frame without conversion they miss by up to %.2f m"
                      % (divider_points, len(taps), worst_raw)}


def main(repo, config, dataroot, info_file, tap_dir, predictions, out):
    import torch
    from mmcv import Config

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    spec = importlib.util.spec_from_file_location("_onlinemap_adapter_MapTR", os.path.join(root, "envs", "MapTR", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    cfg = Config.fromfile(config)
    demo.import_plugin(cfg, repo)
    dataset = demo.build_test_dataset(cfg, os.path.abspath(dataroot), os.path.join(dataroot, info_file),
                                      os.path.join(dataroot, "nuscenes_map_anns_val.json"))
    index = {info["token"]: i for i, info in enumerate(dataset.data_infos)}
    taps = load_taps(tap_dir)
    preds = load_predictions(predictions)
    pc = cfg.point_cloud_range
    half_x, half_y = (pc[3] - pc[0]) / 2.0, (pc[4] - pc[1]) / 2.0
    reach = math.hypot(half_x, half_y) + 2.0   # the patch's corner distance from the LiDAR, plus lidar2ego

    dividers = divider_check(dataset, index, taps, lambda fake, token, info: demo.convert_maptr_outputs(
        fake, token, info["lidar2ego_rotation"], info["lidar2ego_translation"], map_classes=tuple(cfg.map_classes)),
        dataroot)
    worst_range = max((math.hypot(x, y) for p in preds.values() for e in p["map_elements"] for x, y in e["points"]),
                      default=0.0)
    checks = [
        dividers,
        {"name": "predicted polylines inside the BEV range around the ego (metres, ego frame)",
         "passed": 0 < worst_range <= reach, "max_diff": {"farthest_point_m": worst_range},
         "detail": "farthest predicted point %.2f m from the ego (patch reach %.1f m)" % (worst_range, reach)},
    ]
    with open(out, "w") as fh:
        json.dump({"checks": checks}, fh, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
