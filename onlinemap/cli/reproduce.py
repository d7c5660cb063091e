"""``onlinemap reproduce --model M``: published vs measured on the paper's split, and a verdict."""
from __future__ import annotations

import json
import sys

import click

from onlinemap.cli.options import positive_int


def _num(value, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f} %" if unit == "%" else f"{value:.4f} {unit}"


@click.command("reproduce")
@click.option("--model", "-m", "model", required=True, help="model name (see `onlinemap models`)")
@click.option("--samples", "-n", type=positive_int, default=None,
              help="a seeded subset of N split samples (verdict: not comparable) [default: the whole split]")
@click.option("--split", type=click.Choice(["val"]), default="val", show_default=True,
              help="the published split (the version's val scenes: val, or mini_val for v1.0-mini)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed that draws the --samples subset")
@click.option("--dataroot", type=click.Path(file_okay=False), default=None,
              help="dataset root [default: $NUSCENES_ROOT or the synthetic dataset]")
@click.option("--version", "data_version", default=None, help="v1.0-trainval | v1.0-mini [default: detected]")
@click.option("--device", default="auto", show_default=True, help="cuda:N, cpu or auto")
@click.option("--backend", default="torch", show_default=True, help="torch | onnxruntime | pt2")
@click.option("--json", "as_json", is_flag=True, help="print the judgement as JSON")
def reproduce(model, samples, split, seed, dataroot, data_version, device, backend, as_json):
    """Run a model on its paper's split, evaluate it and compare with its published numbers.

    \b
    onlinemap reproduce --model PETR                 the whole val split
    onlinemap reproduce --model PETR --samples 200   a seeded subset (not comparable)
    The published numbers, their source and tolerances are in envs/<Model>/published.toml.
    Verdict: reproduces | deviates | not comparable (subset, other dataset or split, a metric the
    project does not compute). Recorded in the run's reproduction.json and run.json tags.
    Exit 0 = reproduces, 1 = deviates, 0 with a note = not comparable (docs/reports.md).
    """
    from onlinemap.reproduce import reproduce as run_reproduction

    result = run_reproduction(model, samples=samples, seed=seed, dataroot=dataroot, version=data_version,
                              device=device, backend=backend, echo=False)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        from onlinemap.cli.render import table

        src = result["source"]
        click.echo(f"{result['model']} run {result['run_id']}: {result['evaluated_samples']} of "
                   f"{result['split_samples']} {result['split']} samples of {result['dataset']}")
        click.echo(f"published: {src.get('repo', '?')}@{str(src.get('commit', '?'))[:8]} {src.get('document', '')}"
                   f":{src.get('line', '?')} ({src.get('dataset', '?')} {src.get('split', '?')})")
        click.echo(table([[m["key"], _num(m["published"], m["unit_published"]), _num(m["measured"], m["unit_published"]),
                           _num(m["difference"], m["unit_published"]), "±" + _num(m["tolerance"], m["unit_published"]),
                           {True: "yes", False: "NO", None: "n/a"}[m["within"]]] for m in result["metrics"]],
                         ["metric", "published", "measured", "difference", "tolerance", "within"]))
        for why in result["reasons"]:
            click.echo(f"not comparable: {why}")
        for diff in result["differs_from_paper"]:
            click.echo(f"setting: {diff}")
        click.echo(f"verdict: {result['verdict']}  ({result['run_dir']}/reproduction.json)")
    sys.exit(1 if result["verdict"] == "deviates" else 0)
