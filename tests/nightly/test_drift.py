"""Output drift in the nightly with the real reference model: a perturbed weight is caught, an
unchanged night is not, a changed identity starts a new golden set (recorded), --golden picks one.

Latency/memory are kept out of the verdicts (min_history larger than the nights run), so the exit
code answers for drift alone.
"""
from __future__ import annotations

import json
from pathlib import Path

from onlinemap.nightly.drift import compare_predictions
from tests.conftest import run_cli

CONFIG = ('models = ["reference"]\nsamples = 4\nwarmup = 0\ndevice = "cpu"\nmin_history = 100\n'
          '[options]\nimage_height = 32\nimage_width = 32\nwidth = 4\n{extra}')


def _night(om_home, night, extra="", plots=False):
    cfg = om_home / "nightly.toml"
    cfg.write_text(CONFIG.format(extra=extra))
    proc = run_cli("nightly", "--config", str(cfg), "--json", *([] if plots else ["--no-plots"]), "--night", night,
                   timeout=600)
    out = json.loads(proc.stdout)
    (model,) = out["models"]
    drift = next(v for v in model["verdicts"] if v["metric"] == "output_drift")
    return proc, model, drift


def test_perturbed_weight_is_caught_and_unchanged_night_is_not(om_home):
    proc, m1, d1 = _night(om_home, "n1")
    assert proc.returncode == 0, proc.stderr
    assert d1["status"] == "no-history" and "golden set started" in d1["note"]
    golden = next((om_home / "nightly" / "golden").iterdir())
    assert json.loads((golden / "golden.json").read_text())["run_id"] == m1["run_id"]

    proc, m2, d2 = _night(om_home, "n2", plots=True)       # same model, same weights: no drift
    assert proc.returncode == 0, (d2, proc.stderr)
    index = om_home / "nightly" / "site" / "index.html"    # the nightly also updates the HTML dashboard
    assert index.is_file() and m2["run_id"] in "".join(p.name for p in (index.parent / "runs").iterdir())
    assert d2["status"] == "ok" and d2["current"] == 0.0
    drift = json.loads((Path(m2["run_dir"]) / "drift.json").read_text())
    assert drift["samples"] == 4 and drift["count_changes"] == 0 and drift["golden_run"] == m1["run_id"]

    proc, m3, d3 = _night(om_home, "n3", "seed = 1\n", plots=True)   # another weight init: outputs move
    assert proc.returncode == 1, proc.stderr
    assert d3["status"] == "regressed" and d3["current"] > 1e-3
    assert "output_drift" in (om_home / "nightly" / "n3" / "report.md").read_text()
    assert (om_home / "nightly" / "n3" / "trend-reference.png").is_file()   # tonight ringed: "output drift"

    # a changed env lock starts a new golden set, with the reason, never silently
    meta = json.loads((golden / "golden.json").read_text())
    meta["identity"]["lock_hash"] = "oldlock"
    (golden / "golden.json").write_text(json.dumps(meta))
    proc, m4, d4 = _night(om_home, "n4")
    assert proc.returncode == 0 and d4["status"] == "no-history"
    assert "new golden set: lock_hash oldlock ->" in d4["note"]
    history = (golden / "history.jsonl").read_text().splitlines()
    assert len(history) == 2 and "lock_hash oldlock" in json.loads(history[-1])["why"]

    # --golden RUN makes a chosen run the golden set: then the seed-1 night is the reference
    chosen = run_cli("nightly", "--golden", m3["run_id"], check=True)
    assert m3["run_id"] in chosen.stdout
    assert json.loads((golden / "golden.json").read_text())["run_id"] == m3["run_id"]
    assert compare_predictions(golden / "predictions.jsonl", Path(m3["run_dir"]) / "predictions.jsonl")["max_abs"] == 0
