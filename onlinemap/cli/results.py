"""``onlinemap results``: the runs on disk, newest first, with status."""
from __future__ import annotations

import json

import click

from onlinemap.cli.render import fmt_mb, fmt_ms, table


def _acc(value) -> str:
    """An accuracy column: 3 decimals, "-" when the run has no metrics.json (`onlinemap eval`)."""
    return "-" if value is None else f"{value:.3f}"


@click.command("results")
@click.option("--model", "-m", default=None, help="only this model's runs")
@click.option("--limit", type=click.IntRange(min=0), default=30, show_default=True, help="rows to show (0 = all)")
@click.option("--json", "as_json", is_flag=True, help="print JSON rows")
def results(model, limit, as_json):
    """List the runs on disk, newest first.

    A run whose driver died without finishing (killed, machine lost) shows as `crashed`, with
    figures computed from the samples it left on disk (its run.json is not rewritten). Unreadable run folders are skipped with a
    warning.
    """
    # om.list_runs() is this function; imported from its module, not through onlinemap.api, whose
    # runner import would cost the command a third of its time at 100k runs (issue 16)
    from onlinemap.runs.listing import list_runs
    from onlinemap.runs.store import count_run_dirs

    # one row more than shown tells whether older runs exist, without reading them all
    rows = list_runs(model=model, limit=(limit + 1) if limit else None)
    shown = rows if not limit else rows[:limit]
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    if not rows:
        click.echo(f"no runs of {model} yet: try `onlinemap test --model {model}`" if model
                   else "no runs yet: try `onlinemap test --model reference`")
        return
    click.echo(table([[r["run_id"], r["model"], r["kind"], r["status"], r["device"], r["measured"], fmt_ms(r["p50_ms"]),
                       fmt_ms(r["p90_ms"]), fmt_mb(r["torch_max_allocated_mb"]), fmt_mb(r["host_rss_peak_mb"]),
                       _acc(r.get("det_mAP")), _acc(r.get("det_NDS")), _acc(r.get("map_mAP"))]
                      for r in shown],
                     ["run", "model", "kind", "status", "device", "n", "p50", "p90", "torch peak", "host RSS",
                      "mAP", "NDS", "map mAP"]))
    if limit and len(rows) > limit:
        older = "older runs" if model else f"{max(count_run_dirs() - limit, 1)} older run folders"
        click.echo(f"({older} not shown; --limit 0 shows all)")
