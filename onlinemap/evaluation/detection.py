"""nuScenes detection metrics (mAP, TP errors, NDS) on the samples a run covered.

Design note: the metric is the devkit's, not ours. ``DetectionEval.__init__`` only accepts a
whole predefined or custom split (custom splits are lists of *scene names*) and asserts that the
predictions cover it exactly, while a run may cover any subset of samples. So this module builds
the two inputs itself with the devkit's own loaders (``load_gt_of_sample_tokens``,
``add_center_dist``, ``filter_eval_boxes``, devkit >= 1.2.0), then hands them to an unconstructed
``DetectionEval`` and calls its ``evaluate()``: the accumulate / calc_ap / calc_tp loop, the
traffic-cone and barrier exceptions and ``DetectionMetrics`` (NDS) are the devkit's code, run with
the standard ``detection_cvpr_2019`` config. See docs/evaluation.md.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from onlinemap.errors import DatasetError, MissingPrerequisiteError, ResultsError

if TYPE_CHECKING:  # pragma: no cover
    from nuscenes import NuScenes

__all__ = ["evaluate_detection", "DEFAULT_ATTRIBUTE", "CONFIG_NAME", "to_submission_boxes"]

log = logging.getLogger(__name__)

CONFIG_NAME = "detection_cvpr_2019"
# Attribute given to a box whose prediction has none: the class's most common attribute, the same
# defaults mmdet3d's NuScenesDataset.DefaultAttribute uses (traffic_cone / barrier have none).
DEFAULT_ATTRIBUTE = {
    "car": "vehicle.parked", "truck": "vehicle.parked", "bus": "vehicle.moving", "trailer": "vehicle.parked",
    "construction_vehicle": "vehicle.parked", "pedestrian": "pedestrian.moving", "motorcycle": "cycle.without_rider",
    "bicycle": "cycle.without_rider", "traffic_cone": "", "barrier": "",
}


def _quat_from_yaw(yaw: float) -> list[float]:
    """Quaternion [w, x, y, z] of a rotation by ``yaw`` about +z."""
    return [math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)]


def _ego_to_global(nusc: "NuScenes", sample_token: str):
    """(rotation 3x3, translation 3, quaternion) of the sample's LIDAR_TOP ego pose, used for boxes
    given in the ego frame."""
    import numpy as np
    from pyquaternion import Quaternion

    sample = nusc.get("sample", sample_token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    q = Quaternion(pose["rotation"])
    return q.rotation_matrix, np.asarray(pose["translation"], dtype=float), q


def to_submission_boxes(nusc: "NuScenes", pred: dict) -> list[dict]:
    """Convert one standard prediction's ``detections_3d`` to devkit submission boxes (global frame).

    Boxes in the ``ego`` frame are moved to the global frame with the sample's LIDAR_TOP ego pose,
    with its full rotation (the box's orientation becomes pose * yaw, as mmdet3d's
    ``lidar_nusc_box_to_global`` rotates a Box), so tilted poses keep their exact global yaw.
    A null velocity component becomes NaN, as the devkit's own GT does for unknown velocities:
    ``EvalBox`` accepts NaN velocity and ``cummean`` leaves NaN errors out of mAVE.
    """
    import numpy as np
    from pyquaternion import Quaternion

    token = pred["sample_token"]
    out = []
    pose = None
    for det in pred.get("detections_3d") or ():
        center = np.asarray(det["center"], dtype=float)
        rotation = Quaternion(_quat_from_yaw(float(det["yaw"])))
        vel = np.array([math.nan if v is None else float(v) for v in det["velocity"]] + [0.0])
        if det["frame"] == "ego":
            if pose is None:
                pose = _ego_to_global(nusc, token)
            rot, trans, q = pose
            center = rot @ center + trans
            vel = rot @ vel
            rotation = q * rotation
        attr = det.get("attribute") or DEFAULT_ATTRIBUTE[det["label"]]
        if det["label"] in ("traffic_cone", "barrier"):
            attr = ""
        out.append({
            "sample_token": token, "translation": [float(c) for c in center],
            "size": [float(s) for s in det["size"]], "rotation": [float(v) for v in rotation.elements],
            "velocity": [float(vel[0]), float(vel[1])], "detection_name": det["label"],
            "detection_score": float(det["score"]), "attribute_name": attr,
        })
    return out


def _load_gt_of_tokens(nusc: "NuScenes", tokens: list[str]):
    try:
        from nuscenes.eval.common.loaders import load_gt_of_sample_tokens
    except ImportError as exc:  # nuscenes-devkit < 1.2.0
        raise MissingPrerequisiteError(
            "this nuscenes-devkit has no load_gt_of_sample_tokens", hint="pip install 'nuscenes-devkit>=1.2.0'") from exc
    from nuscenes.eval.detection.data_classes import DetectionBox

    return load_gt_of_sample_tokens(nusc, tokens, DetectionBox, verbose=False)


def evaluate_detection(predictions: Iterable[dict], dataroot: Path, version: str, out_dir: Path | None = None, *,
                       nusc: "NuScenes | None" = None) -> dict:
    """nuScenes detection metrics of ``predictions`` against the GT of exactly their sample tokens.

    Returns ``{"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "per_class": {name: {"AP",
    "AP_dist": {"0.5": …}, "ATE", …}}, "samples", "gt_boxes", "pred_boxes", "config"}``; TP errors
    that the devkit leaves undefined (NaN) come back as ``None``. With ``out_dir`` the devkit's
    ``metrics_summary.json`` / ``metrics_details.json`` are written there too.
    """
    import json

    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes
    from nuscenes.eval.detection.data_classes import DetectionBox
    from nuscenes.eval.detection.evaluate import DetectionEval

    preds = list(predictions)
    if not preds:
        raise ResultsError("no predictions to evaluate", hint="check that the run wrote predictions.jsonl")
    if nusc is None:
        nusc = load_nuscenes(dataroot, version)
    tokens = list(dict.fromkeys(p["sample_token"] for p in preds))
    missing = [t for t in tokens if t not in nusc._token2ind["sample"]]
    if missing:
        raise DatasetError(f"{len(missing)} predicted sample token(s) are not in {version} at {dataroot}, "
                           f"e.g. {missing[0]}", hint="evaluate against the dataroot/version the run used")
    cfg = config_factory(CONFIG_NAME)

    results: dict[str, list] = {t: [] for t in tokens}
    for p in preds:
        results[p["sample_token"]].extend(to_submission_boxes(nusc, p))
    for t, boxes in results.items():
        if len(boxes) > cfg.max_boxes_per_sample:  # the devkit's limit: keep the best-scoring ones
            log.warning("sample %s has %d boxes; keeping the %d best-scoring (devkit limit)", t, len(boxes),
                        cfg.max_boxes_per_sample)
            results[t] = sorted(boxes, key=lambda b: -b["detection_score"])[:cfg.max_boxes_per_sample]
    pred_boxes = EvalBoxes.deserialize(results, DetectionBox)
    gt_boxes = _load_gt_of_tokens(nusc, tokens)

    # filter_eval_boxes cannot tell the box type of an EvalBoxes without any box: skip it then
    if pred_boxes.all:
        pred_boxes = filter_eval_boxes(nusc, add_center_dist(nusc, pred_boxes), cfg.class_range, verbose=False)
    if gt_boxes.all:
        gt_boxes = filter_eval_boxes(nusc, add_center_dist(nusc, gt_boxes), cfg.class_range, verbose=False)

    # DetectionEval.evaluate() reads only these attributes; its __init__ would insist on a whole split.
    evaluator = DetectionEval.__new__(DetectionEval)
    evaluator.nusc, evaluator.cfg, evaluator.verbose = nusc, cfg, False
    evaluator.gt_boxes, evaluator.pred_boxes, evaluator.sample_tokens = gt_boxes, pred_boxes, gt_boxes.sample_tokens
    metrics, metric_data = evaluator.evaluate()
    summary = metrics.serialize()

    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics_summary.json").write_text(json.dumps(_nan_to_none(summary), indent=2), encoding="utf-8")
        (out_dir / "metrics_details.json").write_text(json.dumps(_nan_to_none(metric_data.serialize()), indent=2),
                                                      encoding="utf-8")
    return _summarise(summary, len(tokens), len(gt_boxes.all), len(pred_boxes.all))


def load_nuscenes(dataroot: Path | None, version: str) -> "NuScenes":
    """Open the nuScenes tables quietly, turning a missing or broken dataroot into a DatasetError."""
    if dataroot is None:
        raise DatasetError("no dataroot to evaluate against",
                           hint="pass --dataroot, or run with settings.dataroot recorded in run.json")
    root = Path(dataroot)
    if not (root / version).is_dir():
        raise DatasetError(f"no nuScenes tables at {root / version}",
                           hint="point --dataroot at the folder holding v1.0-*/ and maps/")
    from nuscenes import NuScenes

    try:
        return NuScenes(version=version, dataroot=str(root), verbose=False)
    except (AssertionError, FileNotFoundError, KeyError, ValueError) as exc:
        raise DatasetError(f"nuScenes {version} at {root} cannot be loaded: {exc}",
                           hint="check that all 13 tables and maps/*.png are present") from exc


def _nan_to_none(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


_TP_KEYS = {"trans_err": "ATE", "scale_err": "ASE", "orient_err": "AOE", "vel_err": "AVE", "attr_err": "AAE"}


def _summarise(summary: dict, n_samples: int, n_gt: int, n_pred: int) -> dict:
    s = _nan_to_none(summary)
    per_class = {}
    for name, ap in s["mean_dist_aps"].items():
        entry = {"AP": ap, "AP_dist": {str(k): v for k, v in s["label_aps"][name].items()}}
        for key, short in _TP_KEYS.items():
            entry[short] = s["label_tp_errors"][name][key]
        per_class[name] = entry
    tp = s["tp_errors"]
    return {
        "mAP": s["mean_ap"], "NDS": s["nd_score"],
        "mATE": tp["trans_err"], "mASE": tp["scale_err"], "mAOE": tp["orient_err"], "mAVE": tp["vel_err"],
        "mAAE": tp["attr_err"], "per_class": per_class,
        "samples": n_samples, "gt_boxes": n_gt, "pred_boxes": n_pred, "config": CONFIG_NAME,
        "eval_time_s": s.get("eval_time"),
    }
