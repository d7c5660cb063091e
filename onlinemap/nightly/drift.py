"""Output drift: tonight's predictions against a golden set, per model and dataset identity.

MLPerf's TEST01 idea for the nightly: timing can stay flat while the outputs change (a new kernel,
a changed weight file). Per model and dataset key (dataroot, version, sample-list hash: the fixed
sample list) the golden set is the predictions of the first good night, or of a run chosen with
``onlinemap nightly --golden RUN``; it lives in ``ONLINEMAP_HOME/nightly/golden/<model>-<key>/``
(``golden.json`` + a copy of ``predictions.jsonl``; ``history.jsonl`` records every (re)start and why).

Each night compares per sample: boxes (greedy nearest centre per label), polylines (greedy nearest
mean point distance per label) and plan waypoints; the max abs difference of the matched numbers
(centre, size, yaw, velocity, score; points; waypoints) and the change in counts. Drift beyond the
tolerance (``[drift] tolerance`` in the pack's published.toml, else :data:`DEFAULT_TOLERANCE`) or
any count change is a regression verdict ``output_drift``, judged like a latency regression.
Changing the env lock, the stack variant (env kind) or the backend starts a new golden set,
recorded with its reason; the night is then reported, not judged.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import shutil
from pathlib import Path

from onlinemap.fileio import iter_jsonl, read_json, write_json_atomic
from onlinemap.nightly.regress import Verdict

__all__ = ["DEFAULT_TOLERANCE", "DRIFT_FILE", "golden_dir", "identity_of", "load_golden", "set_golden",
           "compare_predictions", "drift_verdict", "tolerance_for"]

DEFAULT_TOLERANCE = 1e-3      # metres / radians / m/s / score: above float noise of a deterministic model
DRIFT_FILE = "drift.json"     # written into tonight's run directory
_IDENTITY = ("lock_hash", "env_kind", "backend")


def golden_dir(root: Path, model: str, dataset_key: tuple) -> Path:
    digest = hashlib.sha256(json.dumps(list(dataset_key), default=str).encode()).hexdigest()[:12]
    return Path(root) / "golden" / f"{model}-{digest}"


def identity_of(run_dir: Path) -> dict:
    """What, when it changes, starts a new golden set: the env lock, the stack variant, the backend."""
    rec = read_json(Path(run_dir) / "run.json")
    env = rec.get("env") or {}
    return {"lock_hash": env.get("lock_hash"), "env_kind": env.get("kind"),
            "backend": (rec.get("settings") or {}).get("backend") or "torch"}


def load_golden(folder: Path) -> dict | None:
    try:
        return read_json(Path(folder) / "golden.json")
    except (OSError, ValueError):
        return None


def set_golden(folder: Path, run_dir: Path, why: str) -> dict:
    """Make ``run_dir``'s predictions the golden set of ``folder``; append the reason to history.jsonl."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rec = read_json(Path(run_dir) / "run.json")
    shutil.copyfile(Path(run_dir) / "predictions.jsonl", folder / "predictions.jsonl.tmp")
    (folder / "predictions.jsonl.tmp").replace(folder / "predictions.jsonl")
    golden = {"run_id": rec.get("run_id"), "model": rec.get("model"), "identity": identity_of(run_dir),
              "set": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "why": why}
    write_json_atomic(folder / "golden.json", golden)
    with open(folder / "history.jsonl", "a") as fh:
        fh.write(json.dumps(golden) + "\n")
    return golden


def _by_token(path: Path) -> dict:
    return {p["sample_token"]: p for p in iter_jsonl(path) if isinstance(p, dict) and "sample_token" in p}


def _nums(values) -> list:
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out += _nums(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
    return out


def _max_abs(a, b) -> float:
    xa, xb = _nums(a), _nums(b)
    if len(xa) != len(xb):
        return math.inf
    return max((abs(x - y) for x, y in zip(xa, xb)), default=0.0)


def _greedy(golden: list, current: list, distance, fields) -> tuple[int, float]:
    """Match items of the same label greedily by ``distance``; (matched count, max abs of ``fields``)."""
    left = list(range(len(current)))
    matched, worst = 0, 0.0
    for g in golden:
        best = min((i for i in left if current[i].get("label") == g.get("label")),
                   key=lambda i: distance(g, current[i]), default=None)
        if best is None:
            continue
        left.remove(best)
        matched += 1
        c = current[best]
        worst = max(worst, _max_abs([g.get(f) for f in fields], [c.get(f) for f in fields]))
    return matched, worst


def _centre(a, b) -> float:
    return math.dist(_nums(a.get("center") or [])[:2] or [0, 0], _nums(b.get("center") or [])[:2] or [0, 0])


def _polyline(a, b) -> float:
    pa, pb = a.get("points") or [], b.get("points") or []
    if not pa or not pb:
        return math.inf
    return sum(math.dist(_nums([x])[:2], _nums([y])[:2]) for x, y in zip(pa, pb)) / min(len(pa), len(pb))


def compare_predictions(golden_path: Path, current_path: Path) -> dict:
    """Per-sample differences of two predictions.jsonl files (the golden set's sample list)."""
    golden, current = _by_token(golden_path), _by_token(current_path)
    per_sample, worst, count_changes, missing = [], 0.0, 0, []
    for token, g in golden.items():
        c = current.get(token)
        if c is None:
            missing.append(token)
            continue
        row = {"sample_token": token}
        for key, dist, fields in (("detections_3d", _centre, ("center", "size", "yaw", "velocity", "score")),
                                  ("map_elements", _polyline, ("points", "score"))):
            gl, cl = g.get(key) or [], c.get(key) or []
            if not gl and not cl:
                continue
            matched, m = _greedy(gl, cl, dist, fields)
            row[key] = {"golden": len(gl), "current": len(cl), "matched": matched, "max_abs": m}
            count_changes += (len(gl) != len(cl)) or (matched != len(gl))
            worst = max(worst, m)
        if g.get("plan") is not None or c.get("plan") is not None:
            m = _max_abs(g.get("plan"), c.get("plan"))
            row["plan"] = {"max_abs": m}
            worst = max(worst, m)
        per_sample.append(row)
    return {"samples": len(per_sample), "missing": missing, "count_changes": count_changes, "max_abs": worst,
            "per_sample": per_sample}


def _metric_deltas(golden_run: Path | None, run_dir: Path) -> dict:
    from onlinemap.report.compare import load_headline

    a = load_headline(golden_run) if golden_run else None
    b = load_headline(run_dir)
    if not a or not b:
        return {}
    return {k: b[k] - a[k] for k in a if k != "eval_samples" and a.get(k) is not None and b.get(k) is not None}


def tolerance_for(model_folder: Path | None) -> float:
    """``[drift] tolerance`` of the pack's published.toml, else the default."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    if model_folder is None:
        return DEFAULT_TOLERANCE
    try:
        data = tomllib.loads((Path(model_folder) / "published.toml").read_text())
    except (OSError, ValueError):
        return DEFAULT_TOLERANCE
    return float((data.get("drift") or {}).get("tolerance", DEFAULT_TOLERANCE))


def drift_verdict(model: str, run_dir: Path, dataset_key: tuple, *, root: Path, tolerance: float,
                  results_root: Path | None = None) -> Verdict:
    """Judge tonight's ``run_dir`` against the golden set (starting one when there is none or the
    identity changed); writes ``run_dir/drift.json``."""
    folder = golden_dir(root, model, dataset_key)
    golden = load_golden(folder)
    ident = identity_of(run_dir)
    if golden is None:
        set_golden(folder, run_dir, "first good night")
        return Verdict("output_drift", "no-history", note=f"golden set started from this run ({folder.name})")
    changed = [f"{k} {golden['identity'].get(k)} -> {ident.get(k)}" for k in _IDENTITY
               if golden["identity"].get(k) != ident.get(k)]
    if changed:
        set_golden(folder, run_dir, "new golden set: " + ", ".join(changed))
        return Verdict("output_drift", "no-history", note="new golden set: " + ", ".join(changed))
    diff = compare_predictions(folder / "predictions.jsonl", Path(run_dir) / "predictions.jsonl")
    golden_run = None
    try:
        from onlinemap.runs.store import find_run

        golden_run = find_run(golden["run_id"], results_root)
    except Exception:   # the golden run folder may have been cleaned up: deltas are then left out
        golden_run = None
    diff.update(golden_run=golden["run_id"], tolerance=tolerance, metric_deltas=_metric_deltas(golden_run, run_dir))
    write_json_atomic(Path(run_dir) / DRIFT_FILE, diff)
    drifted = diff["max_abs"] > tolerance or diff["count_changes"] > 0 or bool(diff["missing"])
    ratio = diff["max_abs"] / tolerance if tolerance > 0 and math.isfinite(diff["max_abs"]) else None
    note = (f"max abs {diff['max_abs']:.3g} vs golden {golden['run_id']} (tolerance {tolerance:g}), "
            f"{diff['count_changes']} count change(s), {len(diff['missing'])} missing sample(s)")
    return Verdict("output_drift", "regressed" if drifted else "ok", current=diff["max_abs"], baseline=0.0,
                   ratio=ratio if ratio is not None else math.inf, history_runs=1, note=note)
