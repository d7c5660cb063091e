"""Does a model reproduce its paper? Run it on the published split, evaluate, compare with ``published.toml``.

Each pack's ``envs/<Model>/published.toml`` holds the upstream numbers (value, unit, the onlinemap
metric ``key`` it compares with, an absolute ``tolerance`` in the same unit) and their source
(repo, commit, README line, config, dataset, split). :func:`reproduce` runs the model on that
split (or a seeded subset), evaluates it with ``onlinemap.evaluation`` and judges:

- ``reproduces``: the run is comparable and every published metric is within its tolerance;
- ``deviates``: comparable, and at least one metric is outside its tolerance;
- ``not comparable``: a subset, another dataset (the synthetic one, unless the pack's published
  numbers are about it), another split, or a published metric the project does not compute.

Published units are converted to the project's scale in one place (:func:`to_project_scale`:
``%`` -> 0-1 fraction). The verdict goes to the run's ``reproduction.json`` and, as
``tags.reproduction`` (verdict, published file, reasons), into its run.json, which ``compare``,
the report and the dashboard read.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from onlinemap.errors import SpecError, UsageError
from onlinemap.fileio import read_json, write_json_atomic
from onlinemap.report.compare import ACCURACY_KEYS

__all__ = ["PUBLISHED_FILE", "REPRODUCTION_FILE", "VERDICTS", "METRIC_PATHS", "PublishedMetric", "Published",
           "load_published", "to_project_scale", "unknown_keys", "dataset_identity", "split_of",
           "choose_samples", "judge", "reproduce", "verdict_of"]

PUBLISHED_FILE = "published.toml"
REPRODUCTION_FILE = "reproduction.json"
VERDICTS = ("reproduces", "deviates", "not comparable")
DEFAULT_SEED = 0

#: published key -> (metrics.json section, path inside it): the compare table's headline keys plus
#: the averages some papers publish. A key missing here is a metric the project does not compute.
METRIC_PATHS = {
    **ACCURACY_KEYS,
    "plan_L2_avg": ("planning", ("L2_avg",)),
    "plan_collision_avg": ("planning", ("collision_avg",)),
}

#: published unit -> factor to the project's scale (metrics.json: fractions 0-1, metres)
_UNIT_FACTOR = {"%": 0.01, "fraction": 1.0, "m": 1.0}


def to_project_scale(value: float, unit: str) -> float:
    """A published ``value`` in ``unit`` on the scale metrics.json uses (``%`` -> fraction; ``m`` stays)."""
    try:
        return float(value) * _UNIT_FACTOR[unit]
    except KeyError:
        raise SpecError(f"unknown unit {unit!r} in {PUBLISHED_FILE}",
                        f"use one of {', '.join(sorted(_UNIT_FACTOR))}") from None


@dataclass
class PublishedMetric:
    name: str
    key: str
    value: float
    unit: str
    tolerance: float

    @property
    def value_project(self) -> float:
        return to_project_scale(self.value, self.unit)

    @property
    def tolerance_project(self) -> float:
        return to_project_scale(self.tolerance, self.unit)


@dataclass
class Published:
    path: Path
    source: dict
    metrics: list = field(default_factory=list)


def load_published(folder: Path) -> Published:
    """Read ``folder/published.toml``; SpecError (one line) when absent or malformed."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    path = Path(folder) / PUBLISHED_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path} does not exist: no published numbers to compare with",
                        "add the upstream README's numbers with their source (docs/reports.md)") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    metrics = []
    for name, m in (data.get("metrics") or {}).items():
        try:
            metric = PublishedMetric(name=name, key=str(m["key"]), value=float(m["value"]), unit=str(m["unit"]),
                                     tolerance=float(m["tolerance"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"{path}: [metrics.{name}] needs key, value, unit and tolerance ({exc})") from None
        to_project_scale(metric.value, metric.unit)   # refuses an unknown unit now
        metrics.append(metric)
    if not metrics:
        raise SpecError(f"{path} lists no [metrics.*]", "add at least one published metric")
    return Published(path=path, source=dict(data.get("source") or {}), metrics=metrics)


def unknown_keys(published: Published) -> list[str]:
    """Published keys that onlinemap.evaluation does not write (e.g. OpenLane-V2's OLS today)."""
    return [m.key for m in published.metrics if m.key not in METRIC_PATHS]


def dataset_identity(dataroot: Path, needs=("nuscenes",), version: str | None = None) -> str:
    """The dataset a run used, as published.toml names it: ``nuScenes``, ``OpenLane-V2-subset-A``, or
    ``synthetic <that>`` for a dataset written by ``onlinemap data synth``."""
    from onlinemap.data.selection import source_of
    from onlinemap.data.synth import marker_file

    base = "nuScenes"
    if source_of(needs) == "openlane_v2":
        base = "OpenLane-V2-subset-B" if "subset_B" in str(version or "") else "OpenLane-V2-subset-A"
    return f"synthetic {base}" if marker_file(Path(dataroot)) is not None else base


def split_of(version: str) -> str:
    """The evaluation split a version's val scenes are: ``val`` (v1.0-trainval), ``mini_val`` (v1.0-mini)."""
    return {"v1.0-trainval": "val", "v1.0-mini": "mini_val"}.get(version, "val" if "val" in version else version)


def choose_samples(dataroot: Path, version: str, *, needs=("nuscenes",), samples: int | None = None,
                   seed: int = DEFAULT_SEED) -> tuple[list[str], int]:
    """Tokens of the evaluation split (all, or ``samples`` of them drawn with ``seed``, kept in driving
    order so temporal models see frames in sequence) and the split's size."""
    from onlinemap.data.selection import _eval_scene_names, source_of
    from onlinemap.errors import DatasetError
    from onlinemap.harness import nuscenes_index, openlane_index

    if source_of(needs) == "openlane_v2":
        ordered = openlane_index.ordered_samples(str(dataroot), version)   # the collection is the split
    else:
        scenes = set(_eval_scene_names(version))
        ordered = [s for s in nuscenes_index.ordered_samples(str(dataroot), version) if s["scene_name"] in scenes]
    if not ordered:
        raise DatasetError(f"{dataroot}/{version} has no sample of its evaluation split",
                           "check the dataroot and --version")
    if samples is None:
        return [s["token"] for s in ordered], len(ordered)
    if samples < 1:
        raise UsageError(f"--samples must be >= 1, got {samples}")
    if samples >= len(ordered):
        return [s["token"] for s in ordered], len(ordered)
    picked = set(random.Random(seed).sample(range(len(ordered)), samples))
    return [s["token"] for i, s in enumerate(ordered) if i in picked], len(ordered)


def _dig(data, path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def judge(published: Published, metrics: dict, *, dataset: str, split: str, evaluated: int, split_size: int,
          setting: dict | None = None) -> dict:
    """The verdict and its evidence for one evaluated run (pure: no I/O)."""
    reasons = []
    want_dataset, want_split = published.source.get("dataset"), published.source.get("split")
    if want_dataset and dataset != want_dataset:
        reasons.append(f"dataset is {dataset}, the paper's is {want_dataset}")
    if want_split and split != want_split:
        reasons.append(f"split is {split}, the paper's is {want_split}")
    if evaluated < split_size:
        reasons.append(f"a subset: {evaluated} of the split's {split_size} samples")
    rows, deviating = [], []
    for m in published.metrics:
        where = METRIC_PATHS.get(m.key)
        measured = _dig(metrics.get(where[0]), where[1]) if where else None
        row = {"name": m.name, "key": m.key, "unit_published": m.unit, "published_as_written": m.value,
               "published": m.value_project, "tolerance": m.tolerance_project, "measured": measured,
               "difference": None, "within": None}
        if where is None:
            reasons.append(f"{m.key} is not computed by onlinemap.evaluation")
        elif measured is None:
            reasons.append(f"{m.key} was not measured (the run has no {where[0]} result)")
        else:
            row["difference"] = measured - m.value_project
            row["within"] = abs(row["difference"]) <= m.tolerance_project + 1e-12
            if not row["within"]:
                deviating.append(m.key)
        rows.append(row)
    verdict = "not comparable" if reasons else ("deviates" if deviating else "reproduces")
    return {"verdict": verdict, "reasons": reasons, "deviating": deviating, "metrics": rows,
            "dataset": dataset, "split": split, "evaluated_samples": evaluated, "split_samples": split_size,
            "published_file": str(published.path), "source": published.source,
            "setting": dict(setting or {}), "differs_from_paper": _setting_differences(setting or {})}


def _setting_differences(setting: dict) -> list[str]:
    """What of this run's setting is not the paper's (the papers ran PyTorch fp32 on their own stack)."""
    out = []
    if setting.get("backend") not in (None, "torch"):
        out.append(f"backend {setting['backend']} (paper: PyTorch)")
    if setting.get("options"):
        out.append(f"options {json.dumps(setting['options'], sort_keys=True)} (paper: the config's defaults)")
    if setting.get("fp16"):
        out.append("fp16 (paper: fp32 evaluation)")
    if setting.get("env_kind") not in (None, "conda", "host"):
        out.append(f"stack variant {setting['env_kind']} (paper: the pinned upstream stack)")
    out.append(f"device {setting.get('device') or 'n/a'}, GPU {setting.get('gpu') or 'none'} (paper's GPU not judged)")
    return out


def verdict_of(run_dir: Path) -> str | None:
    """The reproduction verdict recorded in a run's run.json tags (None when it was not a reproduction)."""
    try:
        tags = (read_json(Path(run_dir) / "run.json") or {}).get("tags") or {}
    except (OSError, ValueError):
        return None
    rep = tags.get("reproduction") if isinstance(tags, dict) else None
    return rep.get("verdict") if isinstance(rep, dict) else None


def reproduce(model: str, *, samples: int | None = None, seed: int = DEFAULT_SEED,
              dataroot: Path | str | None = None, version: str | None = None, device: str | None = "auto",
              backend: str = "torch", options: dict | None = None, results_root: Path | None = None,
              echo: bool = False) -> dict:
    """Run ``model`` on its published split (or ``samples`` of it, seeded), evaluate, judge; return the
    judgement (also in ``run_dir/reproduction.json`` and run.json ``tags.reproduction``)."""
    from onlinemap import api
    from onlinemap.data.selection import default_dataroot_for, resolve_dataset
    from onlinemap.errors import ResultsError
    from onlinemap.evaluation.run import evaluate_run
    from onlinemap.registry import find_model
    from onlinemap.runner import run_model
    from onlinemap.runs.store import load_run, save_run

    spec = find_model(model)
    published = load_published(spec.folder)
    needs = spec.data.needs or ("nuscenes",)
    root, version = resolve_dataset(Path(dataroot) if dataroot else default_dataroot_for(needs), version, needs)
    tokens, split_size = choose_samples(root, version, needs=needs, samples=samples, seed=seed)
    plan = {"published_file": str(published.path), "seed": seed if samples is not None else None,
            "requested_samples": samples, "split_samples": split_size}
    settings = api._settings("test", samples=len(tokens), warmup=0, dataroot=root, version=version, device=device,
                             sample_tokens=tokens, scenes=None, timeout_s=None, inactivity_s=api.DEFAULT_INACTIVITY_S,
                             timer="wall", telemetry=True, exclusive=False, echo=echo, options=options,
                             min_samples=len(tokens), min_duration_s=0.0, tags={"reproduction": dict(plan, verdict=None)},
                             backend=backend)
    outcome = run_model(spec, settings, results_root=results_root)
    if outcome.status != "ok":
        raise ResultsError(f"{model} run {outcome.run_id} ended {outcome.status}: nothing to compare",
                           f"see {outcome.run_dir / 'log.txt'}", exit_code=outcome.exit_code)
    metrics = evaluate_run(outcome.run_dir)
    rec = load_run(outcome.run_dir)
    gpu = rec.gpu or {}
    setting = {"backend": backend, "options": dict(options or {}), "fp16": bool((options or {}).get("fp16")),
               "device": (rec.settings or {}).get("device"), "gpu": gpu.get("name") if gpu.get("available") else None,
               "env_kind": (rec.env or {}).get("kind"), "lock_hash": (rec.env or {}).get("lock_hash")}
    result = judge(published, metrics, dataset=dataset_identity(root, needs, version), split=split_of(version),
                   evaluated=int(metrics.get("samples") or 0), split_size=split_size, setting=setting)
    result.update(model=spec.name, run_id=outcome.run_id, run_dir=str(outcome.run_dir), seed=plan["seed"])
    write_json_atomic(outcome.run_dir / REPRODUCTION_FILE, result)
    rec.tags = dict(rec.tags or {}, reproduction=dict(plan, verdict=result["verdict"], reasons=result["reasons"],
                                                      deviating=result["deviating"]))
    save_run(outcome.run_dir, rec)
    return result
