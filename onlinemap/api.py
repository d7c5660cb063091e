"""The Python API that the CLI, notebooks and cron all call (``import onlinemap as om``).

Keyword-only functions with defaults defined once (in runner.py), so the CLI and a notebook
cannot drift apart. Heavy modules (pandas, torch, pynvml) are imported inside the functions.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from onlinemap.runner import (DEFAULT_INACTIVITY_S, DEFAULT_MIN_DURATION_S, DEFAULT_MIN_SAMPLES,
                              DEFAULT_TEST_SAMPLES, DEFAULT_WARMUP, RunOutcome, RunSettings)

if TYPE_CHECKING:
    import pandas

__all__ = ["models", "model_status", "test", "bench", "results", "list_runs", "default_device", "BenchResult",
           "evaluate", "compare", "report", "viz"]

log = logging.getLogger(__name__)


def default_device() -> str:
    """``cuda:0`` when NVML sees an NVIDIA GPU, else ``cpu``."""
    from onlinemap.telemetry.nvml import load_nvml

    nvml, _reason = load_nvml()
    if nvml is None:
        return "cpu"
    try:
        return "cuda:0" if nvml.device_count() > 0 else "cpu"
    finally:
        nvml.shutdown()


def _device(device: str | None) -> str:
    return default_device() if device in (None, "", "auto") else device


def model_status(name: str, *, dataroot: Path | None = None) -> dict:
    """One model's spec summary and readiness checks (env, repo, weights, data)."""
    from onlinemap.readiness import check_model
    from onlinemap.registry import find_model

    spec = find_model(name)
    checks = check_model(spec, dataroot)
    install = [c for c in checks if c.step != "data"]
    return {"name": spec.name, "task": spec.task, "env_kind": spec.env_kind, "outputs": spec.outputs,
            "temporal": spec.temporal, "installed": all(c.ok for c in install),
            "ready": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}


def models(*, dataroot: Path | None = None) -> list[dict]:
    """Every model under envs/, with its task, env kind and readiness."""
    from onlinemap.errors import SpecError
    from onlinemap.registry.discover import known_model_names

    rows = []
    for name in known_model_names():
        try:
            rows.append(model_status(name, dataroot=dataroot))
        except SpecError as exc:   # one bad pack is a row of its own, not the end of the listing
            rows.append({"name": name, "task": None, "env_kind": None, "outputs": [], "temporal": None,
                         "installed": False, "ready": False,
                         "checks": [{"step": "model.toml", "ok": False, "detail": exc.message, "fix": exc.hint}]})
    return rows


def unique(values, what: str) -> list:
    """``values`` in order without repeats; a repeat is noted once (it would otherwise be run or measured twice)."""
    values = list(values or [])
    seen = list(dict.fromkeys(values))
    if len(seen) != len(values):
        dupes = sorted({v for v in values if values.count(v) > 1})
        log.warning("%s given more than once (%s): each is used once", what, ", ".join(map(str, dupes)))
    return seen


def _settings(kind: str, *, samples, warmup, dataroot, version, device, sample_tokens, scenes, timeout_s,
              inactivity_s, timer, telemetry, exclusive, echo, options, min_samples, min_duration_s,
              telemetry_period_s=None, tags=None, backend="torch", refuse_throttled=False,
              ci_target_pct=None, max_duration_s=None, rate_hz=None, variant=None) -> RunSettings:
    s = RunSettings(kind=kind, samples=samples, warmup=warmup, dataroot=Path(dataroot) if dataroot else None,
                    version=version, device=_device(device), sample_tokens=list(sample_tokens or []),
                    scenes=list(scenes or []), timeout_s=timeout_s, inactivity_s=inactivity_s, timer=timer,
                    telemetry=telemetry, exclusive=exclusive, refuse_throttled=refuse_throttled, echo=echo,
                    ci_target_pct=ci_target_pct, max_duration_s=max_duration_s, rate_hz=rate_hz,
                    options=dict(options or {}),
                    min_samples=min_samples, min_duration_s=min_duration_s, tags=dict(tags or {}),
                    backend=backend or "torch", variant=variant or None)
    if telemetry_period_s:
        s.telemetry_period_s = telemetry_period_s
    return s


def _variant_for(spec, variant: str | None) -> str | None:
    """``variant`` when ``spec`` has it (bench over several models), else None (the model's own choice)."""
    if variant and variant not in spec.variant_names:
        log.warning("%s has no env variant %r: its variant is chosen from the GPU", spec.name, variant)
        return None
    return variant


def test(model: str, *, samples: int | None = DEFAULT_TEST_SAMPLES, warmup: int = DEFAULT_WARMUP,
         dataroot: Path | str | None = None, version: str | None = None, device: str | None = "auto",
         sample_tokens: list[str] | None = None, scenes: list[str] | None = None, timeout_s: float | None = None,
         inactivity_s: float | None = DEFAULT_INACTIVITY_S, timer: str = "wall", telemetry: bool = True,
         exclusive: bool = False, echo: bool = True, options: dict | None = None,
         refuse_throttled: bool = False, ci_target_pct: float | None = None,
         max_duration_s: float | None = None, rate_hz: float | None = None,
         min_samples: int = DEFAULT_MIN_SAMPLES, min_duration_s: float = DEFAULT_MIN_DURATION_S,
         results_root: Path | None = None, progress: bool | Callable[[dict], None] | None = None,
         variant: str | None = None) -> RunOutcome:
    """Smoke-run one model on a few samples; returns the outcome (``.status``, ``.run_dir``, ``.record``).

    ``progress=True`` shows the same bar as :func:`bench`; a callable gets each finished sample instead.
    ``variant``: the env variant (paper | modern ...); default: chosen from the GPU's compute capability.
    """
    from onlinemap.registry import find_model
    from onlinemap.runner import run_model

    spec = find_model(model)
    sample_tokens = unique(sample_tokens, "sample token")
    if sample_tokens and samples is not None:
        samples = min(samples, len(sample_tokens))
    settings = _settings("test", samples=samples, warmup=warmup, dataroot=dataroot, version=version, device=device,
                         sample_tokens=sample_tokens, scenes=scenes, timeout_s=timeout_s, inactivity_s=inactivity_s,
                         timer=timer, telemetry=telemetry, exclusive=exclusive, echo=echo, options=options,
                         min_samples=min_samples, min_duration_s=min_duration_s,
                         refuse_throttled=refuse_throttled, ci_target_pct=ci_target_pct,
                         max_duration_s=max_duration_s, rate_hz=rate_hz, variant=variant)
    bar = None
    if progress is True:
        bar = _ProgressBar(spec.name, None if samples is None else samples + warmup, warmup)
        progress = bar.update
    try:
        return run_model(spec, settings, results_root=results_root, progress=progress or None)
    finally:
        if bar is not None:
            bar.close()


class BenchResult(list):
    """The outcomes of a bench, in order; ``skipped`` lists (model, reason) not run; ``interrupted`` says why it stopped."""

    def __init__(self):
        super().__init__()
        self.skipped: list[tuple[str, str]] = []
        self.interrupted = False

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.interrupted and all(o.status == "ok" for o in self)


def bench(models: str | list[str] = "all", *, samples: int | None = None, warmup: int = DEFAULT_WARMUP,
          min_samples: int = DEFAULT_MIN_SAMPLES, min_duration_s: float = DEFAULT_MIN_DURATION_S,
          dataroot: Path | str | None = None, version: str | None = None, device: str | None = "auto",
          scenes: list[str] | None = None, timeout_s: float | None = None,
          inactivity_s: float | None = DEFAULT_INACTIVITY_S, timer: str = "wall", telemetry: bool = True,
          telemetry_period_s: float | None = None, exclusive: bool = False, echo: bool = False,
          progress: bool = True, results_root: Path | None = None, options: dict | None = None,
          tags: dict | None = None, gpus: str | list[str] | None = None, backend: str = "torch",
          refuse_throttled: bool = False, ci_target_pct: float | None = None,
          max_duration_s: float | None = None, rate_hz: float | None = None,
          variant: str | None = None) -> BenchResult:
    """Benchmark several models in turn, the same way; models that are not ready are skipped and listed.

    Ctrl-C stops the model that is running (its finished samples are kept) and the bench itself.
    ``gpus`` (``"all"``, ``"0,1"`` or a list of device strings): run the models in parallel, one
    model process per device, each measured on its own device (scheduler.py); ``device`` is then unused.
    ``backend``: torch (the adapter's forward) or an exported artifact's runtime (docs/backends.md).
    ``variant``: the env variant for the models that have it (the others run their only one);
    default: each model's variant is chosen from the GPU.
    """
    from onlinemap.errors import MissingPrerequisiteError, SpecError
    from onlinemap.registry import find_model
    from onlinemap.registry.discover import resolve_model_names
    from onlinemap.runner import run_model

    names = resolve_model_names(models)
    if gpus is None:     # in turn, a repeat would only measure the same thing twice; with --gpus it is one per device
        names = unique(names, "model")
    result = BenchResult()
    if gpus is not None:
        from onlinemap.scheduler import resolve_gpus, run_scheduled

        devices = resolve_gpus(gpus)

        def run_one(name, dev, on_run_dir):
            settings = _settings("bench", samples=samples, warmup=warmup, dataroot=dataroot, version=version,
                                 device=dev, sample_tokens=None, scenes=scenes, timeout_s=timeout_s,
                                 inactivity_s=inactivity_s, timer=timer, telemetry=telemetry, exclusive=exclusive,
                                 echo=echo, options=options, min_samples=min_samples,
                                 min_duration_s=min_duration_s, telemetry_period_s=telemetry_period_s, tags=tags,
                                 backend=backend, refuse_throttled=refuse_throttled, ci_target_pct=ci_target_pct,
                                 max_duration_s=max_duration_s, rate_hz=rate_hz,
                                 variant=_variant_for(find_model(name), variant))
            return run_model(find_model(name), settings, results_root=results_root, on_run_dir=on_run_dir)

        runs, result.interrupted = run_scheduled(names, devices, run_one)
        for r in runs:
            if isinstance(r.error, (MissingPrerequisiteError, SpecError)):
                result.skipped.append((r.model, r.error.one_line()))
            elif r.error is not None:
                raise r.error
            elif r.outcome is not None:
                result.append(r.outcome)
            else:
                result.skipped.append((r.model, "not run: the bench was interrupted first"))
        return result
    for name in names:
        try:
            spec = find_model(name)
        except SpecError as exc:   # a malformed pack under --models all: skipped as a row, the others run
            log.warning("skipping %s: %s", name, exc.one_line())
            result.skipped.append((name, exc.one_line()))
            continue
        settings = _settings("bench", samples=samples, warmup=warmup, dataroot=dataroot, version=version,
                             device=device, sample_tokens=None, scenes=scenes, timeout_s=timeout_s,
                             inactivity_s=inactivity_s, timer=timer, telemetry=telemetry, exclusive=exclusive,
                             echo=echo, options=options, min_samples=min_samples, min_duration_s=min_duration_s,
                             telemetry_period_s=telemetry_period_s, tags=tags, backend=backend,
                             refuse_throttled=refuse_throttled, ci_target_pct=ci_target_pct,
                             max_duration_s=max_duration_s, rate_hz=rate_hz,
                             variant=_variant_for(spec, variant))
        bar = _ProgressBar(name, None if samples is None else samples + warmup, warmup) if progress else None
        try:
            outcome = run_model(spec, settings, results_root=results_root, progress=bar.update if bar else None)
        except MissingPrerequisiteError as exc:   # listed in result.skipped (the CLI prints it under its table)
            log.info("skipping %s: %s", name, exc.one_line())
            result.skipped.append((name, exc.one_line()))
            continue
        finally:
            if bar is not None:
                bar.close()
        result.append(outcome)
        if outcome.status == "interrupted":
            result.interrupted = True
            break
    return result


class _ProgressBar:
    """A tqdm bar (terminal or Jupyter) fed by the samples the worker writes.

    The bar appears with the first sample: a model skipped before it starts leaves no empty ``0/N`` bar.
    """

    def __init__(self, model: str, total: int | None, warmup: int):
        self.model, self.total, self.warmup = model, total, warmup
        self.bar = None

    def update(self, sample: dict) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.model, unit="sample", leave=True, dynamic_ncols=True)
        self.bar.update(1)
        if sample.get("forward_ms") is not None:
            phase = "warm-up" if sample.get("warmup") else "measured"
            self.bar.set_postfix_str(f"{phase} forward {sample['forward_ms']:.1f} ms", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def list_runs(*, model: str | None = None, results_root: Path | None = None,
              limit: int | None = None) -> list[dict]:
    """Runs on disk, newest first: one flat dict per run with its effective status.

    ``limit``: stop after that many rows; run folders' names sort by time, so only the newest
    folders are read (``onlinemap results`` at 100k runs must not read them all). The listing
    lives in runs/listing.py, which the command imports without this module's runner.
    """
    from onlinemap.runs.listing import list_runs as _list_runs

    return _list_runs(model=model, results_root=results_root, limit=limit)


def results(*, model: str | None = None, samples: bool = False, results_root: Path | None = None) -> "pandas.DataFrame":
    """Every run on disk as a pandas DataFrame (dotted keys flattened); ``samples=True``: one row per sample."""
    from onlinemap.runs.load import load_runs_frame, load_samples_frame

    if samples:
        return load_samples_frame(results_root, model=model)
    return load_runs_frame(results_root, model=model)


def evaluate(run_ids: list[str] | None = None, *, latest: bool = False, models: str | list[str] | None = None,
             dataroot: Path | str | None = None, version: str | None = None,
             results_root: Path | None = None) -> list[dict]:
    """Evaluate runs' accuracy (writes each run's metrics.json); one dict per run, in order.

    Runs are ``run_ids`` (unique prefixes are enough) or, with ``latest``/``models``, the newest ok
    run of each model. Each dict: ``run_id``, ``model``, ``path``, the headline numbers (``det_mAP``,
    ``det_NDS``, ``map_mAP``, ``plan_L2_1s``… ``plan_collision_3s``), ``metrics`` (all of
    metrics.json) and ``error`` (an OnlinemapError for a run that could not be evaluated, else
    None: one bad run does not stop the others).
    """
    from onlinemap.errors import OnlinemapError
    from onlinemap.evaluation.run import evaluate_run
    from onlinemap.report.compare import headline_metrics, select_runs
    from onlinemap.runs.store import load_run

    out = []
    for run_dir in select_runs(run_ids, latest=latest, models=models, results_root=results_root):
        rec = load_run(run_dir)
        row = {"run_id": rec.run_id, "model": rec.model, "path": str(run_dir), "metrics": None, "error": None}
        try:
            row["metrics"] = evaluate_run(run_dir, dataroot=Path(dataroot) if dataroot else None, version=version)
        except OnlinemapError as exc:
            log.warning("cannot evaluate %s: %s", rec.run_id, exc.one_line())
            row["error"] = exc
        row.update(headline_metrics(row["metrics"]))
        row["samples"] = (row["metrics"] or {}).get("samples")
        out.append(row)
    return out


def compare(run_ids: list[str] | None = None, *, latest: bool = False, models: str | list[str] | None = None,
            out: Path | str | None = None, results_root: Path | None = None) -> dict:
    """Compare runs side by side: one flat row per run (latency, memory, accuracy, env, GPU).

    Runs are chosen as for :func:`evaluate`. Nothing is written unless ``out`` names a folder:
    then ``comparison_summary.json`` and ``comparison.csv`` go there (``report`` writes a whole
    report folder). Returns ``{"rows": [...], "out_dir": Path | None, "files": {...}}``.
    """
    from onlinemap.report.compare import comparison_rows, select_runs, write_comparison

    rows = comparison_rows(select_runs(run_ids, latest=latest, models=models, results_root=results_root))
    if not out:
        return {"rows": rows, "out_dir": None, "files": {}}
    out_dir = Path(out)
    return {"rows": rows, "out_dir": out_dir, "files": write_comparison(rows, out_dir)}


def report(run_ids: list[str] | None = None, *, models: str | list[str] | None = None, out: Path | str | None = None,
           results_root: Path | None = None) -> dict:
    """Write a report directory: summary.md, PNG figures, comparison_summary.json and comparison.csv.

    Runs: ``run_ids``, else the newest ok run of each of ``models`` (default: every model).
    ``out`` defaults to ``ONLINEMAP_HOME/reports/<timestamp>/``. Returns ``{"out_dir", "rows",
    "files", "figures"}`` (``figures``: name -> ``{"path", "size_px", "axes", "labels"}`` or None
    when there was nothing to draw).
    """
    from onlinemap.report.compare import default_report_dir, select_runs
    from onlinemap.report.summary import write_report

    run_dirs = select_runs(run_ids, latest=not run_ids, models=None if run_ids else (models or "all"),
                           results_root=results_root)
    out_dir = Path(out) if out else default_report_dir()
    command = "onlinemap report " + (" ".join(Path(d).name for d in run_dirs))
    return write_report(run_dirs, out_dir, results_root=results_root, command=command)


def viz(run_ids: list[str] | None = None, *, latest: bool = False, models: str | list[str] | None = None,
        sample: str | None = None, out: Path | str | None = None, dataroot: Path | str | None = None,
        version: str | None = None, results_root: Path | None = None) -> dict:
    """Bird's-eye-view PNG of one sample: each run's predictions over the GT, one panel per run.

    ``sample`` defaults to the first measured sample of the first run; ``out`` to
    ``ONLINEMAP_HOME/reports/viz-<sample>.png``. Returns ``{"path", "size_px", "axes", "labels", "counts"}``.
    """
    from onlinemap import paths
    from onlinemap.errors import ResultsError
    from onlinemap.fileio import iter_jsonl
    from onlinemap.report.compare import select_runs
    from onlinemap.report.viz import render_bev

    run_dirs = select_runs(run_ids, latest=latest, models=models, results_root=results_root)
    if not sample:
        rows = [s for s in iter_jsonl(run_dirs[0] / "samples.jsonl") if s.get("sample_token")]
        if not rows:
            raise ResultsError(f"{run_dirs[0].name} has no samples", "pass sample=TOKEN (CLI: --sample)")
        sample = next((s for s in rows if not s.get("warmup")), rows[0])["sample_token"]
    out = Path(out) if out else paths.ensure_dir(paths.home() / "reports") / f"viz-{sample}.png"
    return render_bev(run_dirs, sample, out, dataroot=Path(dataroot) if dataroot else None, version=version)
