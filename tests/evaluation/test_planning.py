"""VAD L2 and collision rate on the synthetic dataset (straight constant-speed ego paths)."""
from __future__ import annotations

import numpy as np
import pytest

from onlinemap.evaluation.planning import (EGO_FORWARD_OFFSET, EGO_LENGTH, evaluate_planning,
                                           future_obstacles, future_trajectory)

from .conftest import VERSION


def _plans(nusc, offset=(0.0, 0.0)):
    preds = []
    for s in nusc.sample:
        gt = future_trajectory(nusc, s["token"])
        wps = (gt + np.asarray(offset)) if gt is not None else np.zeros((6, 2))
        preds.append({"sample_token": s["token"], "model": "t", "plan": {"waypoints": wps.tolist(), "dt": 0.5}})
    return preds


def test_planning_gt_trajectory_is_straight_ahead(nusc):
    """The synthetic ego drives straight at constant speed: future positions are (v t, 0)."""
    first = nusc.sample[0]["token"]
    traj = future_trajectory(nusc, first)
    assert traj.shape == (6, 2)
    step = traj[0, 0]
    np.testing.assert_allclose(traj[:, 0], step * np.arange(1, 7), atol=1e-9)
    np.testing.assert_allclose(traj[:, 1], 0.0, atol=1e-9)


def test_planning_l2_of_a_known_offset_is_that_offset(nusc, synth_root):
    """Every waypoint 0.3 m left and 0.4 m ahead of the truth: L2 = 0.5 m at 1, 2 and 3 s; the
    last 6 samples of each scene have no full 3 s future and are skipped."""
    result = evaluate_planning(_plans(nusc, (0.4, 0.3)), synth_root, VERSION, nusc=nusc)
    assert result["L2"] == pytest.approx({"1s": 0.5, "2s": 0.5, "3s": 0.5})
    scenes = len(nusc.scene)
    assert result["skipped_no_future"] == 6 * scenes
    assert result["samples"] == len(nusc.sample) - 6 * scenes


def test_planning_l2_averages_over_the_horizon(nusc, synth_root):
    """Error growing 0.1 m per waypoint: L2@1s = mean(.1,.2), @2s = mean(.1..0.4), @3s = mean(.1..0.6)."""
    preds = _plans(nusc)
    for p in preds:
        wps = np.asarray(p["plan"]["waypoints"])
        wps[:, 1] += 0.1 * np.arange(1, 7)
        p["plan"]["waypoints"] = wps.tolist()
    result = evaluate_planning(preds, synth_root, VERSION, nusc=nusc)
    assert result["L2"]["1s"] == pytest.approx(0.15)
    assert result["L2"]["2s"] == pytest.approx(0.25)
    assert result["L2"]["3s"] == pytest.approx(0.35)


def test_planning_collision_with_a_planted_box(nusc, synth_root):
    """A plan that swerves 5 m to the side at the 4th waypoint (2 s) runs into a GT box planted
    there: collision 0 at 1 s, 1/4 at 2 s, 1/6 at 3 s for that sample, 0 for the GT plan."""
    token = nusc.sample[0]["token"]
    gt = future_trajectory(nusc, token)
    obstacles = future_obstacles(nusc, token)
    import shapely

    def ego_box(xy):  # VAD's footprint, independently: 4.084 x 1.85 m, centre 0.5 m ahead
        return shapely.box(xy[0] + EGO_FORWARD_OFFSET - EGO_LENGTH / 2, xy[1] - 1.85 / 2,
                           xy[0] + EGO_FORWARD_OFFSET + EGO_LENGTH / 2, xy[1] + 1.85 / 2)

    def free(t, xy):
        return not any(shapely.intersects(shapely.polygons(b), ego_box(xy)) for b in obstacles[t])

    # the premise: the GT path is clear, and so is the swerve target before we plant the car there
    assert all(free(t, gt[t]) for t in range(6))
    side = next(d for d in (5.0, -5.0, 8.0, -8.0) if free(3, gt[3] + np.array([0.0, d])))
    target = gt[3] + np.array([0.0, side])
    plan = gt.copy()
    plan[3] = target
    pred = [{"sample_token": token, "model": "t", "plan": {"waypoints": plan.tolist(), "dt": 0.5}}]
    clean = evaluate_planning(pred, synth_root, VERSION, nusc=nusc)
    assert clean["collision"] == {"1s": 0.0, "2s": 0.0, "3s": 0.0}
    planted = _with_planted_car(nusc, token, step=4, ego_xy=target)
    try:
        result = evaluate_planning(pred, synth_root, VERSION, nusc=nusc)
    finally:
        planted()
    assert result["collision"] == pytest.approx({"1s": 0.0, "2s": 0.25, "3s": 1 / 6})
    assert result["L2"]["1s"] == pytest.approx(0.0)


def _with_planted_car(nusc, token, step, ego_xy):
    """Add a car annotation to the ``step``-th future key frame at ``ego_xy`` of ``token``'s ego
    frame (in memory only); return a function that removes it again."""
    from pyquaternion import Quaternion

    sample = nusc.get("sample", token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    q = Quaternion(pose["rotation"])
    xyz = q.rotate(np.array([ego_xy[0], ego_xy[1], 0.8])) + np.asarray(pose["translation"])
    fut = sample
    for _ in range(step):
        fut = nusc.get("sample", fut["next"])
    ann = {"token": "planted" + "0" * 25, "sample_token": fut["token"], "instance_token": "", "visibility_token": "4",
           "attribute_tokens": [], "translation": list(xyz), "size": [1.9, 4.6, 1.7], "rotation": list(q.q),
           "num_lidar_pts": 10, "num_radar_pts": 0, "prev": "", "next": "", "category_name": "vehicle.car"}
    nusc.sample_annotation.append(ann)
    nusc._token2ind["sample_annotation"][ann["token"]] = len(nusc.sample_annotation) - 1
    fut["anns"].append(ann["token"])

    def remove():
        fut["anns"].remove(ann["token"])
        del nusc._token2ind["sample_annotation"][ann["token"]]
        nusc.sample_annotation.pop()
    return remove


def test_planning_resamples_plans_with_another_step(nusc, synth_root):
    """A 0.25 s plan along the GT path (linear between key frames) scores L2 0 like the 0.5 s one."""
    token = nusc.sample[0]["token"]
    gt = future_trajectory(nusc, token)
    xy = np.vstack([[0.0, 0.0], gt])
    fine = np.stack([np.interp(np.arange(1, 13) / 2, np.arange(7), xy[:, k]) for k in (0, 1)], axis=1)
    pred = [{"sample_token": token, "model": "t", "plan": {"waypoints": fine.tolist(), "dt": 0.25}}]
    result = evaluate_planning(pred, synth_root, VERSION, nusc=nusc)
    assert result["L2"] == pytest.approx({"1s": 0.0, "2s": 0.0, "3s": 0.0}, abs=1e-9)
