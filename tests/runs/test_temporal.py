"""Temporal models timed as they run: each scene's first frame apart from the steady frames, and
a paced mode beside back-to-back (issue 16). Real runs of the torch-free ``temporalref`` pack."""
from __future__ import annotations

import json

from tests.conftest import only_run_dir, read_jsonl, run_cli


def _record(om_home) -> dict:
    return json.loads((only_run_dir(om_home) / "run.json").read_text())


def test_scene_first_frames_are_reported_apart_from_steady_frames(om_home):
    # the synthetic dataset: 2 scenes x 20 samples; warm-up 1 (scene 1's first frame), so the
    # measured samples hold exactly one scene start (scene 2's first frame)
    proc = run_cli("test", "--model", "temporalref", "--warmup", "1", "-n", "39", "--device", "cpu",
                   "--no-telemetry", env={"ONLINEMAP_TEST_FIRST_S": "0.05", "ONLINEMAP_TEST_STEADY_S": "0.001"})
    assert proc.returncode == 0, proc.stderr
    t = _record(om_home)["summary"]["temporal"]
    first, steady = t["scene_first_forward"], t["steady_forward"]
    assert first["count"] == 1 and steady["count"] == 38
    assert first["min"] >= 50.0 > steady["max"]


def test_a_non_temporal_pack_has_no_split(om_home):
    proc = run_cli("test", "--model", "crashref", "-n", "3", "--warmup", "0", "--device", "cpu", "--no-telemetry")
    assert proc.returncode == 0, proc.stderr
    assert _record(om_home)["summary"]["temporal"] is None


def test_paced_mode_starts_samples_at_the_rate(om_home):
    proc = run_cli("test", "--model", "temporalref", "--warmup", "1", "-n", "8", "--rate", "20", "--device", "cpu",
                   "--no-telemetry", env={"ONLINEMAP_TEST_FIRST_S": "0.001", "ONLINEMAP_TEST_STEADY_S": "0.001"})
    assert proc.returncode == 0, proc.stderr
    record = _record(om_home)
    assert record["summary"]["paced_hz"] == 20.0 and record["settings"]["rate_hz"] == 20.0
    times = [s["t"] for s in read_jsonl(only_run_dir(om_home) / "samples.jsonl")]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # back-to-back these samples take ~1 ms each; paced at 20 Hz they are 50 ms apart on average
    assert sum(gaps) / len(gaps) >= 0.045
    assert record["summary"]["wall_s"] >= 8 * 0.05 - 0.01


def test_a_bad_rate_is_exit_2(om_home):
    proc = run_cli("test", "--model", "temporalref", "--rate", "0", "--device", "cpu")
    assert proc.returncode == 2 and "more than 0 Hz" in proc.stderr
