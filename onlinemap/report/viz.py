"""Bird's-eye view of one sample: each run's predictions over the ground truth, one panel per run.

Frames (docs/evaluation.md): everything is drawn in the **ego frame of the sample's LIDAR_TOP
key frame**, x forward (to the right on the figure), y left (up), metres.

- Predicted ``detections_3d`` in the ``global`` frame are moved into that ego frame with the
  sample's LIDAR_TOP ego pose (translation, then the inverse rotation; yaw minus the ego yaw);
  ``ego`` boxes are drawn as they are.
- GT boxes: the sample's annotations from the devkit (``nusc.get_box``, global), moved the same way.
- ``map_elements`` and ``plan.waypoints`` are already ego. Map GT comes from
  ``onlinemap.evaluation.mapping.MapGroundTruth`` (the map-eval GT, so what is drawn is what is
  scored); the GT trajectory from ``onlinemap.evaluation.planning.future_trajectory``.

nuScenes, shapely and matplotlib are imported inside the functions.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

from onlinemap.errors import DatasetError, ResultsError

__all__ = ["render_bev", "sample_ground_truth", "prediction_in_ego", "box_corners", "DEFAULT_EXTENT"]

log = logging.getLogger(__name__)

DEFAULT_EXTENT = (-40.0, 40.0, -30.0, 30.0)   # x min/max (forward), y min/max (left), metres
MAP_COLORS = {"divider": "#E69F00", "ped_crossing": "#0072B2", "boundary": "#D55E00", "centerline": "#009E73"}
GT_COLOR, PRED_COLOR, PLAN_COLOR, EGO_COLOR = "#333333", "#C0392B", "#8E44AD", "#27AE60"
DPI = 100


def box_corners(center_xy, size_wl, yaw: float) -> list[tuple[float, float]]:
    """The 4 BEV corners of a box (centre x/y, width, length, yaw about +z; length along the heading)."""
    cx, cy = center_xy
    w, l = size_wl
    c, s = math.cos(yaw), math.sin(yaw)
    out = []
    for dx, dy in ((l / 2, w / 2), (l / 2, -w / 2), (-l / 2, -w / 2), (-l / 2, w / 2)):
        out.append((cx + c * dx - s * dy, cy + s * dx + c * dy))
    return out


def _ego_pose(nusc, sample_token: str):
    from pyquaternion import Quaternion

    sample = nusc.get("sample", sample_token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    return Quaternion(pose["rotation"]), pose["translation"]


def _to_ego(q, t, center, yaw: float):
    """(x, y, yaw) in the ego frame of a global centre and yaw."""
    import numpy as np

    local = q.inverse.rotation_matrix @ (np.asarray(center[:3], dtype=float) - np.asarray(t, dtype=float))
    return float(local[0]), float(local[1]), yaw - q.yaw_pitch_roll[0]


def prediction_in_ego(pred: dict, q, t) -> dict:
    """The parts of a standard prediction to draw, all in the ego frame: boxes, polylines, plan."""
    boxes = []
    for det in pred.get("detections_3d") or []:
        if det.get("frame", "global") == "global":
            x, y, yaw = _to_ego(q, t, det["center"], float(det.get("yaw", 0.0)))
        else:
            x, y, yaw = float(det["center"][0]), float(det["center"][1]), float(det.get("yaw", 0.0))
        boxes.append({"label": det.get("label"), "score": det.get("score"), "xy": (x, y),
                      "wl": (float(det["size"][0]), float(det["size"][1])), "yaw": yaw})
    polylines = [(el.get("label"), [(float(p[0]), float(p[1])) for p in el.get("points") or []])
                 for el in pred.get("map_elements") or []]
    plan = pred.get("plan") or {}
    waypoints = [(float(p[0]), float(p[1])) for p in plan.get("waypoints") or []]
    return {"boxes": boxes, "polylines": polylines, "plan": waypoints}


def sample_ground_truth(nusc, dataroot: Path, sample_token: str) -> dict:
    """GT of one sample in its ego frame: ``boxes``, ``polylines`` (class, points), ``plan`` and ``notes``
    (what could not be built and why)."""
    q, t = _ego_pose(nusc, sample_token)
    boxes = []
    for ann in nusc.get("sample", sample_token)["anns"]:
        box = nusc.get_box(ann)
        x, y, yaw = _to_ego(q, t, box.center, box.orientation.yaw_pitch_roll[0])
        boxes.append({"label": box.name, "xy": (x, y), "wl": (float(box.wlh[0]), float(box.wlh[1])), "yaw": yaw})
    notes, polylines, plan = [], [], []
    try:
        from onlinemap.evaluation.mapping import MapGroundTruth

        for cls, lines in MapGroundTruth(nusc, dataroot).polylines(sample_token).items():
            polylines += [(cls, [(float(p[0]), float(p[1])) for p in line]) for line in lines]
    except DatasetError as exc:
        notes.append(f"no map GT: {exc.message}")
    from onlinemap.evaluation.planning import future_trajectory

    traj = future_trajectory(nusc, sample_token)
    if traj is not None:
        plan = [(float(p[0]), float(p[1])) for p in traj]
    return {"boxes": boxes, "polylines": polylines, "plan": plan, "notes": notes, "q": q, "t": t}


def _find_prediction(run_dir: Path, sample_token: str) -> dict | None:
    from onlinemap.evaluation.predictions import iter_predictions

    found = None
    for pred in iter_predictions(run_dir):
        if pred.get("sample_token") == sample_token:
            found = pred   # the last one wins, as in evaluation
    return found


def _draw_boxes(ax, boxes, color, lw, ls, alpha=1.0):
    from matplotlib.patches import Polygon

    for b in boxes:
        corners = box_corners(b["xy"], b["wl"], b["yaw"])
        ax.add_patch(Polygon(corners, closed=True, fill=False, edgecolor=color, linewidth=lw, linestyle=ls,
                             alpha=alpha))
        front = [(corners[0][0] + corners[1][0]) / 2, (corners[0][1] + corners[1][1]) / 2]   # heading tick
        ax.plot([b["xy"][0], front[0]], [b["xy"][1], front[1]], color=color, linewidth=lw * 0.8, alpha=alpha)


def render_bev(run_dirs: Sequence[Path], sample_token: str, out: Path, *, dataroot: Path | None = None,
               version: str | None = None, extent: tuple = DEFAULT_EXTENT, max_boxes: int = 300) -> dict:
    """Draw ``sample_token`` of each run (one panel per run, side by side) over its GT; write ``out`` (PNG).

    ``dataroot``/``version`` default to what the first run recorded. Predicted boxes are capped at
    ``max_boxes`` best-scoring ones. Returns ``{"path", "size_px", "axes", "labels", "counts"}``
    (``counts``: per panel, how many predicted boxes / polylines / waypoints were drawn).
    """
    from onlinemap.evaluation.detection import load_nuscenes
    from onlinemap.fileio import read_json

    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ResultsError("no runs to draw")
    first = read_json(run_dirs[0] / "run.json")
    settings = first.get("settings") or {}
    dataroot = Path(dataroot or settings.get("dataroot") or "")
    version = version or settings.get("version") or "v1.0-trainval"
    if not str(dataroot) or str(dataroot) == ".":
        raise DatasetError("the run records no dataroot", "pass --dataroot")
    nusc = load_nuscenes(dataroot, version)
    if sample_token not in nusc._token2ind["sample"]:
        raise DatasetError(f"sample {sample_token} is not in {version} at {dataroot}",
                           "pick a token from the run's samples.jsonl")   # exit 3, as `test --sample-token`
    gt = sample_ground_truth(nusc, dataroot, sample_token)

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = len(run_dirs)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 6.0) if n > 1 else (7.0, 6.5), squeeze=False,
                             layout="constrained")
    labels, counts = [], []
    for ax, run_dir in zip(axes[0], run_dirs):
        run = read_json(run_dir / "run.json")
        label = f"{run.get('model')} ({run.get('run_id', run_dir.name)[-6:]})"
        labels.append(label)
        for cls, pts in gt["polylines"]:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=MAP_COLORS.get(cls, "grey"), linewidth=1.2,
                    linestyle="--", alpha=0.7)
        _draw_boxes(ax, gt["boxes"], GT_COLOR, 1.2, "-")
        if gt["plan"]:
            ax.plot([0] + [p[0] for p in gt["plan"]], [0] + [p[1] for p in gt["plan"]], color=PLAN_COLOR,
                    linestyle="--", marker="x", linewidth=1.2)
        pred = _find_prediction(run_dir, sample_token)
        if pred is None:
            ax.text(0.5, 0.95, "no prediction for this sample", transform=ax.transAxes, ha="center", va="top",
                    color=PRED_COLOR, fontsize=10, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
            counts.append({"boxes": 0, "polylines": 0, "waypoints": 0})
        else:
            drawn = prediction_in_ego(pred, gt["q"], gt["t"])
            boxes = sorted(drawn["boxes"], key=lambda b: -(b["score"] or 0))[:max_boxes]
            for cls, pts in drawn["polylines"]:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=MAP_COLORS.get(cls, "grey"), linewidth=2.0)
            _draw_boxes(ax, boxes, PRED_COLOR, 1.4, "-", alpha=0.85)
            if drawn["plan"]:
                ax.plot([0] + [p[0] for p in drawn["plan"]], [0] + [p[1] for p in drawn["plan"]], color=PLAN_COLOR,
                        marker="o", linewidth=2.0)
            counts.append({"boxes": len(boxes), "polylines": len(drawn["polylines"]), "waypoints": len(drawn["plan"])})
        _draw_boxes(ax, [{"xy": (0.0, 0.0), "wl": (1.85, 4.084), "yaw": 0.0}], EGO_COLOR, 2.0, "-")   # ego
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal")
        ax.grid(alpha=0.25)
        ax.set_xlabel("x forward [m] (ego frame)")
        ax.set_ylabel("y left [m]")
        c = counts[-1]
        ax.set_title(f"{label}\n{c['boxes']} boxes, {c['polylines']} map elements, {c['waypoints']} waypoints",
                     fontsize=10)
    handles = [Line2D([], [], color=GT_COLOR, label=f"GT boxes ({len(gt['boxes'])})"),
               Line2D([], [], color=PRED_COLOR, linewidth=1.4, label="predicted boxes"),
               Line2D([], [], color=EGO_COLOR, linewidth=2, label="ego")]
    handles += [Line2D([], [], color=col, linewidth=2, label=f"{cls} (pred solid, GT dashed)")
                for cls, col in MAP_COLORS.items() if cls != "centerline"]
    handles += [Line2D([], [], color=PLAN_COLOR, marker="o", linewidth=2, label="plan (GT: dashed, x)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4 if n > 1 else 2, fontsize=8)
    title = f"sample {sample_token}"
    if gt["notes"]:
        title += "  (" + "; ".join(gt["notes"]) + ")"
    fig.suptitle(title, fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    w, h = fig.get_size_inches()
    plt.close(fig)
    return {"path": out, "size_px": (int(round(w * DPI)), int(round(h * DPI))), "axes": n, "labels": labels,
            "counts": counts}
