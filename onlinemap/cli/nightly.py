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
@click.option("--golden", "golden_run", default=None, metavar="RUN",
              help="make RUN's predictions the golden set of its model and dataset (output drift), then exit")
def nightly(config_path, force, night, show_output, no_plots, as_json, golden_run):
    """Run the nightly benchmark and compare each model with its history on the same GPU type.

    \b
    Regression: median forward slowdown > factor (1.1) AND Mann-Whitney U p < alpha (0.002) on
    the raw samples; memory peaks > factor x the history median AND above every earlier run.
    Report: ONLINEMAP_HOME/nightly/<night>/report.md (+ trend PNGs). A second start while one runs
    is refused (exit 75); models that already finished tonight are not re-run unless --force.
    Output drift: predictions vs a golden set (the first good night, or --golden RUN) per model and
    dataset; beyond the pack's tolerance or a changed count it is a regression too.
    Exit: 0 ok, 1 regression or failed model, 75 locked, 130 interrupted.
    """
    if golden_run:
        from onlinemap.nightly.drift import golden_dir, set_golden
        from onlinemap.nightly.job import nightly_dir, run_dir_dataset_key
        from onlinemap.runs.store import find_run, load_run

        run_dir = find_run(golden_run)
        model = load_run(run_dir).model
        folder = golden_dir(nightly_dir(), model, run_dir_dataset_key(run_dir))
        set_golden(folder, run_dir, f"chosen: onlinemap nightly --golden {golden_run}")
        click.echo(f"golden set of {model}: {run_dir.name} ({folder})")
        sys.exit(0)
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
            what = ", ".join(f"{v.metric} {v.status} x{v.ratio:.2f}" if v.ratio is not None else f"{v.metric} {v.status}"
                             for v in worst) or \
                ("no regression" if m.status == "ok" else (m.reason or ""))
            click.echo(f"{m.model:12} {m.status:11}{' (earlier start)' if m.reused else '':16} {what}")
        click.echo(f"report: {result.report}")
    sys.exit(result.exit_code)
