"""``onlinemap export --model M --format onnx|pt2``: the model's forward as a flat-tensor graph."""
from __future__ import annotations

import json

import click


@click.command("export")
@click.option("--model", "-m", "model", required=True, help="model name (see `onlinemap models`)")
@click.option("--format", "fmt", type=click.Choice(["onnx", "pt2"]), required=True,
              help="onnx (torch.onnx.export) or pt2 (torch.export + save)")
@click.option("--opset", type=click.IntRange(7, 30), default=17, show_default=True, help="ONNX opset")
@click.option("--sample-token", default=None, help="trace on this sample [default: the first one]")
@click.option("--dataroot", type=click.Path(file_okay=False), default=None,
              help="nuScenes root [default: $NUSCENES_ROOT or the synthetic set]")
@click.option("--version", "data_version", default=None, help="v1.0-trainval | v1.0-mini [default: detected]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (where to trace)")
@click.option("--json", "as_json", is_flag=True, help="print metadata.json")
def export(model, fmt, opset, sample_token, dataroot, data_version, device, as_json):
    """Export a model's forward to ONNX or PT2 inside its own env, traced on one real sample.

    Writes the artifact and metadata.json (every input's path in the adapter's structure, shape,
    dtype; what was baked in; exporter versions; the sample; env lock hash and checkpoint sha256)
    under ONLINEMAP_HOME/exports/<model>-<hash>-<format>/. `onlinemap bench --backend` and
    `onlinemap verify` use it. A model whose adapter cannot be exported says why (exit 1).
    """
    from onlinemap.backends import export_model
    from onlinemap.registry import find_model

    folder, meta = export_model(find_model(model), fmt, dataroot=dataroot, version=data_version, device=device,
                                opset=opset, sample_token=sample_token)
    if as_json:
        click.echo(json.dumps({**meta, "folder": str(folder)}, indent=2))
        return
    ins = ", ".join(f"{i['path_str']} {i['dtype']}{i['shape']}" for i in meta["inputs"])
    click.echo(f"{meta['model']}: {fmt} export in {folder}")
    click.echo(f"  inputs:  {ins}")
    click.echo(f"  outputs: {', '.join(o['path_str'] for o in meta['outputs'])}")
    if meta["baked"]:
        click.echo(f"  baked in at trace time: {', '.join(b['path_str'] for b in meta['baked'])}")
    click.echo(f"  {meta['exporter']['exporter']}, torch {meta['exporter']['torch']}"
               + (f", opset {meta['exporter']['opset']}" if meta["exporter"].get("opset") else ""))
