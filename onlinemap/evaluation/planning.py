"""VAD's open-loop planning metrics: L2 and collision rate at 1, 2 and 3 s, as VAD computes them.

Definitions from hustvl/VAD (``tools/data_converter/vad_nuscenes_converter.py`` for the targets and
agents, ``projects/mmdet3d_plugin/VAD/planner/metric_stp3.py`` ``PlanningMetric`` and
``projects/mmdet3d_plugin/VAD/VAD.py`` ``compute_planner_metric_stp3`` for the metric), written from
the definitions, not copied. Everything is computed in VAD's own frame, the current **LiDAR** frame
(x right, y forward); docs/evaluation.md cites each step.

- The reference point is the **LIDAR_TOP sensor**: the GT path is the sensor's position at the next
  6 key frames (0.5 s apart) in the current LiDAR frame (``get_global_sensor_pose``). The schema's
  ``plan.waypoints`` are those positions rotated into ego axes by the yaw of lidar2ego (the VAD
  adapter's ``plan_waypoints``), so a prediction is rotated back before scoring; L2 is unchanged.
- **L2 at t s** = Euclidean error averaged over all waypoints up to t, per sample, then over samples.
- **Collision at t s** = per sample, the fraction of the first 2t waypoints at which the ego
  footprint (4.084 m x 1.85 m, centred 0.5 m ahead of the LiDAR along its forward axis, not rotated
  along the path) meets an obstacle of that future step; steps where the GT path itself collides
  are not counted (``gt_box_coll``). VAD's ``plan_obj_box_col``.
- Obstacles, as VAD's dataset gives them to the metric: the *current* frame's annotations with at
  least one LiDAR or radar point, of the 10 detection classes, centred inside the 30 m x 60 m
  window (LiDAR x in (-15, 15), y in (-30, 30)), moved along their own annotation chain; and only
  those whose category's **position in the category table** is in VAD's lists (2-8 "human",
  14-23 "vehicle"). On the real nuScenes table those positions are wheelchair ... construction
  worker, animal and car (2-8) and construction vehicle ... debris, bicycle rack (14-22): adult
  and child pedestrians, motorcycles, bicycles, buses and trucks are *not* obstacles, barriers and
  cones are. ``obstacles="categories"`` uses the categories VAD meant instead (all ``human.*`` and
  ``vehicle.*``), whatever the table order.
- ``collision="raster"`` (default) is VAD's test: obstacles filled (``cv2.fillPoly``, corners
  rounded to 0.5 m cells) into a 200 x 200 grid of +-50 m, the ego footprint taken as the cells
  whose centres fall inside it (8 x 4 cells: 4.0 m x 2.0 m), shifted by the waypoint truncated to
  cells and clipped to the grid. ``collision="exact"`` intersects the true rectangles instead.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from onlinemap.errors import DatasetError, ResultsError

if TYPE_CHECKING:  # pragma: no cover
    from nuscenes import NuScenes

__all__ = ["HORIZONS_S", "STEP_S", "EGO_LENGTH", "EGO_WIDTH", "EGO_FORWARD_OFFSET", "COLLISION_RULES",
           "OBSTACLE_RULES", "REAL_CATEGORY_ORDER", "future_trajectory", "future_obstacles", "plan_to_lidar",
           "evaluate_planning"]

HORIZONS_S = (1.0, 2.0, 3.0)
STEP_S = 0.5                 # nuScenes key frames, VAD's fut_ts = 6 at 2 Hz
N_STEPS = 6
EGO_LENGTH, EGO_WIDTH = 4.084, 1.85   # metric_stp3.py ego_width, ego_length
EGO_FORWARD_OFFSET = 0.5              # metric_stp3.py evaluate_single_coll: -H/2 + 0.5 .. H/2 + 0.5 (LiDAR forward)
WINDOW = (-15.0, -30.0, 15.0, 30.0)   # VAD_tiny_stage_2.py point_cloud_range (x, y) -> CustomObjectRangeFilter
# metric_stp3.py PlanningMetric.category_index, compared with enumerate(nusc.category) positions
VAD_CATEGORY_POSITIONS = frozenset(range(2, 9)) | frozenset(range(14, 24))
# the order of the real nuScenes v1.0 category table (category.json), for reference and tests
REAL_CATEGORY_ORDER = (
    "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.wheelchair", "human.pedestrian.stroller",
    "human.pedestrian.personal_mobility", "human.pedestrian.police_officer", "human.pedestrian.construction_worker",
    "animal", "vehicle.car", "vehicle.motorcycle", "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid",
    "vehicle.truck", "vehicle.construction", "vehicle.emergency.ambulance", "vehicle.emergency.police",
    "vehicle.trailer", "movable_object.barrier", "movable_object.trafficcone", "movable_object.pushable_pullable",
    "movable_object.debris", "static_object.bicycle_rack")
COLLISION_RULES = ("raster", "exact")
OBSTACLE_RULES = ("vad", "categories")
# metric_stp3.py X_BOUND / Y_BOUND: [-50, 50] m in 0.5 m cells
GRID_CELL, GRID_HALF = 0.5, 50.0
GRID_N = int(round(2 * GRID_HALF / GRID_CELL))


# ------------------------------------------------------------------------------------ frames
def _matrix(translation, rotation) -> np.ndarray:
    from pyquaternion import Quaternion

    m = np.eye(4)
    m[:3, :3] = Quaternion(rotation).rotation_matrix
    m[:3, 3] = translation
    return m


def _lidar2global(nusc: "NuScenes", sample: dict) -> tuple[np.ndarray, np.ndarray]:
    """(lidar2global 4x4, lidar2ego 4x4) of a sample's LIDAR_TOP key frame."""
    sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    l2e = _matrix(cs["translation"], cs["rotation"])
    return _matrix(pose["translation"], pose["rotation"]) @ l2e, l2e


def _lidar_yaw_in_ego(l2e: np.ndarray) -> float:
    """Yaw of lidar2ego: the 2-D rotation the VAD adapter applies to its plan (``lidar_bev_to_ego``)."""
    return math.atan2(l2e[1, 0], l2e[0, 0])


def _rot2(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def _future_samples(nusc: "NuScenes", sample_token: str, steps: int = N_STEPS) -> list[dict] | None:
    sample = nusc.get("sample", sample_token)
    out = []
    for _ in range(steps):
        if not sample["next"]:
            return None
        sample = nusc.get("sample", sample["next"])
        out.append(sample)
    return out


def _lidar_future(nusc: "NuScenes", sample_token: str, steps: int = N_STEPS):
    """(VAD's GT path in the current LiDAR frame (steps, 2), lidar2ego 4x4), or None without a full future."""
    fut = _future_samples(nusc, sample_token, steps)
    if fut is None:
        return None
    l2g0, l2e0 = _lidar2global(nusc, nusc.get("sample", sample_token))
    g2l0 = np.linalg.inv(l2g0)
    pos = np.array([_lidar2global(nusc, s)[0][:, 3] for s in fut])       # future sensor origins, global
    return (pos @ g2l0.T)[:, :2], l2e0


def future_trajectory(nusc: "NuScenes", sample_token: str, steps: int = N_STEPS) -> np.ndarray | None:
    """VAD's planning target in the schema's frame: the LIDAR_TOP sensor's position at the next ``steps``
    key frames relative to its current position, in ego axes (x forward, y left), (steps, 2); None
    when the scene ends earlier. A plan equal to this scores L2 0 here and in VAD."""
    got = _lidar_future(nusc, sample_token, steps)
    if got is None:
        return None
    lidar, l2e = got
    return lidar @ _rot2(_lidar_yaw_in_ego(l2e)).T


def plan_to_lidar(waypoints: np.ndarray, l2e: np.ndarray) -> np.ndarray:
    """Schema waypoints (ego axes) -> VAD's current LiDAR frame (the inverse of the adapter's rotation)."""
    return np.asarray(waypoints, dtype=float) @ _rot2(-_lidar_yaw_in_ego(l2e)).T


def _is_obstacle(category: str, position: int, rule: str) -> bool:
    if rule == "vad":
        return position in VAD_CATEGORY_POSITIONS
    return category.startswith(("human.", "vehicle."))


def future_obstacles(nusc: "NuScenes", sample_token: str, steps: int = N_STEPS, obstacles: str = "vad"
                     ) -> list[list[tuple[float, float, float, float, float]]] | None:
    """Per future step, the obstacles VAD rasterises: ``(x, y, yaw, length, width)`` in the current
    LiDAR frame, for the current frame's agents that have an annotation at that step."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    if obstacles not in OBSTACLE_RULES:
        raise ValueError(f"obstacles must be one of {OBSTACLE_RULES}, not {obstacles!r}")
    sample = nusc.get("sample", sample_token)
    if _future_samples(nusc, sample_token, steps) is None:
        return None
    l2g0, _ = _lidar2global(nusc, sample)
    g2l0 = np.linalg.inv(l2g0)
    position = {c["name"]: i for i, c in enumerate(nusc.category)}   # vad_nuscenes_converter.py cat2idx

    def in_lidar(ann):
        """(centre, rotation quaternion) of an annotation in the current LiDAR frame."""
        centre = g2l0[:3, :3] @ np.asarray(ann["translation"], dtype=float) + g2l0[:3, 3]
        return centre, Quaternion(matrix=g2l0[:3, :3], atol=1e-6) * Quaternion(ann["rotation"])

    def zyx_yaw(q):   # the converter's quart_to_rpy yaw
        w, x, y, z = q.elements
        return math.atan2(2 * (w * z + x * y), 1 - 2 * (z * z + y * y))

    out: list[list] = [[] for _ in range(steps)]
    for ann_token in sample["anns"]:
        ann = nusc.get("sample_annotation", ann_token)
        if ann["num_lidar_pts"] + ann["num_radar_pts"] <= 0:                       # use_valid_flag
            continue
        if category_to_detection_name(ann["category_name"]) is None:                # ObjectNameFilter
            continue
        centre, q = in_lidar(ann)
        if not (WINDOW[0] < centre[0] < WINDOW[2] and WINDOW[1] < centre[1] < WINDOW[3]):   # in_range_bev
            continue
        if not _is_obstacle(ann["category_name"], position.get(ann["category_name"], -1), obstacles):
            continue
        w, length = float(ann["size"][0]), float(ann["size"][1])
        # VAD's yaw at step t: the box's yaw now (pyquaternion's yaw_pitch_roll, gt_boxes) plus the
        # summed quart_to_rpy yaw steps (gt_agent_fut_yaw); the two yaws differ on tilted boxes
        yaw_offset = float(q.yaw_pitch_roll[0]) - zyx_yaw(q)
        cur = ann
        for t in range(steps):                    # the agent's own chain: gt_agent_fut_trajs / masks / yaw
            if not cur["next"]:
                break
            cur = nusc.get("sample_annotation", cur["next"])
            c, qt = in_lidar(cur)
            out[t].append((float(c[0]), float(c[1]), yaw_offset + zyx_yaw(qt), length, w))
    return out


# --------------------------------------------------------------------------------- collision
def _corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    local = np.array([[length / 2, width / 2], [-length / 2, width / 2], [-length / 2, -width / 2],
                      [length / 2, -width / 2]])
    return local @ _rot2(yaw).T + np.array([x, y])


def _ego_corners(waypoint) -> np.ndarray:
    """The ego footprint at a LiDAR-frame waypoint: length along the LiDAR's forward (y) axis."""
    x, y = waypoint
    return _corners(x, y + EGO_FORWARD_OFFSET, math.pi / 2, EGO_LENGTH, EGO_WIDTH)


def _obstacle_raster(boxes) -> np.ndarray:
    """One step's obstacles filled into VAD's grid (row = (50 - y) / 0.5, column = (x + 50) / 0.5)."""
    import cv2

    grid = np.zeros((GRID_N, GRID_N), dtype=np.uint8)
    for box in boxes:
        xy = _corners(*box)
        cells = np.stack([(xy[:, 0] + GRID_HALF) / GRID_CELL, (GRID_HALF - xy[:, 1]) / GRID_CELL], axis=1)
        cv2.fillPoly(grid, [np.round(cells).astype(np.int32)], 1)
    return grid


def _ego_cells() -> tuple[np.ndarray, np.ndarray]:
    """VAD's ego footprint as grid offsets: the cells whose centres lie inside the 4.084 x 1.85 m box
    0.5 m ahead of the LiDAR, in (length index, width index) counted from the grid corner."""
    start = -GRID_HALF + GRID_CELL / 2
    along = (np.array([-EGO_LENGTH / 2, EGO_LENGTH / 2]) + EGO_FORWARD_OFFSET - start) / GRID_CELL
    across = (np.array([-EGO_WIDTH / 2, EGO_WIDTH / 2]) - start) / GRID_CELL
    rows = np.arange(math.floor(along[0]) + 1, math.ceil(along[1]))
    cols = np.arange(math.floor(across[0]) + 1, math.ceil(across[1]))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return rr.ravel(), cc.ravel()


def _collisions(traj: np.ndarray, obstacles: list, rule: str) -> np.ndarray:
    """Per step: does the ego footprint at LiDAR-frame ``traj[t]`` meet an obstacle of step t?"""
    out = np.zeros(len(traj), dtype=bool)
    if rule == "exact":
        import shapely

        for t, (wp, boxes) in enumerate(zip(traj, obstacles)):
            if boxes:
                ego = shapely.polygons(_ego_corners(wp))
                out[t] = bool(shapely.intersects(ego, shapely.polygons(np.array([_corners(*b) for b in boxes]))).any())
        return out
    rr, cc = _ego_cells()
    for t, (wp, boxes) in enumerate(zip(traj, obstacles)):
        if not boxes:
            continue
        rows = np.clip((GRID_N - (wp[1] / GRID_CELL + rr)).astype(np.int32), 0, GRID_N - 1)
        cols = np.clip((wp[0] / GRID_CELL + cc).astype(np.int32), 0, GRID_N - 1)
        out[t] = bool(_obstacle_raster(boxes)[rows, cols].any())
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
                      nusc: "NuScenes | None" = None, collision: str = "raster", obstacles: str = "vad") -> dict:
    """VAD's L2 (m) and collision rate (fraction, not %) at 1/2/3 s over the predictions' samples.

    ``collision``: ``"raster"`` (VAD's grid test, default) or ``"exact"`` (true rectangles);
    ``obstacles``: ``"vad"`` (VAD's category-position test, default) or ``"categories"``.
    """
    from onlinemap.evaluation.detection import load_nuscenes

    if collision not in COLLISION_RULES:
        raise ValueError(f"collision must be one of {COLLISION_RULES}, not {collision!r}")
    if obstacles not in OBSTACLE_RULES:
        raise ValueError(f"obstacles must be one of {OBSTACLE_RULES}, not {obstacles!r}")
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
        got = _lidar_future(nusc, p["sample_token"])
        if got is None:
            skipped_no_future += 1
            continue
        gt, l2e = got
        plan = plan_to_lidar(_plan_at_steps(p["plan"]), l2e)
        boxes = future_obstacles(nusc, p["sample_token"], obstacles=obstacles)
        gt_col = _collisions(gt, boxes, collision)
        err = np.hypot(*(plan - gt).T)
        valid = ~np.isnan(err)
        if not valid.all():
            skipped_short_plan += 1
        pred_col = _collisions(np.nan_to_num(plan), boxes, collision) & ~gt_col & valid
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
        "reference_point": "LIDAR_TOP", "collision_rule": collision, "obstacle_rule": obstacles,
    }
