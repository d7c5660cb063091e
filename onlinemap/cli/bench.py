"""``onlinemap bench --models A,B|all``: the same measurement for several models in turn."""
from __future__ import annotations

import json
import sys

import click

from onlinemap.cli.options import positive_int, run_options
from onlinemap.cli.render import fmt_mb, fmt_ms, table
from onlinemap.errors import EXIT_FAILED, EXIT_MISSING, EXIT_OK


def short_reason(reason: str, width: int = 40) -> str:
    """The table's reason cell: the failure before its hint, cut to ``width`` (the whole line is printed below)."""
    what = reason.split(" -> ", 1)[0].split(";", 1)[0].strip()
    return what if len(what) <= width else what[:width - 1].rstrip() + "…"


@click.command("bench")
@click.option("--models", "-m", "models", default="all", show_default=True, help="comma-separated names, or all")
@click.option("--samples", "-n", type=positive_int, default=None,
              help="measure exactly N samples [default: until --min-samples and --min-duration are both met]")
@click.option("--scene", "scenes", multiple=True, help="take samples from these scenes only (repeatable)")
@click.option("--show-output", is_flag=True, help="echo the models' own output (always kept in each run's log.txt)")
@click.option("--gpus", default=None, help="run models in parallel, one per GPU: all, or indices 0,1,... "
                                            "(replaces --device)")
@click.option("--backend", "-b", type=click.Choice(["torch", "onnxruntime", "pt2", "tensorrt"]), default="torch",
              show_default=True, help="run the adapter's torch forward, or its export (`onlinemap export`) on this runtime")
@click.option("--variant", default=None,
              help="env variant for the models that have it (paper | modern) [default: chosen from the GPU]")
@run_options
def bench(models, samples, scenes, show_output, gpus, backend, variant, dataroot, data_version, device, warmup, min_samples,
          min_duration, ci_target, max_duration, rate_hz, timeout, inactivity_timeout, timer, no_telemetry, exclusive,
          refuse_throttled, as_json):
    """Benchmark several models in turn, measured the same way.

    Each model runs in one process that loads it once and streams every sample through it;
    warm-up samples are excluded. Models that are not ready are skipped and listed (one short
    reason in the table, the whole line below it). Exit 1 if a model failed; 3 if a model named in
    --models was skipped (with --models all: only if no model was ready). Ctrl-C stops the bench
    and keeps every finished sample.
    """
    from onlinemap import api

    result = api.bench(models, samples=samples, warmup=warmup, min_samples=min_samples, min_duration_s=min_duration,
                       ci_target_pct=ci_target, max_duration_s=max_duration, rate_hz=rate_hz,
                       dataroot=dataroot, version=data_version, device=device, scenes=list(scenes), timeout_s=timeout,
                       inactivity_s=inactivity_timeout, timer=timer, telemetry=not no_telemetry, exclusive=exclusive,
                       refuse_throttled=refuse_throttled, echo=show_output, progress=not as_json, gpus=gpus,
                       backend=backend, variant=variant)
    if as_json:
        click.echo(json.dumps({"runs": [{**o.record.to_dict(), "path": str(o.run_dir)} for o in result],
                               "skipped": [{"model": m, "reason": r} for m, r in result.skipped]}, indent=2, default=str))
    else:
        rows = []
        for o in result:
            s = o.record.summary or {}
            fwd = (s.get("latency_ms") or {}).get("forward") or {}
            mem = s.get("memory") or {}
            rows.append([o.record.model, o.status, (s.get("samples") or {}).get("measured"), fmt_ms(fwd.get("p50")),
                         fmt_ms(fwd.get("p90")), f"{fwd['fps']:.1f}" if fwd.get("fps") else None,
                         fmt_mb(mem.get("torch_max_allocated_mb")), fmt_mb(mem.get("nvml_device_delta_peak_mb")),
                         fmt_mb(mem.get("host_rss_peak_mb")), o.run_id])
        for name, reason in result.skipped:
            rows.append([name, "skipped", None, None, None, None, None, None, None, short_reason(reason)])
        click.echo(table(rows, ["model", "status", "n", "p50", "p90", "FPS", "torch peak", "NVML dev",
                                "host RSS", "run / reason"]))
        if result.skipped:     # the details, once each, under the table
            click.echo("skipped:", err=True)
            for name, reason in result.skipped:
                click.echo(f"  {name}: {reason}", err=True)
        for o in result:
            if o.record.error:
                click.echo(f"{o.record.model}: {o.record.error.get('message')} -> {o.record.error.get('hint')}", err=True)
    if result.interrupted:
        sys.exit(result[-1].exit_code)
    if any(o.status != "ok" for o in result):
        sys.exit(max((o.exit_code for o in result if o.status != "ok"), default=EXIT_FAILED))
    every_ready = str(models).strip().lower() == "all"     # "all" means every model that is ready here
    missing = result.skipped and (not every_ready or not len(result))
    sys.exit(EXIT_MISSING if missing else EXIT_OK)
