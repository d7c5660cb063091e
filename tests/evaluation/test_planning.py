"""VAD L2 and collision rate: the synthetic dataset (straight constant-speed ego paths) and planted agents."""
from __future__ import annotations

import math

import numpy as np
import pytest

from onlinemap.evaluation.planning import REAL_CATEGORY_ORDER, evaluate_planning, future_trajectory

from .conftest import VERSION
from .scenes import Tables, turning_scene


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


def _scene_with_agent(category, lidar_xy_at_step, current_xy=(4.0, 10.0), size=(1.9, 4.6, 1.5), yaw=math.pi / 2):
    """A straight, clear scene plus one agent of ``category``: present now at ``current_xy`` and at
    future step t at ``lidar_xy_at_step.get(t, far away)`` (all in the first sample's LiDAR frame)."""
    from pyquaternion import Quaternion

    rng = np.random.default_rng(3)
    scene = turning_scene(rng, n_samples=7, turn_deg=0.0, speed=6.0, tilt_deg=0.0, sensor_tilt_deg=0.0, n_agents=0)
    sd = scene.get("sample_data", scene.sample[0]["data"]["LIDAR_TOP"])
    ep, cs = scene.get("ego_pose", sd["ego_pose_token"]), scene.get("calibrated_sensor", sd["calibrated_sensor_token"])
    q = Quaternion(ep["rotation"]) * Quaternion(cs["rotation"])
    to_global = lambda xy: list(Quaternion(ep["rotation"]).rotate(cs["translation"]) + np.array(ep["translation"])  # noqa
                                + q.rotate([xy[0], xy[1], 0.0]))
    rot = list((q * Quaternion(axis=[0, 0, 1], angle=yaw)).elements)
    tokens = [f"{i:032x}" for i in range(1, 8)]
    for i, s in enumerate(scene.sample):
        xy = current_xy if i == 0 else lidar_xy_at_step.get(i - 1, (45.0, -45.0))
        scene.sample_annotation.append({"token": tokens[i], "sample_token": s["token"], "instance_token": "a",
                                        "category_name": category, "translation": to_global(xy), "size": list(size),
                                        "rotation": rot, "num_lidar_pts": 5, "num_radar_pts": 0,
                                        "prev": tokens[i - 1] if i else "", "next": tokens[i + 1] if i < 6 else "",
                                        "attribute_tokens": [], "visibility_token": "4"})
        s["anns"].append(tokens[i])
    return Tables(scene.tables)


def _swerve(scene, step, lidar_xy):
    from onlinemap.evaluation.planning import _lidar_future

    gt, l2e = _lidar_future(scene, scene.sample[0]["token"])
    plan = gt.copy()
    plan[step] = lidar_xy
    yaw = math.atan2(l2e[1, 0], l2e[0, 0])
    rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    return [{"sample_token": scene.sample[0]["token"], "model": "t", "plan": {"waypoints": (plan @ rot.T).tolist(), "dt": 0.5}}]


@pytest.mark.parametrize("rule", ["raster", "exact"])
def test_planning_collision_with_a_planted_agent(rule):
    """A plan that swerves 4 m right at the 4th waypoint (2 s) meets an agent standing there then:
    collision 0 at 1 s, 1/4 at 2 s, 1/6 at 3 s; the GT plan never collides."""
    target = (4.0, 12.0)
    scene = _scene_with_agent("vehicle.car", {3: target})
    pred = _swerve(scene, 3, target)
    result = evaluate_planning(pred, None, VERSION, nusc=scene, collision=rule)
    assert result["collision"] == pytest.approx({"1s": 0.0, "2s": 0.25, "3s": 1 / 6})
    clean = evaluate_planning(_swerve(scene, 3, (-8.0, 12.0)), None, VERSION, nusc=scene, collision=rule)
    assert clean["collision"] == {"1s": 0.0, "2s": 0.0, "3s": 0.0}


@pytest.mark.parametrize("category, vad, meant", [
    ("vehicle.car", True, True),                   # position 8: in VAD's "human" list
    ("human.pedestrian.adult", False, True),       # position 0: VAD's test misses adults
    ("vehicle.truck", False, True),                # position 13
    ("movable_object.barrier", True, False),       # position 18: in VAD's "vehicle" list
    ("movable_object.trafficcone", True, False),   # position 19
])
def test_planning_obstacles_follow_vads_category_positions_on_the_real_table(category, vad, meant):
    target = (4.0, 12.0)
    scene = _scene_with_agent(category, {3: target}, size=(1.0, 1.0, 1.5))
    pred = _swerve(scene, 3, target)
    assert scene.category[0]["name"] == REAL_CATEGORY_ORDER[0]
    assert evaluate_planning(pred, None, VERSION, nusc=scene)["collision"]["3s"] == pytest.approx(vad / 6)
    meant_result = evaluate_planning(pred, None, VERSION, nusc=scene, obstacles="categories")
    assert meant_result["collision"]["3s"] == pytest.approx(meant / 6)


def test_planning_obstacles_are_current_agents_inside_the_window():
    """An agent that is outside VAD's 30 x 60 m window now (x = 16 m to the right) is no obstacle
    later, even where the plan runs into it; one without LiDAR or radar points neither."""
    target = (4.0, 12.0)
    far = _scene_with_agent("vehicle.car", {3: target}, current_xy=(16.0, 10.0))
    assert evaluate_planning(_swerve(far, 3, target), None, VERSION, nusc=far)["collision"]["3s"] == 0.0
    unseen = _scene_with_agent("vehicle.car", {3: target})
    for ann in unseen.sample_annotation:
        ann["num_lidar_pts"] = 0
    assert evaluate_planning(_swerve(unseen, 3, target), None, VERSION, nusc=unseen)["collision"]["3s"] == 0.0


def test_planning_raster_footprint_is_vads_2_by_4_cells_not_the_exact_box():
    """An agent whose edge is 0.85 m to the right of the planned LiDAR position, alongside the ego: the exact
    1.85 m-wide footprint (to 0.925 m) overlaps it, VAD's raster footprint (cells to x = 0.75 m)
    does not."""
    wp = (-6.0, 12.0)   # a swerve 6 m left of the GT path, which stays clear
    scene = _scene_with_agent("vehicle.car", {3: (wp[0] + 0.85 + 0.5, 12.0)}, size=(1.0, 1.0, 1.5), yaw=0.0)
    pred = _swerve(scene, 3, wp)
    assert evaluate_planning(pred, None, VERSION, nusc=scene, collision="exact")["collision"]["3s"] == pytest.approx(1 / 6)
    assert evaluate_planning(pred, None, VERSION, nusc=scene)["collision"]["3s"] == 0.0


def test_planning_rejects_unknown_rules(nusc, synth_root):
    with pytest.raises(ValueError, match="collision"):
        evaluate_planning(_plans(nusc), synth_root, VERSION, nusc=nusc, collision="pixels")


def test_planning_resamples_plans_with_another_step(nusc, synth_root):
    """A 0.25 s plan along the GT path (linear between key frames) scores L2 0 like the 0.5 s one."""
    token = nusc.sample[0]["token"]
    gt = future_trajectory(nusc, token)
    xy = np.vstack([[0.0, 0.0], gt])
    fine = np.stack([np.interp(np.arange(1, 13) / 2, np.arange(7), xy[:, k]) for k in (0, 1)], axis=1)
    pred = [{"sample_token": token, "model": "t", "plan": {"waypoints": fine.tolist(), "dt": 0.25}}]
    result = evaluate_planning(pred, synth_root, VERSION, nusc=nusc)
    assert result["L2"] == pytest.approx({"1s": 0.0, "2s": 0.0, "3s": 0.0}, abs=1e-9)
