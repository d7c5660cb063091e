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

__all__ = ["models", "model_status", "test", "bench", "results", "list_runs", "default_device", "BenchResult"]

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
    from onlinemap.registry.discover import known_model_names

    return [model_status(name, dataroot=dataroot) for name in known_model_names()]


def _settings(kind: str, *, samples, warmup, dataroot, version, device, sample_tokens, scenes, timeout_s,
              inactivity_s, timer, telemetry, exclusive, echo, options, min_samples, min_duration_s,
              telemetry_period_s=None, tags=None) -> RunSettings:
    s = RunSettings(kind=kind, samples=samples, warmup=warmup, dataroot=Path(dataroot) if dataroot else None,
                    version=version, device=_device(device), sample_tokens=list(sample_tokens or []),
                    scenes=list(scenes or []), timeout_s=timeout_s, inactivity_s=inactivity_s, timer=timer,
                    telemetry=telemetry, exclusive=exclusive, echo=echo, options=dict(options or {}),
                    min_samples=min_samples, min_duration_s=min_duration_s, tags=dict(tags or {}))
    if telemetry_period_s:
        s.telemetry_period_s = telemetry_period_s
    return s


def test(model: str, *, samples: int | None = DEFAULT_TEST_SAMPLES, warmup: int = DEFAULT_WARMUP,
         dataroot: Path | str | None = None, version: str | None = None, device: str | None = "auto",
         sample_tokens: list[str] | None = None, scenes: list[str] | None = None, timeout_s: float | None = None,
         inactivity_s: float | None = DEFAULT_INACTIVITY_S, timer: str = "wall", telemetry: bool = True,
         exclusive: bool = False, echo: bool = True, options: dict | None = None,
         min_samples: int = DEFAULT_MIN_SAMPLES, min_duration_s: float = DEFAULT_MIN_DURATION_S,
         results_root: Path | None = None, progress: Callable[[dict], None] | None = None) -> RunOutcome:
    """Smoke-run one model on a few samples; returns the outcome (``.status``, ``.run_dir``, ``.record``)."""
    from onlinemap.registry import find_model
    from onlinemap.runner import run_model

    spec = find_model(model)
    settings = _settings("test", samples=samples, warmup=warmup, dataroot=dataroot, version=version, device=device,
                         sample_tokens=sample_tokens, scenes=scenes, timeout_s=timeout_s, inactivity_s=inactivity_s,
                         timer=timer, telemetry=telemetry, exclusive=exclusive, echo=echo, options=options,
                         min_samples=min_samples, min_duration_s=min_duration_s)
    return run_model(spec, settings, results_root=results_root, progress=progress)


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
          tags: dict | None = None) -> BenchResult:
    """Benchmark several models in turn, the same way; models that are not ready are skipped and listed.

    Ctrl-C stops the model that is running (its finished samples are kept) and the bench itself.
    """
    from onlinemap.errors import MissingPrerequisiteError
    from onlinemap.registry import find_model
    from onlinemap.registry.discover import resolve_model_names
    from onlinemap.runner import run_model

    names = resolve_model_names(models)
    result = BenchResult()
    for name in names:
        spec = find_model(name)
        settings = _settings("bench", samples=samples, warmup=warmup, dataroot=dataroot, version=version,
                             device=device, sample_tokens=None, scenes=scenes, timeout_s=timeout_s,
                             inactivity_s=inactivity_s, timer=timer, telemetry=telemetry, exclusive=exclusive,
                             echo=echo, options=options, min_samples=min_samples, min_duration_s=min_duration_s,
                             telemetry_period_s=telemetry_period_s, tags=tags)
        bar = _ProgressBar(name, None if samples is None else samples + warmup, warmup) if progress else None
        try:
            outcome = run_model(spec, settings, results_root=results_root, progress=bar.update if bar else None)
        except MissingPrerequisiteError as exc:
            log.warning("skipping %s: %s", name, exc.one_line())
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
    """A tqdm bar (terminal or Jupyter) fed by the samples the worker writes."""

    def __init__(self, model: str, total: int | None, warmup: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=model, unit="sample", leave=True, dynamic_ncols=True)
        self.warmup = warmup

    def update(self, sample: dict) -> None:
        self.bar.update(1)
        if sample.get("forward_ms") is not None:
            phase = "warm-up" if sample.get("warmup") else "measured"
            self.bar.set_postfix_str(f"{phase} forward {sample['forward_ms']:.1f} ms", refresh=False)

    def close(self) -> None:
        self.bar.close()


def list_runs(*, model: str | None = None, results_root: Path | None = None) -> list[dict]:
    """Runs on disk, newest first: one flat dict per run with its effective status."""
    from onlinemap.results.store import effective_status, iter_runs

    rows = []
    for run_dir, rec in iter_runs(results_root, model=model):
        summ = rec.summary or {}
        fwd = (summ.get("latency_ms") or {}).get("forward") or {}
        mem = summ.get("memory") or {}
        rows.append({"run_id": rec.run_id, "model": rec.model, "kind": rec.kind, "status": effective_status(rec),
                     "created": rec.created, "device": (rec.settings or {}).get("device"),
                     "measured": (summ.get("samples") or {}).get("measured"), "p50_ms": fwd.get("p50"),
                     "p90_ms": fwd.get("p90"), "fps": summ.get("fps"),
                     "torch_max_allocated_mb": mem.get("torch_max_allocated_mb"),
                     "nvml_device_delta_peak_mb": mem.get("nvml_device_delta_peak_mb"),
                     "host_rss_peak_mb": mem.get("host_rss_peak_mb"),
                     "error": (rec.error or {}).get("message"), "path": str(run_dir)})
    return rows


def results(*, model: str | None = None, samples: bool = False, results_root: Path | None = None) -> "pandas.DataFrame":
    """Every run on disk as a pandas DataFrame (dotted keys flattened); ``samples=True``: one row per sample."""
    from onlinemap.results.load import load_runs_frame, load_samples_frame

    if samples:
        return load_samples_frame(results_root, model=model)
    return load_runs_frame(results_root, model=model)
