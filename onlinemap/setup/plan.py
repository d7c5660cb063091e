"""Build the stage list for a setup and run it: what ``onlinemap setup run`` and ``runpod_setup.sh`` call.

Default models: every model whose ``[gpu]`` range includes this GPU's compute capability, plus those
that run on CPU (``cpu_ok``, the reference model). Models left out are listed with the reason, so a
machine with no GPU (CI, a laptop) sets up the reference model and says plainly why the others are not.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from onlinemap.errors import UsageError
from onlinemap.locks import HolderLock
from onlinemap.setup.stages import (BAD, STATUS_DONE, STATUS_OK, STATUS_SKIPPED, STATUS_WOULD_RUN, SetupContext,
                                    Stage, StageResult, run_stage, run_stages)

__all__ = ["select_models", "build_context", "build_stages", "setup", "run_one_stage", "summary_lines",
           "STAGE_NAMES"]

GLOBAL_STAGES = ("system", "micromamba", "driver", "data")
MODEL_STAGES = ("env", "weights", "info", "smoke", "kernel")
STAGE_NAMES = GLOBAL_STAGES + MODEL_STAGES + ("cron",)


def select_models(models: Optional[str], gpu: dict, variant: Optional[str] = None) -> tuple[list, dict]:
    """(specs to set up, {name: why not}) for ``--models A,B`` or the default (all this GPU supports).

    Each spec is the env variant for this GPU (guard.choose_variant: ``paper`` where it runs, else the
    variant whose range holds the compute capability, e.g. ``modern`` on Hopper/Blackwell); ``variant``
    overrides it for the models that have one of that name (a model named in ``--models`` must have it).
    """
    from onlinemap.environments.guard import choose_variant
    from onlinemap.registry.discover import find_model, load_models_and_broken

    def pick(spec, strict: bool):
        wanted = variant if (strict or (variant and variant in spec.variant_names)) else None
        return choose_variant(spec, gpu=gpu, requested=wanted) if spec.env_kind == "conda" or wanted else spec

    if models and models.strip().lower() != "all":
        names = [m.strip() for m in models.split(",") if m.strip()]
        if not names:
            raise UsageError("--models is empty", "pass --models A,B or leave it out for all this GPU supports")
        return [pick(find_model(n), strict=bool(variant)) for n in names], {}
    chosen, unselected = [], {}
    cc = None
    if gpu.get("available"):
        try:
            cc = float(gpu.get("compute_capability"))
        except (TypeError, ValueError):
            cc = None
    specs, broken = load_models_and_broken()
    for name, exc in broken.items():   # shown by doctor as a failed row; the good models go on
        unselected[name] = f"model.toml is malformed: {exc.one_line()}"
    for spec in specs:
        spec = pick(spec, strict=False)
        if spec.env_kind == "host" or spec.gpu.cpu_ok:
            chosen.append(spec)
        elif not gpu.get("available"):
            unselected[spec.name] = (f"needs an NVIDIA GPU (compute {spec.gpu.min_compute:g}-{spec.gpu.max_compute:g}); "
                                     f"none here: {gpu.get('reason') or 'NVML not available'}")
        elif cc is not None and not spec.gpu.supports(cc):
            ranges = ", ".join(f"{v} {spec.gpu_of(v).min_compute:g}-{spec.gpu_of(v).max_compute:g}"
                               for v in spec.variant_names)
            unselected[spec.name] = (f"{gpu.get('name')} (compute {gpu.get('compute_capability')}) is outside every "
                                     f"env variant's range ({ranges})")
        else:
            chosen.append(spec)
    return chosen, unselected


def build_context(*, models: Optional[str] = None, dataroot: Optional[Path] = None, dry_run: bool = False,
                  skip_weights: bool = False, jobs: int = 1, with_cron: bool = False, with_kernels: bool = False,
                  yes: bool = False, allow_unverified: bool = False, manager: Optional[str] = None,
                  gpu: Optional[dict] = None, say: Optional[Callable[[str], None]] = None,
                  variant: Optional[str] = None) -> SetupContext:
    if gpu is None:
        from onlinemap.telemetry.nvml import gpu_info

        gpu = gpu_info("cuda:0")
    if dataroot is None and os.environ.get("NUSCENES_ROOT"):
        dataroot = Path(os.environ["NUSCENES_ROOT"])
    specs, unselected = select_models(models, gpu, variant)
    ctx = SetupContext(models=specs, unselected=unselected, dataroot=Path(dataroot).expanduser() if dataroot else None,
                       dry_run=dry_run, skip_weights=skip_weights, jobs=max(1, int(jobs or 1)), with_cron=with_cron,
                       with_kernels=with_kernels, yes=yes, allow_unverified=allow_unverified, manager=manager, gpu=gpu)
    if say is not None:
        ctx.say = say
    return ctx


def build_stages(ctx: SetupContext, *, only_optional: bool = False) -> list[Stage]:
    from onlinemap.setup.data import data_stage, info_stage
    from onlinemap.setup.micromamba import micromamba_stage
    from onlinemap.setup.models import cron_stage, env_stage, kernel_stage, smoke_stage, weights_stage
    from onlinemap.setup.system import driver_stage, system_stage

    stages = [system_stage(), micromamba_stage(), driver_stage(), data_stage()]
    for spec in ctx.models:
        stages += [env_stage(spec), weights_stage(spec), info_stage(spec), smoke_stage(spec)]
        if ctx.with_kernels:
            stages.append(kernel_stage(spec))
    if ctx.with_cron:
        stages.append(cron_stage())
    return stages


def _icon(status: str) -> str:
    return {STATUS_OK: "ok", STATUS_DONE: "done", STATUS_SKIPPED: "skip", STATUS_WOULD_RUN: "plan"}.get(status, "FAIL")


def summary_lines(results: list[StageResult], ctx: SetupContext) -> list[str]:
    """The final table: one row per stage, then the models not set up and why."""
    width = max([len(r.key) for r in results] + [5])
    lines = ["", "== summary" + (" (dry run: nothing was changed)" if ctx.dry_run else ""),
             f"  {'stage':<{width}}  {'status':<9}  detail"]
    for r in results:
        detail = r.detail if len(r.detail) <= 160 else r.detail[:157] + "..."
        lines.append(f"  {r.key:<{width}}  {r.status:<9}  {detail}")
        if r.status in BAD and r.fix:
            lines.append(f"  {'':<{width}}  {'':<9}  fix: {r.fix}")
    for name, why in ctx.unselected.items():
        lines.append(f"  {name:<{width}}  {'not set up':<9}  {why} (set it up anyway: --models {name})")
    skipped = [r for r in results if r.status == STATUS_SKIPPED]
    if skipped:
        lines.append(f"  {len(skipped)} stage(s) skipped because they do not apply here (reasons above)")
    return lines


def setup_lock() -> HolderLock:
    """One setup at a time per ONLINEMAP_HOME: a second one is refused (exit 75) with the holder named."""
    from onlinemap import paths

    return HolderLock(paths.home() / ".setup.lock", what="onlinemap setup",
                      hint="wait for it to finish (logs in ONLINEMAP_HOME/logs/), or stop it first")


def setup(ctx: SetupContext) -> list[StageResult]:
    """Run every stage; return the results (the caller prints the summary and picks the exit code)."""
    ctx.say(f"onlinemap setup: models {', '.join(s.name for s in ctx.models) or '(none)'}"
            + (f"; not set up here: {', '.join(ctx.unselected)}" if ctx.unselected else "")
            + (" (dry run: nothing is changed)" if ctx.dry_run else ""))
    if ctx.dry_run:
        return run_stages(build_stages(ctx), ctx)
    with setup_lock() as lock:
        if lock.stale:
            ctx.say(f"   (a previous setup, pid {lock.stale.get('pid')} started {lock.stale.get('started')}, "
                    "stopped without finishing: resuming where it stopped)")
        return run_stages(build_stages(ctx), ctx)


def run_one_stage(ctx: SetupContext, name: str, model: Optional[str]) -> StageResult:
    """``onlinemap setup stage NAME [--model M]``: that stage alone (its needs are not re-run)."""
    if name not in STAGE_NAMES:
        raise UsageError(f"unknown stage {name!r}", f"one of {', '.join(STAGE_NAMES)}")
    if name in MODEL_STAGES and not model:
        raise UsageError(f"stage {name} is per model", f"add --model MODEL (e.g. --model reference)")
    ctx.with_cron = ctx.with_cron or name == "cron"
    ctx.with_kernels = ctx.with_kernels or name == "kernel"
    stages = [s for s in build_stages(ctx) if s.name == name and (s.model == model or name not in MODEL_STAGES)]
    if not stages:
        raise UsageError(f"no stage {name} for model {model}", "check the model name (`onlinemap models`)")
    stage = stages[0]
    if name == "micromamba":          # asked for by name: install it even when no conda model is selected
        stage.skip_reason = lambda _ctx: None
    ctx.say(f"== {stage.key}: {stage.title}")
    if ctx.dry_run:
        res = run_stage(stage, ctx)
    else:
        with setup_lock():
            res = run_stage(stage, ctx)
    ctx.say(f"   {res.status}: {res.detail}")
    return res
