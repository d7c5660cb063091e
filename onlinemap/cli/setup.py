"""``onlinemap setup run|stage|quick-test``: the staged pod setup (thin wrappers over onlinemap.setup)."""
from __future__ import annotations

import json
import sys

import click

from onlinemap.cli.options import positive_int


def _common(f):
    opts = [
        click.option("--dataroot", type=click.Path(file_okay=False), default=None,
                     help="nuScenes root [default: $NUSCENES_ROOT, else the synthetic dataset]"),
        click.option("--skip-weights", is_flag=True, help="do not download checkpoints (their smoke tests are skipped)"),
        click.option("--yes", "-y", is_flag=True, help="unattended: allow apt-get install cron and other prompts' defaults"),
        click.option("--allow-unverified", is_flag=True, help="accept a micromamba URL without a pinned sha256"),
        click.option("--manager", default=None, help="micromamba | mamba | conda | rattler | a path"),
        click.option("--json", "as_json", is_flag=True, help="print the stage results as JSON"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _say(line: str) -> None:
    click.echo(line, err=False)


@click.group("setup")
def setup() -> None:
    """Set up this machine stage by stage (what ./runpod_setup.sh runs).

    \b
    onlinemap setup run                      every stage for every model this GPU supports
    onlinemap setup run --models MapTR --dry-run   the plan, changing nothing
    onlinemap setup stage env --model MapTR  one stage alone (what a failure tells you to retry)
    onlinemap setup quick-test [MODEL...]    one smoke-test line per installed model
    """


@setup.command("run")
@click.option("--models", default=None, help="A,B or all [default: every model this GPU supports]")
@click.option("--dry-run", is_flag=True, help="print the plan and what each stage would do; change nothing")
@click.option("--jobs", type=positive_int, default=1, show_default=True, help="models set up in parallel")
@click.option("--with-cron", is_flag=True, help="install/start cron and register the nightly job")
@click.option("--with-kernels", is_flag=True, help="a Jupyter kernel per model env")
@click.option("--variant", default=None,
              help="env variant for the models that have it (paper | modern) [default: chosen from the GPU]")
@_common
def run(models, dry_run, jobs, with_cron, with_kernels, variant, dataroot, skip_weights, yes, allow_unverified,
        manager, as_json):
    """Run every stage whose check fails; skip those whose check passes (idempotent, resumable)."""
    from onlinemap.setup.plan import build_context, setup as do_setup, summary_lines
    from onlinemap.setup.stages import BAD

    say = (lambda line: click.echo(line, err=True)) if as_json else _say
    ctx = build_context(models=models, dataroot=dataroot, dry_run=dry_run, skip_weights=skip_weights, jobs=jobs,
                        with_cron=with_cron, with_kernels=with_kernels, yes=yes, allow_unverified=allow_unverified,
                        manager=manager, say=say, variant=variant)
    results = do_setup(ctx)
    if as_json:
        click.echo(json.dumps({"results": [r.to_dict() for r in results], "not_set_up": ctx.unselected,
                               "dry_run": dry_run}, indent=2))
    else:
        for line in summary_lines(results, ctx):
            click.echo(line)
    failed = [r for r in results if r.status in BAD]
    if failed:
        click.echo(f"setup: {len(failed)} stage(s) failed or blocked: {', '.join(r.key for r in failed)}", err=True)
        sys.exit(1)


@setup.command("stage")
@click.argument("name")
@click.option("--model", "-m", default=None, help="the model, for per-model stages (env, weights, info, smoke, kernel)")
@click.option("--dry-run", is_flag=True, help="show what the stage would do; change nothing")
@click.option("--variant", default=None, help="env variant (paper | modern) [default: chosen from the GPU]")
@_common
def stage(name, model, dry_run, variant, dataroot, skip_weights, yes, allow_unverified, manager, as_json):
    """Run one stage alone: system, micromamba, driver, data, env, weights, info, smoke, kernel, cron."""
    from onlinemap.setup.plan import build_context, run_one_stage
    from onlinemap.setup.stages import BAD

    ctx = build_context(models=model, dataroot=dataroot, dry_run=dry_run, skip_weights=skip_weights, yes=yes,
                        allow_unverified=allow_unverified, manager=manager, variant=variant,
                        say=(lambda line: click.echo(line, err=True)) if as_json else _say)
    res = run_one_stage(ctx, name, model)
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
    if res.status in BAD:
        sys.exit(1)


@setup.command("quick-test")
@click.argument("models", nargs=-1)
@click.option("--samples", "-n", type=positive_int, default=5, show_default=True)
@click.option("--dataroot", type=click.Path(file_okay=False), default=None)
def quick_test(models, samples, dataroot):
    """`onlinemap test` for every installed model (or MODELS): one line each; exit 1 if any failed."""
    from onlinemap.setup.quicktest import quick_test as qt

    sys.exit(qt(list(models), samples=samples, dataroot=dataroot, out=click.echo))
