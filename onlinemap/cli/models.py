"""``onlinemap models``: every model under envs/, its task, env kind and readiness."""
from __future__ import annotations

import json

import click

from onlinemap.cli.render import table


@click.command("models")
@click.option("--dataroot", type=click.Path(file_okay=False), default=None, help="check this dataroot too")
@click.option("--json", "as_json", is_flag=True, help="print JSON (one object per model, with every check)")
def models(dataroot, as_json):
    """List the models under envs/ and whether each is installed and ready.

    A model is installed when its env, repo and weights are in place; ready when its data is
    found too. The `missing` column names the first step to fix and the command that fixes it.
    """
    from onlinemap import api

    rows = api.models(dataroot=dataroot)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    out = []
    for r in rows:
        bad = [c for c in r["checks"] if not c["ok"]]
        missing = f"{bad[0]['step']}: {bad[0]['fix'] or bad[0]['detail']}" if bad else ""
        out.append([r["name"], r["task"], r["env_kind"], ",".join(r["outputs"]), "yes" if r["temporal"] else "no",
                    "yes" if r["installed"] else "no", "yes" if r["ready"] else "no", missing])
    click.echo(table(out, ["model", "task", "env", "outputs", "temporal", "installed", "ready", "missing"]))
