"""``onlinemap verify --model M --backend onnxruntime``: does the exported graph compute what PyTorch does?"""
from __future__ import annotations

import json
import sys

import click

from onlinemap.cli.options import positive_int
from onlinemap.errors import EXIT_FAILED


def _g(value) -> str:
    return "-" if value is None else f"{value:.3g}"


@click.command("verify")
@click.option("--model", "-m", "model", required=True, help="model name")
@click.option("--backend", "-b", type=click.Choice(["onnxruntime", "pt2", "tensorrt"]), required=True,
              help="the backend to check against torch (its export must exist: onlinemap export)")
@click.option("--samples", "-n", type=positive_int, default=3, show_default=True, help="samples to compare on")
@click.option("--dataroot", type=click.Path(file_okay=False), default=None,
              help="nuScenes root [default: $NUSCENES_ROOT or the synthetic set]")
@click.option("--version", "data_version", default=None, help="v1.0-trainval | v1.0-mini [default: detected]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
@click.option("--no-metrics", is_flag=True, help="skip evaluating both sides' predictions (metric deltas)")
@click.option("--json", "as_json", is_flag=True, help="print the full result as JSON")
def verify(model, backend, samples, dataroot, data_version, device, no_metrics, as_json):
    """Run PyTorch and a backend on the same samples and compare every raw output tensor.

    Per tensor: max abs and max relative difference; it passes when |backend - torch| <=
    atol + rtol*|torch| everywhere (tolerances from envs/<Model>/backends.toml, default rtol 1e-3,
    atol 1e-5). Any NaN or Inf fails. The converted predictions of both sides are evaluated and
    their metric deltas shown. Exit 0 when every tensor passes, 1 otherwise.
    """
    from onlinemap.backends import verify_model
    from onlinemap.cli.render import table
    from onlinemap.registry import find_model

    result = verify_model(find_model(model), backend, samples=samples, dataroot=dataroot, version=data_version,
                          device=device, metrics=not no_metrics)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        rows = [[t["path"], "x".join(map(str, t["shape"])), _g(t["max_abs"]), _g(t["max_rel"]), t["violations"],
                 t["nonfinite_torch"] + t["nonfinite_backend"], "PASSED" if t["ok"] else "FAILED"]
                for t in result["tensors"]]
        click.echo(table(rows, ["output", "shape", "max abs", "max rel", "outside tol", "NaN/Inf", "result"]))
        for name, m in result["metrics"].items():
            click.echo(f"{name}: torch {_g(m['torch'])}, {backend} {_g(m['backend'])}, delta {_g(m['delta'])}")
        tol = result["tolerances"]
        verdict = "PASSED" if result["ok"] else "FAILED"
        click.echo(f"{model} on {backend} ({', '.join(result['backend']['providers'])}), {result['samples']} sample(s), "
                   f"rtol {tol['rtol']:g} atol {tol['atol']:g}: {verdict}")
    if not result["ok"]:
        for t in result["tensors"]:
            if not t["ok"]:
                nf = t["nonfinite_torch"] + t["nonfinite_backend"]
                why = (f"{nf} NaN/Inf value(s) (torch {t['nonfinite_torch']}, {backend} {t['nonfinite_backend']})"
                       if nf else f"max abs difference {t['max_abs']:.3g}, max rel {t['max_rel']:.3g}, "
                       f"{t['violations']} of {t['elements']} values outside tolerance")
                click.echo(f"error: {model} on {backend}: output {t['path']} differs from torch: {why} -> see "
                           f"{result['folder']}", err=True)
        sys.exit(EXIT_FAILED)
