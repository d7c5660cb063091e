"""viz: one panel per run, frames (global detections -> the sample's ego frame), PNG content."""
from __future__ import annotations

import json

import pytest
from PIL import Image


def _first_measured_token(run_dir):
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        if not sample["warmup"]:
            return sample["sample_token"]
    raise AssertionError("no measured sample")


def test_viz_side_by_side_panels(home_env, tmp_path):
    from onlinemap import api

    token = _first_measured_token(home_env["ref"])
    info = api.viz([home_env["ref"].name, home_env["crash"].name], sample=token, out=tmp_path / "bev.png")
    assert info["axes"] == 2 and [lab.split()[0] for lab in info["labels"]] == ["reference", "crashref"]
    assert info["counts"][0]["boxes"] > 0 and info["counts"][0]["polylines"] > 0
    assert info["counts"][1] == {"boxes": 1, "polylines": 0, "waypoints": 0}
    with Image.open(info["path"]) as img:
        assert img.size == info["size_px"] == (1300, 600)
        rgb = img.convert("RGB")
        # the two panels are distinct regions, each with drawing in it (not blank white)
        for x0 in (0, img.size[0] // 2):
            panel = rgb.crop((x0 + 80, 80, x0 + img.size[0] // 2 - 20, img.size[1] - 100))
            assert len(panel.getcolors(maxcolors=1_000_000)) > 20
    single = api.viz([home_env["crash"].name], sample=token, out=tmp_path / "one.png")
    assert single["axes"] == 1 and single["size_px"] == (700, 650)


def test_viz_default_sample_and_unknown_sample(home_env, tmp_path):
    from onlinemap import api
    from onlinemap.errors import DatasetError

    info = api.viz(latest=True, models="crashref")
    assert info["path"].parent == home_env["home"] / "reports" and info["path"].is_file()
    assert _first_measured_token(home_env["crash"]) in info["path"].name
    with pytest.raises(DatasetError):
        api.viz([home_env["crash"].name], sample="nosuchtoken", out=tmp_path / "x.png")


def test_global_detections_land_on_ego_frame_gt(home_env, synth_root):
    """A prediction equal to a GT box in the global frame is drawn exactly where the GT box is."""
    from onlinemap.evaluation.detection import load_nuscenes
    from onlinemap.report.viz import prediction_in_ego, sample_ground_truth

    nusc = load_nuscenes(synth_root, "v1.0-mini")
    token = _first_measured_token(home_env["ref"])
    gt = sample_ground_truth(nusc, synth_root, token)
    assert gt["boxes"] and gt["polylines"] and gt["plan"]
    ann = nusc.get("sample_annotation", nusc.get("sample", token)["anns"][0])
    box = nusc.get_box(ann["token"])
    pred = {"detections_3d": [{"label": "car", "score": 1.0, "center": list(box.center), "size": list(box.wlh),
                               "yaw": box.orientation.yaw_pitch_roll[0], "frame": "global"}],
            "plan": {"waypoints": [[1.0, 0.0]], "dt": 0.5}}
    drawn = prediction_in_ego(pred, gt["q"], gt["t"])
    assert drawn["boxes"][0]["xy"] == pytest.approx(gt["boxes"][0]["xy"], abs=1e-6)
    assert drawn["boxes"][0]["yaw"] == pytest.approx(gt["boxes"][0]["yaw"], abs=1e-6)
    assert drawn["plan"] == [(1.0, 0.0)]   # plan is already ego: unchanged
    # the ego itself sits at the origin: its own pose maps to (0, 0)
    ego = prediction_in_ego({"detections_3d": [{"center": list(gt["t"]), "size": [1, 1, 1], "yaw": 0.0}]},
                            gt["q"], gt["t"])
    assert ego["boxes"][0]["xy"] == pytest.approx((0.0, 0.0), abs=1e-9)
