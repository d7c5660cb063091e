"""``onlinemap viz``: a bird's-eye-view PNG of one sample's predictions over its ground truth."""
from __future__ import annotations

import click

from onlinemap.cli.compare import run_selection, selection_kwargs

__all__ = ["viz"]


@click.command("viz")
@run_selection
@click.option("--sample", "sample_token", default=None,
              help="sample token [default: the first measured sample of the first run]")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="PNG path [default: ONLINEMAP_HOME/reports/viz-<sample>.png]")
@click.option("--dataroot", type=click.Path(file_okay=False), default=None,
              help="nuScenes root [default: the one the first run recorded]")
@click.option("--version", "data_version", default=None, help="v1.0-trainval | v1.0-mini [default: the run's]")
def viz(run_ids, latest, models, sample_token, out, dataroot, data_version):
    """Draw one sample: predicted boxes, map polylines and plan over the GT, one panel per run.

    \b
    onlinemap viz RUN_A RUN_B --sample TOKEN --out bev.png
    onlinemap viz --latest --models all          every model's newest ok run, side by side
    Ego frame of the sample's LIDAR_TOP: x forward (right), y left (up), metres.
    """
    from onlinemap import api

    result = api.viz(**selection_kwargs(run_ids, latest, models), sample=sample_token, out=out,
                     dataroot=dataroot, version=data_version)
    click.echo(f"wrote {result['path']} ({result['axes']} panel(s): {', '.join(result['labels'])})")
