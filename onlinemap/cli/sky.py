"""``onlinemap sky tasks|merge``: SkyPilot task YAML per model, and merging returned result folders."""
from __future__ import annotations

import json
import sys

import click


@click.group("sky")
def sky():
    """SkyPilot fan-out (optional extra: pip install "skypilot[runpod]"; not needed to write tasks or merge)."""


@sky.command("tasks")
@click.option("--models", "-m", default="all", show_default=True, help="comma-separated names, or all")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="sky", show_default=True)
@click.option("--samples", "-n", type=int, default=200, show_default=True)
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--cloud", default="runpod", show_default=True)
def tasks(models, out_dir, samples, warmup, cloud):
    """Write one SkyPilot task YAML per model (launch each with `sky launch -c NAME FILE`)."""
    from onlinemap.registry.discover import resolve_model_names
    from onlinemap.sky import write_tasks

    for path in write_tasks(resolve_model_names(models), out_dir, samples=samples, warmup=warmup, cloud=cloud):
        click.echo(f"wrote {path}")


@sky.command("merge")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def merge(dirs, as_json):
    """Copy returned run folders (DIR is a results folder or one run) into ONLINEMAP_HOME/results."""
    from onlinemap.sky import merge_results

    rep = merge_results(list(dirs))
    if as_json:
        click.echo(json.dumps(rep.to_dict(), indent=2))
    else:
        click.echo(f"copied {len(rep.copied)}, already present {len(rep.present)}, refused {len(rep.refused)}")
        for path, reason in rep.refused:
            click.echo(f"refused {path}: {reason}", err=True)
    sys.exit(4 if rep.refused else 0)
