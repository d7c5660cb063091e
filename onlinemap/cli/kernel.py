"""``onlinemap kernel install|list|remove``: a Jupyter kernelspec per model env (files only, no server)."""
from __future__ import annotations

import json
import sys

import click

_prefix = click.option("--prefix", type=click.Path(file_okay=False), default=None,
                       help="write under PREFIX/share/jupyter/kernels [default: the user's Jupyter data dir]")


@click.group("kernel")
def kernel():
    """Jupyter kernels that run a model's own env (named onlinemap-<model>)."""


def _names(model, all_):
    from onlinemap.errors import UsageError
    from onlinemap.registry.discover import known_model_names

    if all_ == bool(model):
        raise UsageError("name one MODEL or --all", "e.g. onlinemap kernel install MapTR")
    return known_model_names() if all_ else [model]


@kernel.command("install")
@click.argument("model", required=False)
@click.option("--all", "all_", is_flag=True, help="every model whose env is ready")
@_prefix
def install(model, all_, prefix):
    """Write the kernelspec of MODEL (or of every ready model with --all)."""
    from onlinemap.errors import MissingPrerequisiteError
    from onlinemap.kernels import install_kernel

    failed = 0
    for name in _names(model, all_):
        try:
            click.echo(f"installed {install_kernel(name, prefix=prefix)}")
        except MissingPrerequisiteError as exc:
            if not all_:
                raise
            failed += 1
            click.echo(f"skipped {name}: {exc.one_line()}", err=True)
    sys.exit(3 if failed and all_ and failed == len(_names(model, all_)) else 0)


@kernel.command("list")
@_prefix
@click.option("--json", "as_json", is_flag=True)
def list_(prefix, as_json):
    """List the onlinemap kernelspecs."""
    from onlinemap.kernels import kernels_dir, list_kernels

    rows = list_kernels(prefix=prefix)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo(f"no onlinemap kernels in {kernels_dir(prefix)}")
    for r in rows:
        click.echo(f"{r.name:28} {r.python}  ({r.path})")


@kernel.command("remove")
@click.argument("model", required=False)
@click.option("--all", "all_", is_flag=True)
@_prefix
def remove(model, all_, prefix):
    """Remove the kernelspec of MODEL (or all onlinemap kernelspecs)."""
    from onlinemap.kernels import list_kernels, remove_kernel

    names = [k.model or k.name[len("onlinemap-"):] for k in list_kernels(prefix=prefix)] if all_ else _names(model, False)
    for name in names:
        click.echo(f"removed onlinemap-{name.lower()}" if remove_kernel(name, prefix=prefix)
                   else f"no kernel for {name}")
