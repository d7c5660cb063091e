"""``onlinemap doctor``: every setup check replayed read-only, as a table (or JSON), with fixes."""
from __future__ import annotations

import json
import sys

import click


@click.command("doctor")
@click.option("--models", default=None, help="A,B or all [default: every model this GPU supports]")
@click.option("--dataroot", type=click.Path(file_okay=False), default=None,
              help="nuScenes root [default: $NUSCENES_ROOT, else the synthetic dataset]")
@click.option("--skip-weights", is_flag=True, help="do not count missing weights as a failure")
@click.option("--json", "as_json", is_flag=True, help="rows as JSON, for scripts")
def doctor(models, dataroot, skip_weights, as_json):
    """Replay every setup check without changing anything; exit 1 when something a model needs is broken."""
    from onlinemap.setup.doctor import doctor_exit_code, doctor_rows, render_table
    from onlinemap.setup.plan import build_context

    ctx = build_context(models=models, dataroot=dataroot, dry_run=True, skip_weights=skip_weights,
                        say=lambda line: None)
    rows = doctor_rows(ctx)
    code = doctor_exit_code(rows)
    if as_json:
        click.echo(json.dumps({"ok": code == 0, "rows": [r.to_dict() for r in rows],
                               "not_selected": ctx.unselected}, indent=2))
    else:
        for line in render_table(rows):
            click.echo(line)
        click.echo("doctor: " + ("everything the selected models need is in place" if code == 0
                                 else "something a model needs is broken (fix commands above)"))
    sys.exit(code)
