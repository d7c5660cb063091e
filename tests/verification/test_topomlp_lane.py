"""TopoMLP in the real-code lane: it applies the modern variant's patch files, and the driver's topology checks bite.

Why. The lane is only evidence for the modern variant if it runs the same code: its pins are held to the
variant's by tests/verification/test_pins.py (the shared [[substitutions]] format), its patches here. The topology
checks (verification/checks.py) are what stands between a frame or unit bug and a passing record: they must
fail on lanes in the wrong units, boxes in the resized input's pixels and malformed matrices.
"""
import json
from pathlib import Path

import pytest

from onlinemap.registry.spec import load_model_spec
from verification import checks

ROOT = Path(__file__).resolve().parents[2]


def test_the_variant_applies_the_same_modern_patch_files_the_lane_vouches_for():
    spec = load_model_spec(ROOT / "envs" / "TopoMLP", "modern")
    lane = sorted((ROOT / "envs" / "TopoMLP" / "patches" / "modern" / "repo").glob("*.patch"))
    assert lane and all(p in spec.patch_files("repo") for p in lane)


# ---- the driver-side topology checks, on a synthetic OpenLane-V2 frame -------------------------------------

@pytest.fixture(scope="module")
def openlane(tmp_path_factory):
    from onlinemap.data.synth_openlane import write_synthetic_openlane
    from onlinemap.harness.openlane_index import ordered_samples

    root = tmp_path_factory.mktemp("olv2") / "OpenLane-V2"
    write_synthetic_openlane(root, segments=1, frames_per_segment=1)
    return root, ordered_samples(str(root), "data_dict_subset_A_val")


def _prediction(token, *, lane_scale=1.0, box=(100.0, 200.0, 1400.0, 1900.0), lane_lane=None):
    lanes = [{"id": 1000 + i, "score": 0.5, "points": [[(x - 5.0) * lane_scale, 3.5 * i * lane_scale, 0.0]
                                                        for x in range(11)]} for i in range(2)]
    te = [{"id": 2000, "label": "green", "score": 0.4, "box": list(box)}]
    return {"sample_token": token, "model": "TopoMLP",
            "topology": {"lanes": lanes, "traffic_elements": te,
                         "lane_lane": lane_lane if lane_lane is not None else [[0.0, 0.9], [0.1, 0.0]],
                         "lane_traffic": [[0.7], [0.2]]},
            "extra": {"lane_frame": "ego", "traffic_element_frame": "front camera pixels", "lane_points": 11}}


def _by_name(results):
    return {c["name"].split(":")[0]: c for c in results}


def test_topology_checks_pass_on_a_well_formed_prediction(openlane):
    root, samples = openlane
    out = checks.topology_checks([_prediction(samples[0]["token"])], samples, root)
    assert all(c["passed"] for c in out), json.dumps(out, indent=1)


def test_topology_checks_fail_on_lanes_in_millimetres(openlane):
    root, samples = openlane
    out = _by_name(checks.topology_checks([_prediction(samples[0]["token"], lane_scale=1000.0)], samples, root))
    assert not out["lane centerlines"]["passed"]


def test_topology_checks_fail_on_boxes_left_in_the_resized_inputs_pixels(openlane):
    root, samples = openlane
    # TopoMLP's input front view is 1024 x 775; the original ring_front_center image is 1550 x 2048
    out = _by_name(checks.topology_checks([_prediction(samples[0]["token"], box=(60.0, 50.0, 1000.0, 760.0))],
                                          samples, root))
    assert not out["traffic elements"]["passed"]


def test_topology_checks_fail_on_a_matrix_of_the_wrong_shape_or_range(openlane):
    root, samples = openlane
    token = samples[0]["token"]
    for bad in ([[0.0, 0.9]], [[0.0, 1.5], [0.1, 0.0]]):
        out = _by_name(checks.topology_checks([_prediction(token, lane_lane=bad)], samples, root))
        assert not out["topology matrices (N, N) and (N, M), probabilities in [0, 1]"]["passed"], bad
