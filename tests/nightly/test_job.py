"""``onlinemap nightly`` end to end with a real model: history, regression exit code, restarts, crashes.

Timings on a shared, loaded CPU box swing by tens of percent between two runs and within one, so
the verdicts are made deterministic: tonight's run is real (a real model process, run.json,
samples, the state file), then its samples' forward times are set to a known distribution, a
history is planted next to it (20 % faster, or the same plus noise), and the night is restarted,
which re-judges the run it already has (a restart does not re-run a finished model). The rule's
statistics on their own are tested in test_regress.py.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli

CONFIG = ('models = ["slowref"]\nsamples = 20\nwarmup = 1\ndevice = "cpu"\nmin_history = 3\n'
          '[options]\nimage_height = 32\nimage_width = 32\nwidth = 4\n')
ENV = {"ONLINEMAP_TEST_SLEEP_S": "0.01"}


def _nightly(om_home, *args):
    cfg = om_home / "nightly.toml"
    cfg.write_text(CONFIG)
    return run_cli("nightly", "--config", str(cfg), "--json", *args, env=ENV)


def _plant_history(run_dir: Path, copies: int, sample_forward, seed=0) -> list[Path]:
    """``copies`` earlier nightly runs cloned from run_dir, each sample's forward_ms = sample_forward(rng, samples)."""
    rng = random.Random(seed)
    rec = json.loads((run_dir / "run.json").read_text())
    created = dt.datetime.fromisoformat(rec["created"])
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    measured = [s["forward_ms"] for s in samples if not s["warmup"]]
    out = []
    for i in range(copies):
        rid = f"2000010{i}-000000-slowref-hist{i:02d}"
        dest = run_dir.parent / rid
        shutil.copytree(run_dir, dest)
        (dest / "run.json").write_text(json.dumps(dict(rec, run_id=rid,
                                                       created=(created - dt.timedelta(days=copies - i)).isoformat())))
        lines = [json.dumps(dict(s, forward_ms=sample_forward(rng, measured))) for s in samples]
        (dest / "samples.jsonl").write_text("\n".join(lines) + "\n")
        out.append(dest)
    return out


def test_nightly_flags_a_planted_slowdown_and_not_noise(om_home):
    first = _nightly(om_home, "--night", "n1")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    tonight = Path(out["models"][0]["run_dir"])
    assert out["models"][0]["verdicts"][0]["status"] == "no-history"

    rng = random.Random(7)
    lines = [json.loads(line) for line in (tonight / "samples.jsonl").read_text().splitlines()]
    (tonight / "samples.jsonl").write_text("".join(json.dumps(dict(s, forward_ms=rng.gauss(60.0, 1.5))) + "\n"
                                                   for s in lines))
    # history 20 % faster than tonight -> tonight is a 1.2x slowdown; the restart re-judges, does not re-run
    history = _plant_history(tonight, 5, lambda rng, m: rng.gauss(50.0, 1.5))
    slow = _nightly(om_home, "--night", "n1")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    entry = json.loads(slow.stdout)["models"][0]
    assert entry["reused"] is True and entry["run_dir"] == str(tonight)
    lat = entry["verdicts"][0]
    assert lat["metric"] == "forward_ms" and lat["status"] == "regressed" and lat["history_runs"] == 5
    assert 1.15 < lat["ratio"] < 1.25 and lat["p_value"] < 0.002
    report = (om_home / "nightly" / "n1" / "report.md").read_text()
    assert "REGRESSION" in report and "**regressed**" in report
    assert (om_home / "nightly" / "n1" / "trend-slowref.png").stat().st_size > 1000

    # the same speed plus noise (tonight's own samples, resampled): nothing flagged
    for p in history:
        shutil.rmtree(p)
    _plant_history(tonight, 5, lambda rng, m: rng.choice(m) * rng.gauss(1.0, 0.03), seed=1)
    same = _nightly(om_home, "--night", "n1")
    assert same.returncode == 0, same.stdout + same.stderr
    assert json.loads(same.stdout)["models"][0]["verdicts"][0]["status"] in ("ok", "improved")

    # --force re-runs the model
    runs_before = {p.name for p in (om_home / "results").iterdir()}
    forced = _nightly(om_home, "--night", "n1", "--force")
    assert forced.returncode in (0, 1), forced.stderr
    entry = json.loads(forced.stdout)["models"][0]
    assert entry["reused"] is False and Path(entry["run_dir"]).name not in runs_before


def test_crashed_previous_night_is_reported(om_home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (om_home / "nightly").mkdir()
    (om_home / "nightly" / ".lock").write_text(json.dumps({"pid": dead.pid, "hostname": socket.gethostname(),
                                                           "started": "2025-01-01T03:00", "night": "2025-01-01"}))
    crashed = om_home / "results" / "20250101-030000-slowref-dead00"
    crashed.mkdir(parents=True)
    (crashed / "run.json").write_text(json.dumps({
        "run_id": crashed.name, "model": "slowref", "status": "running", "schema_version": 1, "kind": "nightly",
        "created": "2025-01-01T03:00:00+00:00", "tags": {"nightly": "2025-01-01"},
        "driver": {"pid": dead.pid, "hostname": socket.gethostname()}}))
    (om_home / "nightly.toml").write_text('models = ["nosuchmodel-x"]\n')
    proc = run_cli("nightly", "--night", "2025-01-02", "--no-plots")
    assert proc.returncode == 2 and "nosuchmodel" in proc.stderr        # unknown model: usage error, lock released
    (om_home / "nightly" / ".lock").write_text(json.dumps({"pid": dead.pid, "hostname": socket.gethostname(),
                                                           "started": "2025-01-01T03:00", "night": "2025-01-01"}))
    (om_home / "nightly.toml").write_text('models = ["badpred"]\nsamples = 2\nwarmup = 0\ndevice = "cpu"\n')
    proc = run_cli("nightly", "--night", "2025-01-02", "--no-plots")
    assert proc.returncode == 1, proc.stderr                          # badpred's run fails -> exit 1
    assert f"pid {dead.pid}" in proc.stderr and "crashed" in proc.stderr
    assert crashed.name in proc.stderr
    report = (om_home / "nightly" / "2025-01-02" / "report.md").read_text()
    assert "previous nightly job crashed" in report and crashed.name in report and "## Failures" in report


def test_history_on_other_data_is_never_compared(om_home):
    """Earlier nights on another dataroot, another version or another sample list are not history."""
    first = _nightly(om_home, "--night", "n1")
    assert first.returncode == 0, first.stderr
    tonight = Path(json.loads(first.stdout)["models"][0]["run_dir"])
    rng = random.Random(7)
    lines = [json.loads(line) for line in (tonight / "samples.jsonl").read_text().splitlines()]
    (tonight / "samples.jsonl").write_text("".join(json.dumps(dict(s, forward_ms=rng.gauss(60.0, 1.5))) + "\n"
                                                   for s in lines))
    history = _plant_history(tonight, 5, lambda rng, m: rng.gauss(50.0, 1.5))   # 1.2x faster: would regress
    for i, run in enumerate(history):
        rec = json.loads((run / "run.json").read_text())
        job = json.loads((run / "job.json").read_text())
        if i < 2:
            rec["settings"]["dataroot"] = "/workspace/nuscenes"          # real data, not the synthetic set
        elif i < 4:
            rec["settings"]["version"] = "v1.0-trainval"
        else:
            job["samples"] = list(reversed(job["samples"]))              # another sample list
        (run / "run.json").write_text(json.dumps(rec))
        (run / "job.json").write_text(json.dumps(job))
    judged = _nightly(om_home, "--night", "n1")
    assert judged.returncode == 0, judged.stdout + judged.stderr
    lat = json.loads(judged.stdout)["models"][0]["verdicts"][0]
    assert lat["status"] == "no-history" and lat.get("history_runs", 0) == 0, lat
