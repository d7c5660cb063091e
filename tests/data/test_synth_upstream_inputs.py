"""The synthetic dataset has what the upstream converters and pipelines read, in the form they read it.

Each test runs the real nuscenes-devkit code the upstream converters call (map expansion, CAN bus
API, the 2-D box export) over the turning synthetic fixture (2 scenes x 16 samples; scene-0916 turns).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from onlinemap.data.synth import LOCATIONS, MARKER
from onlinemap.data.synth_map import ROAD_Y

VERSION = "v1.0-mini"


@pytest.fixture(scope="module")
def nusc(synth_turn_root):
    from nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=str(synth_turn_root), verbose=False)


@pytest.fixture(scope="module")
def synth_root(synth_turn_root):
    return synth_turn_root


def _yaw(q) -> float:
    w, x, y, z = q
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def test_map_expansion_for_all_four_locations_loads_in_the_devkit(synth_root):
    from nuscenes.map_expansion.map_api import NuScenesMap

    assert set(LOCATIONS) == {"boston-seaport", "singapore-onenorth", "singapore-hollandvillage",
                              "singapore-queenstown"}
    for loc in LOCATIONS:   # the fixture uses two locations; MapTR/VAD open all four
        m = NuScenesMap(dataroot=str(synth_root), map_name=loc)
        assert tuple(int(v) for v in m.version.split(".")) >= (1, 3)
        assert m.lane and m.ped_crossing and m.road_divider and m.lane_divider


def test_no_box_has_exactly_two_corners_in_front_of_a_camera(nusc):
    """The devkit's own 2-D export (as mmdet3d's converters do it) runs over every box x camera."""
    import nuscenes.scripts.export_2d_annotations_as_json as export
    from nuscenes.utils.data_classes import Box  # noqa: F401  (the devkit's box, used by get_box)
    from pyquaternion import Quaternion

    export.nusc = nusc   # the script keeps its NuScenes in a module global
    cams = [sd for sd in nusc.sample_data if sd["sensor_modality"] == "camera" and sd["is_key_frame"]]
    boxes = 0
    for sd in cams:
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        for ann in nusc.get("sample", sd["sample_token"])["anns"]:
            box = nusc.get_box(ann)
            box.translate(-np.array(pose["translation"]))
            box.rotate(Quaternion(pose["rotation"]).inverse)
            box.translate(-np.array(cs["translation"]))
            box.rotate(Quaternion(cs["rotation"]).inverse)
            in_front = int((box.corners()[2, :] > 0).sum())
            assert in_front not in (1, 2), (sd["filename"], ann, in_front)
            boxes += 1
        export.get_2d_boxes(sd["token"], ["", "1", "2", "3", "4"])   # raises on a LineString hull
    assert boxes > 500


def test_images_are_1600x900_and_the_intrinsics_fit_them(nusc, synth_root):
    from PIL import Image

    cams = [sd for sd in nusc.sample_data if sd["sensor_modality"] == "camera"]
    for sd in cams[:: max(len(cams) // 24, 1)]:
        with Image.open(synth_root / sd["filename"]) as im:
            assert im.size == (sd["width"], sd["height"]) == (1600, 900) and im.format == "JPEG"
    # every annotated box in front of CAM_FRONT within its field of view projects inside the image
    from nuscenes.utils.geometry_utils import BoxVisibility, view_points

    inside = 0
    for sample in nusc.sample:
        _, boxes, k = nusc.get_sample_data(sample["data"]["CAM_FRONT"], box_vis_level=BoxVisibility.ALL)
        k = np.asarray(k)
        assert k[0, 2] == 800 and k[1, 2] == 450
        for box in boxes:   # BoxVisibility.ALL: all corners within 1600 x 900 by the devkit's own test
            uv = view_points(box.center.reshape(3, 1), k, normalize=True)[:2, 0]
            assert 0 <= uv[0] <= 1600 and 0 <= uv[1] <= 900
            inside += 1
    assert inside > 0


def test_can_bus_agrees_with_the_ego_poses(nusc, synth_root):
    """MapTR/VAD converters: the last `pose` message at or before each sample, through NuScenesCanBus."""
    from nuscenes.can_bus.can_bus_api import NuScenesCanBus

    assert (synth_root / "can_bus").is_dir()   # inside the root: converters get --canbus <root>
    can = NuScenesCanBus(dataroot=str(synth_root))
    for scene in nusc.scene:
        poses = can.get_messages(scene["name"], "pose")
        steer = can.get_messages(scene["name"], "steeranglefeedback")
        utimes = np.array([p["utime"] for p in poses])
        assert np.all(np.diff(utimes) > 0) and len(steer) > len(poses)
        token = scene["first_sample_token"]
        while token:
            sample = nusc.get("sample", token)
            ego = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
            last = poses[int(np.searchsorted(utimes, sample["timestamp"], side="right")) - 1]
            assert last["utime"] == sample["timestamp"]
            np.testing.assert_allclose(last["pos"], ego["translation"], atol=1e-6)
            np.testing.assert_allclose(last["orientation"], ego["rotation"], atol=1e-9)
            assert len(last["pos"] + last["orientation"] + last["accel"] + last["rotation_rate"] + last["vel"]) == 16
            if sample["next"]:   # vel (ego frame) and yaw rate agree with the next key frame's pose
                nxt = nusc.get("ego_pose", nusc.get("sample_data", nusc.get("sample", sample["next"])["data"]
                                                    ["LIDAR_TOP"])["ego_pose_token"])
                dist = np.linalg.norm(np.subtract(nxt["translation"], ego["translation"])[:2])
                assert dist <= last["vel"][0] * 0.5 + 1e-6 and dist >= last["vel"][0] * 0.5 * 0.9
            token = sample["next"]


def test_some_scenes_turn_90_degrees_within_3_s(nusc, synth_root):
    turned = {}
    for scene in nusc.scene:
        yaws, times = [], []
        token = scene["first_sample_token"]
        while token:
            sample = nusc.get("sample", token)
            ego = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["CAM_FRONT"])["ego_pose_token"])
            yaws.append(_yaw(ego["rotation"]))
            times.append(sample["timestamp"] / 1e6)
            token = sample["next"]
        yaws = np.unwrap(yaws)
        best = max(abs(yaws[j] - yaws[i]) for i in range(len(yaws)) for j in range(i, len(yaws))
                   if times[j] - times[i] <= 3.0 + 1e-6)
        turned[scene["name"]] = best
    assert turned["scene-0103"] < math.radians(1)                  # mini_val's first scene drives straight
    assert abs(turned["scene-0916"] - math.pi / 2) < math.radians(1)  # the second turns left by 90 degrees in 3 s
    marker = json.loads((synth_root / MARKER).read_text())
    assert marker["turning_scenes"] == ["scene-0916"] and marker["complete"] is True


def test_a_turning_ego_turns_into_a_mapped_side_road(nusc, synth_root):
    """After its turn the ego drives in a lane of the side road, as the map API finds it."""
    from nuscenes.map_expansion.map_api import NuScenesMap

    scene = next(s for s in nusc.scene if s["name"] == "scene-0916")
    location = nusc.get("log", scene["log_token"])["location"]
    m = NuScenesMap(dataroot=str(synth_root), map_name=location)
    sample = nusc.get("sample", scene["last_sample_token"])
    ego = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["CAM_FRONT"])["ego_pose_token"])
    x, y = ego["translation"][:2]
    assert y > ROAD_Y[1] + 2.0                                     # off the main road: on the side road
    lane = m.record_on_point(x, y, "lane")
    assert lane, (x, y)
    arc = m.arcline_path_3[lane][0]
    assert abs(arc["start_pose"][2] - math.pi / 2) < 1e-9            # the lane drives towards +y, as the ego
    assert abs(_yaw(ego["rotation"]) - math.pi / 2) < math.radians(6)
