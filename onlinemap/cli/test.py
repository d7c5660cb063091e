"""``onlinemap test --model NAME``: a smoke run on a few samples, summarised."""
from __future__ import annotations

import json
import sys

import click

from onlinemap.cli.options import positive_int, run_options
from onlinemap.cli.render import run_summary_lines
from onlinemap.runner import DEFAULT_TEST_SAMPLES


@click.command("test")
@click.option("--model", "-m", "model", required=True, help="model name (see `onlinemap models`)")
@click.option("--samples", "-n", type=positive_int, default=DEFAULT_TEST_SAMPLES, show_default=True,
              help="measured samples (after warm-up)")
@click.option("--sample-token", "sample_tokens", multiple=True, help="run these samples (repeatable)")
@click.option("--scene", "scenes", multiple=True, help="take samples from these scenes (repeatable)")
@click.option("--variant", default=None,
              help="env variant (paper | modern) [default: chosen from the GPU's compute capability]")
@run_options
def test(model, samples, sample_tokens, scenes, variant, dataroot, data_version, device, warmup, min_samples, min_duration, ci_target, max_duration, rate_hz,
         timeout, inactivity_timeout, timer, no_telemetry, exclusive, refuse_throttled, as_json):
    """Smoke-run one model on a few samples and summarise it.

    Checks that the env, code, weights and data all work, prints latency p50/p90, memory and
    where the results are; a progress bar counts samples as in `bench`. Exits 0 only if every
    sample produced a valid prediction.
    """
    from onlinemap import api

    outcome = api.test(model, samples=len(sample_tokens) if sample_tokens else samples, warmup=warmup,
                       dataroot=dataroot, version=data_version, device=device, sample_tokens=list(sample_tokens),
                       scenes=list(scenes), timeout_s=timeout, inactivity_s=inactivity_timeout, timer=timer,
                       telemetry=not no_telemetry, exclusive=exclusive, refuse_throttled=refuse_throttled,
                       echo=not as_json, min_samples=min_samples, min_duration_s=min_duration,
                       ci_target_pct=ci_target, max_duration_s=max_duration, rate_hz=rate_hz, progress=not as_json,
                       variant=variant)
    record = outcome.record.to_dict()
    if as_json:
        click.echo(json.dumps({**record, "path": str(outcome.run_dir)}, indent=2, default=str))
    else:
        for line in run_summary_lines(record, str(outcome.run_dir)):
            click.echo(line, err=outcome.status != "ok" and line.lstrip().startswith("error"))
    sys.exit(outcome.exit_code)
