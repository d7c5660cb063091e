"""VAD's open-loop planning metrics: L2 and collision rate at 1, 2 and 3 s.

Definitions (hustvl/VAD ``projects/mmdet3d_plugin/VAD/planner/metric_stp3.py`` ``PlanningMetric``
and ``projects/mmdet3d_plugin/VAD/VAD.py`` ``compute_planner_metric_stp3``), written from the
definitions, not copied:

- The GT trajectory is the ego position at the next 6 key frames (0.5 s apart) of the same scene,
  expressed in the current ego frame (x forward, y left), cumulative.
- **L2 at t s** is the Euclidean error *averaged over all waypoints up to t* (the first 2t
  waypoints at 0.5 s), per sample (``compute_L2`` on ``[:cur_time]``, ``cur_time = (i + 1) * 2``),
  then averaged over the evaluated samples.
- **Collision at t s** is, per sample, the fraction of the first 2t waypoints at which the ego box
  (4.084 m x 1.85 m, centred 0.5 m ahead of the waypoint, axis-aligned with the *current* ego
  frame, as VAD's rasterised footprint) overlaps a GT vehicle or pedestrian box of the future key
  frame at that time; then averaged over samples. A step where the GT trajectory itself collides is
  not counted (VAD masks those steps with ``gt_box_coll``). This is VAD's ``plan_obj_box_col``.
- Samples without a full 3 s future in their scene are skipped and counted (``fut_valid_flag``).

One deliberate difference: VAD tests overlap on a 0.5 m BEV raster (200 x 200 cells, +-50 m); here
the polygons are intersected exactly (shapely), so a graze smaller than a cell may count
differently. docs/evaluation.md lists this.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from onlinemap.errors import DatasetError, ResultsError

if TYPE_CHECKING:  # pragma: no cover
    from nuscenes import NuScenes

__all__ = ["HORIZONS_S", "STEP_S", "EGO_LENGTH", "EGO_WIDTH", "EGO_FORWARD_OFFSET", "future_trajectory",
           "future_obstacles", "evaluate_planning"]

HORIZONS_S = (1.0, 2.0, 3.0)
STEP_S = 0.5                 # nuScenes key frames, VAD's fut_ts = 6 at 2 Hz
N_STEPS = 6
EGO_LENGTH, EGO_WIDTH = 4.084, 1.85   # metric_stp3.py ego_width, ego_length
EGO_FORWARD_OFFSET = 0.5              # metric_stp3.py evaluate_single_coll: box from -H/2 + 0.5 to H/2 + 0.5
OBSTACLE_PREFIXES = ("vehicle.", "human.")  # metric_stp3.py category_index: 'vehicle' and 'human'


def _ego_pose(nusc: "NuScenes", sample: dict):
    from pyquaternion import Quaternion

    sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    return np.asarray(pose["translation"], dtype=float), Quaternion(pose["rotation"])


def _future_samples(nusc: "NuScenes", sample_token: str, steps: int = N_STEPS) -> list[dict] | None:
    sample = nusc.get("sample", sample_token)
    out = []
    for _ in range(steps):
        if not sample["next"]:
            return None
        sample = nusc.get("sample", sample["next"])
        out.append(sample)
    return out


def future_trajectory(nusc: "NuScenes", sample_token: str, steps: int = N_STEPS) -> np.ndarray | None:
    """GT ego positions of the next ``steps`` key frames in the current ego frame, (steps, 2); None
    when the scene ends earlier."""
    fut = _future_samples(nusc, sample_token, steps)
    if fut is None:
        return None
    t0, q0 = _ego_pose(nusc, nusc.get("sample", sample_token))
    inv = q0.inverse.rotation_matrix
    return np.array([(inv @ (_ego_pose(nusc, s)[0] - t0))[:2] for s in fut])


def future_obstacles(nusc: "NuScenes", sample_token: str, steps: int = N_STEPS) -> list[list[np.ndarray]] | None:
    """For each future key frame, the GT vehicle/pedestrian box footprints (4 x 2 corners) in the
    *current* ego frame."""
    from pyquaternion import Quaternion

    fut = _future_samples(nusc, sample_token, steps)
    if fut is None:
        return None
    t0, q0 = _ego_pose(nusc, nusc.get("sample", sample_token))
    inv = q0.inverse.rotation_matrix
    yaw0 = q0.yaw_pitch_roll[0]
    out = []
    for s in fut:
        boxes = []
        for ann_token in s["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            if not ann["category_name"].startswith(OBSTACLE_PREFIXES):
                continue
            centre = (inv @ (np.asarray(ann["translation"], dtype=float) - t0))[:2]
            yaw = Quaternion(ann["rotation"]).yaw_pitch_roll[0] - yaw0
            w, l = float(ann["size"][0]), float(ann["size"][1])
            boxes.append(_rect(centre, l, w, yaw))
        out.append(boxes)
    return out


def _rect(centre, length: float, width: float, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[length / 2, width / 2], [-length / 2, width / 2], [-length / 2, -width / 2],
                      [length / 2, -width / 2]])
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(centre, dtype=float)


def _ego_box(waypoint) -> np.ndarray:
    return _rect(np.asarray(waypoint, dtype=float) + [EGO_FORWARD_OFFSET, 0.0], EGO_LENGTH, EGO_WIDTH, 0.0)


def _collisions(traj: np.ndarray, obstacles: list[list[np.ndarray]]) -> np.ndarray:
    """Per step: does the ego box at ``traj[t]`` overlap any obstacle of step t?"""
    import shapely

    out = np.zeros(len(traj), dtype=bool)
    for t, (wp, boxes) in enumerate(zip(traj, obstacles)):
        if boxes:
            ego = shapely.polygons(_ego_box(wp))
            out[t] = bool(shapely.intersects(ego, shapely.polygons(np.array(boxes))).any())
    return out


def _plan_at_steps(plan: dict) -> np.ndarray:
    """The plan's waypoints at 0.5 s, 1.0 s, …, 3.0 s (linear interpolation from the origin at t=0
    when ``dt`` is not 0.5; NaN past the plan's horizon)."""
    wps = np.asarray(plan["waypoints"], dtype=float)[:, :2]
    dt = float(plan["dt"])
    times = dt * np.arange(1, len(wps) + 1)
    want = STEP_S * np.arange(1, N_STEPS + 1)
    if len(wps) >= N_STEPS and abs(dt - STEP_S) < 1e-9:
        return wps[:N_STEPS]
    t = np.concatenate([[0.0], times])
    xy = np.vstack([[0.0, 0.0], wps])
    out = np.stack([np.interp(want, t, xy[:, 0]), np.interp(want, t, xy[:, 1])], axis=1)
    out[want > times[-1] + 1e-9] = np.nan
    return out


def evaluate_planning(predictions: Iterable[dict], dataroot: Path, version: str, *,
                      nusc: "NuScenes | None" = None) -> dict:
    """VAD's L2 (m) and collision rate (fraction, not %) at 1/2/3 s over the predictions' samples."""
    from onlinemap.evaluation.detection import load_nuscenes

    preds = [p for p in predictions if p.get("plan")]
    if not preds:
        raise ResultsError("no plan predictions to evaluate", hint="only planning models (VAD) write 'plan'")
    if nusc is None:
        nusc = load_nuscenes(dataroot, version)
    missing = [p["sample_token"] for p in preds if p["sample_token"] not in nusc._token2ind["sample"]]
    if missing:
        raise DatasetError(f"{len(missing)} predicted sample token(s) are not in {version} at {dataroot}, "
                           f"e.g. {missing[0]}", hint="evaluate against the dataroot/version the run used")
    l2 = {h: [] for h in HORIZONS_S}
    col = {h: [] for h in HORIZONS_S}
    skipped_no_future = skipped_short_plan = 0
    for p in preds:
        gt = future_trajectory(nusc, p["sample_token"])
        if gt is None:
            skipped_no_future += 1
            continue
        plan = _plan_at_steps(p["plan"])
        obstacles = future_obstacles(nusc, p["sample_token"])
        gt_col = _collisions(gt, obstacles)
        err = np.hypot(*(plan - gt).T)
        valid = ~np.isnan(err)
        if not valid.all():
            skipped_short_plan += 1
        pred_col = _collisions(np.nan_to_num(plan), obstacles) & ~gt_col & valid
        for h in HORIZONS_S:
            n = int(round(h / STEP_S))
            if valid[:n].all():
                l2[h].append(float(err[:n].mean()))
                col[h].append(float(pred_col[:n].mean()))
    key = lambda h: f"{h:g}s"  # noqa: E731
    l2_mean = {key(h): (float(np.mean(v)) if v else None) for h, v in l2.items()}
    col_mean = {key(h): (float(np.mean(v)) if v else None) for h, v in col.items()}
    avg = lambda d: (float(np.mean(list(d.values()))) if all(v is not None for v in d.values()) else None)  # noqa
    return {
        "L2": l2_mean, "L2_avg": avg(l2_mean), "collision": col_mean, "collision_avg": avg(col_mean),
        "samples": len(l2[HORIZONS_S[0]]), "skipped_no_future": skipped_no_future,
        "short_plans": skipped_short_plan, "units": {"L2": "m", "collision": "fraction of waypoints"},
    }
