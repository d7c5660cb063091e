"""``onlinemap report``: summary.md + PNG figures + comparison files for a set of runs."""
from __future__ import annotations

import click

__all__ = ["report"]


@click.command("report")
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--models", "-m", default=None, help="without run ids: A,B or all [default: all]")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="report directory [default: ONLINEMAP_HOME/reports/<timestamp>]")
@click.option("--html", "html_dir", type=click.Path(file_okay=False), default=None,
              help="instead: write/update the static HTML dashboard of every run in the results folder into DIR")
def report(run_ids, models, out, html_dir):
    """Write a report: summary.md, latency/memory/accuracy PNGs, comparison_summary.json.

    \b
    onlinemap report                         the newest ok run of every model
    onlinemap report RUN_ID RUN_ID --out r/  these runs
    onlinemap report --html site/            the HTML dashboard (open site/index.html)
    Run `onlinemap eval` first to get the accuracy-vs-latency figure.
    """
    from onlinemap import api

    if html_dir:
        if run_ids or models or out:
            raise click.UsageError("--html covers every run of the results folder: drop RUN_IDs, --models and --out")
        from onlinemap.dashboard import build_site

        site = build_site(html_dir)
        click.echo(f"dashboard of {site['runs']} run(s) in {site['index']} "
                   f"({site['rebuilt']} run page(s) rebuilt, {site['reused']} unchanged)")
        return

    result = api.report(list(run_ids) or None, models=models, out=out)
    click.echo(f"report of {len(result['rows'])} run(s) ({', '.join(sorted({r['model'] for r in result['rows']}))}) "
               f"in {result['out_dir']}")
    for name, path in result["files"].items():
        click.echo(f"  {name:9s} {path}")
    for name, fig in result["figures"].items():
        if fig is None:
            click.echo(f"  {name:9s} not drawn (see summary.md)")
