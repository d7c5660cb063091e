"""Evaluation time for 1,000 samples with 300 boxes and 50 polylines each (plus a 6-step plan).

Builds a synthetic nuScenes (10 scenes x 100 samples) with its map expansion in a temp folder,
writes a run directory whose predictions are the ground truth jittered and padded with random
boxes/polylines up to the target counts, then times schema validation and each evaluation task
separately and ``evaluate_run`` end to end. Run: ``python benchmarks/bench_eval.py [--keep DIR]``.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from onlinemap.data.synth import write_synthetic_nuscenes
from onlinemap.evaluation.detection import evaluate_detection, load_nuscenes
from onlinemap.evaluation.mapping import MapGroundTruth, evaluate_mapping
from onlinemap.evaluation.planning import evaluate_planning, future_trajectory
from onlinemap.evaluation.predictions import validate_prediction
from onlinemap.evaluation.run import evaluate_run

VERSION = "v1.0-mini"
LABELS = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
          "traffic_cone", "barrier")


def make_predictions(nusc, map_gt, rng, boxes: int, polylines: int) -> list[dict]:
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    preds = []
    for s in nusc.sample:
        token = s["token"]
        pose = nusc.get("ego_pose", nusc.get("sample_data", s["data"]["LIDAR_TOP"])["ego_pose_token"])
        ego = np.asarray(pose["translation"])
        dets = []
        for a in s["anns"]:
            ann = nusc.get("sample_annotation", a)
            name = category_to_detection_name(ann["category_name"])
            if name:
                c = np.asarray(ann["translation"]) + rng.normal(0, 0.3, 3)
                dets.append({"label": name, "score": float(rng.uniform(0.3, 1)), "center": c.tolist(),
                             "size": list(ann["size"]), "yaw": Quaternion(ann["rotation"]).yaw_pitch_roll[0],
                             "velocity": [0.0, 0.0], "frame": "global"})
        while len(dets) < boxes:
            r, phi = rng.uniform(1, 55), rng.uniform(-math.pi, math.pi)
            c = ego + [r * math.cos(phi), r * math.sin(phi), 1.0]
            dets.append({"label": LABELS[int(rng.integers(10))], "score": float(rng.uniform(0, 0.5)),
                         "center": c.tolist(), "size": [1.0, 2.0, 1.5], "yaw": float(phi), "velocity": [0.0, 0.0],
                         "frame": "global"})
        elements = []
        for cls, lines in map_gt.polylines(token).items():
            for line in lines:
                res = line[np.linspace(0, len(line) - 1, 20).round().astype(int)] + rng.normal(0, 0.2, (20, 2))
                elements.append({"label": cls, "score": float(rng.uniform(0.3, 1)), "points": res.tolist(),
                                 "frame": "ego"})
        while len(elements) < polylines:
            start = rng.uniform([-30, -15], [30, 15])
            pts = start + np.cumsum(rng.normal(0, 1.5, (20, 2)), axis=0)
            elements.append({"label": ("divider", "ped_crossing", "boundary")[int(rng.integers(3))],
                             "score": float(rng.uniform(0, 0.5)), "points": pts.tolist(), "frame": "ego"})
        pred = {"sample_token": token, "model": "bench", "detections_3d": dets[:boxes], "map_elements": elements}
        fut = future_trajectory(nusc, token)
        wps = (fut if fut is not None else np.zeros((6, 2))) + rng.normal(0, 0.5, (6, 2))
        pred["plan"] = {"waypoints": wps.tolist(), "dt": 0.5}
        preds.append(pred)
    return preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--samples-per-scene", type=int, default=100)
    ap.add_argument("--boxes", type=int, default=300)
    ap.add_argument("--polylines", type=int, default=50)
    ap.add_argument("--keep", type=Path, help="build the dataset and run here and keep them")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-eval-"))
    root, run_dir = work / "nuscenes", work / "run"
    try:
        t = time.perf_counter()
        info = write_synthetic_nuscenes(root, scenes=args.scenes, samples_per_scene=args.samples_per_scene)
        print(f"dataset: {info['samples']} samples, {info['annotations']} annotations "
              f"({time.perf_counter() - t:.1f} s to write)")
        t = time.perf_counter()
        nusc = load_nuscenes(root, VERSION)
        print(f"load nuScenes tables:      {time.perf_counter() - t:7.2f} s")
        map_gt = MapGroundTruth(nusc, root)
        preds = make_predictions(nusc, map_gt, np.random.default_rng(0), args.boxes, args.polylines)
        n_boxes = sum(len(p["detections_3d"]) for p in preds)
        n_lines = sum(len(p["map_elements"]) for p in preds)
        print(f"predictions: {len(preds)} samples, {n_boxes} boxes, {n_lines} polylines")

        t = time.perf_counter()
        bad = sum(1 for p in preds if validate_prediction(p))
        print(f"schema validation:         {time.perf_counter() - t:7.2f} s  ({bad} invalid)")
        t = time.perf_counter()
        det = evaluate_detection(preds, root, VERSION, nusc=nusc)
        print(f"detection (devkit):        {time.perf_counter() - t:7.2f} s  mAP {det['mAP']:.3f} NDS {det['NDS']:.3f}")
        t = time.perf_counter()
        mp = evaluate_mapping(preds, root, VERSION, nusc=nusc, ground_truth=MapGroundTruth(nusc, root))
        print(f"mapping (Chamfer AP):      {time.perf_counter() - t:7.2f} s  mAP {mp['mAP']:.3f} (incl. GT build)")
        t = time.perf_counter()
        pl = evaluate_planning(preds, root, VERSION, nusc=nusc)
        print(f"planning (L2, collision):  {time.perf_counter() - t:7.2f} s  L2 avg {pl['L2_avg']:.3f} m")

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text(json.dumps({"model": "bench", "status": "ok",
                                                      "settings": {"dataroot": str(root), "version": VERSION}}))
        with open(run_dir / "predictions.jsonl", "w") as fh:
            for p in preds:
                fh.write(json.dumps(p) + "\n")
        t = time.perf_counter()
        m = evaluate_run(run_dir)
        print(f"evaluate_run end to end:   {time.perf_counter() - t:7.2f} s  (tasks: {m['timings_s']})")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
