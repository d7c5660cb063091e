"""``onlinemap nightly [--config nightly.toml] [--force]``: the fixed nightly benchmark, judged against history."""
from __future__ import annotations

import json
import sys

import click


@click.command("nightly")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="nightly.toml [default: ONLINEMAP_HOME/nightly.toml, else the built-in defaults]")
@click.option("--force", is_flag=True, help="re-run models that already finished tonight")
@click.option("--night", default=None, help="the night's name [default: today's local date, YYYY-MM-DD]")
@click.option("--show-output", is_flag=True, help="echo the models' own output")
@click.option("--no-plots", is_flag=True, help="skip the trend PNGs")
@click.option("--json", "as_json", is_flag=True, help="print the night's verdicts as JSON")
def nightly(config_path, force, night, show_output, no_plots, as_json):
    """Run the nightly benchmark and compare each model with its history on the same GPU type.

    \b
    Regression: median forward slowdown > factor (1.1) AND Mann-Whitney U p < alpha (0.002) on
    the raw samples; memory peaks > factor x the history median AND above every earlier run.
    Report: ONLINEMAP_HOME/nightly/<night>/report.md (+ trend PNGs). A second start while one runs
    is refused (exit 75); models that already finished tonight are not re-run unless --force.
    Exit: 0 ok, 1 regression or failed model, 75 locked, 130 interrupted.
    """
    from onlinemap.nightly.config import load_config
    from onlinemap.nightly.job import run_nightly

    result = run_nightly(load_config(config_path), force=force, night=night, echo=show_output, plots=not no_plots)
    if as_json:
        click.echo(json.dumps({"night": result.night, "exit_code": result.exit_code, "report": str(result.report),
                               "crashed_previous": result.crashed_previous, "crashed_runs": result.crashed_runs,
                               "models": [m.to_dict() for m in result.models]}, indent=2, default=str))
    else:
        if result.crashed_previous:
            c = result.crashed_previous
            click.echo(f"warning: the previous nightly job (pid {c.get('pid')} on {c.get('hostname')}, started "
                       f"{c.get('started')}) crashed: it left its lock behind", err=True)
        for r in result.crashed_runs:
            click.echo(f"warning: nightly run {r['run_id']} ({r['model']}) crashed", err=True)
        for m in result.models:
            worst = [v for v in m.verdicts if v.status in ("regressed", "improved")]
            what = ", ".join(f"{v.metric} {v.status} x{v.ratio:.2f}" for v in worst) or \
                ("no regression" if m.status == "ok" else (m.reason or ""))
            click.echo(f"{m.model:12} {m.status:11}{' (earlier start)' if m.reused else '':16} {what}")
        click.echo(f"report: {result.report}")
    sys.exit(result.exit_code)
