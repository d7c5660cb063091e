"""``onlinemap eval``: accuracy of recorded runs (detection mAP/NDS, map mAP, planning L2/collision)."""
from __future__ import annotations

import json

import click

from onlinemap.cli.compare import run_selection, selection_kwargs

__all__ = ["eval_cmd"]


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


@click.command("eval")
@run_selection
@click.option("--dataroot", type=click.Path(file_okay=False), default=None,
              help="nuScenes root [default: the one the run recorded]")
@click.option("--version", "data_version", default=None, help="v1.0-trainval | v1.0-mini [default: the run's]")
@click.option("--json", "as_json", is_flag=True, help="print metrics as JSON")
def eval_cmd(run_ids, latest, models, dataroot, data_version, as_json):
    """Evaluate runs' accuracy on the samples they predicted; writes each run's metrics.json.

    \b
    onlinemap eval 20260101-1200               one run (a unique prefix is enough)
    onlinemap eval --latest --models all       the newest ok run of each model
    The numbers then show in `onlinemap results`, `compare` and `report`. docs/evaluation.md
    defines every metric. Exits non-zero when a run could not be evaluated.
    """
    from onlinemap import api

    rows = api.evaluate(**selection_kwargs(run_ids, latest, models), dataroot=dataroot, version=data_version)
    if as_json:
        click.echo(json.dumps([{**{k: v for k, v in r.items() if k != "error"},
                                "error": r["error"].one_line() if r["error"] else None} for r in rows],
                              indent=2, default=str))
    else:
        from onlinemap.cli.render import table

        click.echo(table([[r["model"], r["run_id"], r["samples"], _f(r["det_mAP"]), _f(r["det_NDS"]), _f(r["map_mAP"]),
                           " / ".join(_f(r[f"plan_L2_{h}"], 2) for h in ("1s", "2s", "3s")),
                           " / ".join(_f(r[f"plan_collision_{h}"]) for h in ("1s", "2s", "3s")),
                           "error" if r["error"] else "ok"] for r in rows],
                         ["model", "run", "samples", "det mAP", "NDS", "map mAP", "L2 1/2/3 s [m]", "collision 1/2/3 s",
                          "eval"]))
    failed = [r for r in rows if r["error"]]
    for r in failed:
        click.echo(f"error: {r['run_id']}: {r['error'].one_line()}", err=True)
    if failed:
        raise SystemExit(max(r["error"].exit_code for r in failed))
