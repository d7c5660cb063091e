"""``onlinemap env lock|create|list|remove``: the models' locked conda environments (thin wrappers)."""
from __future__ import annotations

import json

import click

from onlinemap.cli.options import positive_int


def _specs(model: str | None, all_: bool, *, conda_only: bool = True):
    from onlinemap.errors import UsageError
    from onlinemap.registry.discover import find_model, load_models

    if bool(model) == bool(all_):
        raise UsageError("name one MODEL or pass --all", "e.g. onlinemap env create MapTR")
    if model:
        return [find_model(model)]
    return [s for s in load_models() if s.env_kind == "conda" or not conda_only]


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.group("env")
def env() -> None:
    """Lock, create, list and remove the models' conda environments.

    \b
    onlinemap env lock MapTR        make envs/MapTR/conda-lock.yml (needs conda-lock + network)
    onlinemap env create MapTR      env + repo + ops + weights under ONLINEMAP_HOME (resumable)
    onlinemap env list              every env prefix, its manager, lock hash, size, ready?
    onlinemap env remove MapTR      delete MapTR's env prefixes
    """


@env.command("lock")
@click.argument("model", required=False)
@click.option("--all", "all_", is_flag=True, help="lock every conda model (each is tried; failures are listed)")
@click.option("--variant", default="paper", show_default=True,
              help="env variant to lock (its files are in envs/<Model>/variants/<variant>/)")
def lock(model, all_, variant):
    """Make envs/<Model>/conda-lock.yml with conda-lock (linux-64, the folder's virtual-packages.yml).

    With --variant modern: envs/<Model>/variants/modern/conda-lock.yml from the files beside it.

    conda-lock reads envs/<Model>/conda-lock-input.yml (environment.yml with its pip options rewritten),
    kept beside the lock; an unchanged pack leaves the lock's bytes as they are. It needs the conda
    channels, PyPI and (for a pip: section) its PyPI->conda name map from GitHub.
    """
    from onlinemap.environments.lock import lock_env

    _each(_specs(model, all_), lambda spec: lock_env(spec.with_variant(variant), progress=_say), all_)


def _each(specs, action, all_: bool) -> list:
    """Run ``action`` per model; with --all report a failure and go on, then fail with the count."""
    from onlinemap.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, OnlinemapError

    results, failures = [], []
    for spec in specs:
        try:
            results.append(action(spec))
        except OnlinemapError as exc:
            if not all_ or exc.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                raise
            failures.append(exc)          # --all: report it and go on with the next model
            _say(f"error: {exc.one_line()}")
    if failures:
        first = failures[0]
        raise type(first)(f"{len(failures)} of {len(failures) + len(results)} models failed; first: {first.message}",
                          first.hint, exit_code=first.exit_code)
    return results


@env.command("create")
@click.argument("model", required=False)
@click.option("--all", "all_", is_flag=True, help="create every conda model's env, one after the other")
@click.option("--jobs", type=positive_int, default=None, help="parallel compile jobs for the ops build (MAX_JOBS)")
@click.option("--manager", default=None, help="micromamba | mamba | conda | rattler | a path [default: best found]")
@click.option("--force", is_flag=True, help="rebuild the env even if a matching one passes its smoke import")
@click.option("--skip-weights", is_flag=True, help="do not download the checkpoint")
@click.option("--device", default="cuda:0", show_default=True, help="GPU whose architecture is checked and built for")
@click.option("--json", "as_json", is_flag=True, help="print what was done as JSON")
@click.option("--echo", is_flag=True, help="stream the managers' output too (it always goes to the log)")
@click.option("--variant", default=None,
              help="env variant (paper | modern ...) [default: chosen from the GPU's compute capability]")
@click.option("--dry-run", is_flag=True, help="print the chosen variant and the steps it would run; change nothing")
def create(model, all_, jobs, manager, force, skip_weights, device, as_json, echo, variant, dry_run):
    """Create a model's env, check out its repo, build its ops and fetch its weights.

    Reuses a ready env whose info file matches the lock and whose smoke import passes; anything
    that fails leaves no half-built env behind. Log: ONLINEMAP_HOME/logs/env-<Model>.log.
    """
    from onlinemap.environments.create import create_env

    results = []

    def one(spec):
        results.append(create_env(spec, manager=manager, force=force, jobs=jobs, skip_weights=skip_weights,
                                  device=device, progress=_say, echo=echo, variant=variant,
                                  dry_run=dry_run).to_dict())

    try:
        _each(_specs(model, all_), one, all_)
    finally:
        if as_json and (all_ or results):
            click.echo(json.dumps(results, indent=2))


def _size(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


@env.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(as_json):
    """Every env prefix under ONLINEMAP_HOME/envs: model, manager, lock hash, size, ready, current."""
    from onlinemap.cli.render import table
    from onlinemap.environments.manage import list_envs

    rows = list_envs()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no envs yet: onlinemap env create MODEL")
        return
    click.echo(table([[r["model"], r["manager"], r["lock_hash"], _size(r["size_bytes"]), "yes" if r["ready"] else "no",
                       "yes" if r["current"] else "stale", r["prefix"]] for r in rows],
                     ["model", "manager", "lock", "size", "ready", "lock matches", "prefix"]))


@env.command("remove")
@click.argument("model")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def remove(model, yes):
    """Delete every env prefix of MODEL (the repo, weights and package cache are kept).

    MODEL must be a model under envs/ or the model of an env prefix; other folders are never touched.
    """
    import sys

    from onlinemap.environments.manage import list_envs, remove_envs
    from onlinemap.errors import UsageError
    from onlinemap.registry.discover import find_model

    rows = list_envs(sizes=False)
    if not model.strip():
        raise UsageError("env remove needs a model name, got an empty one", "e.g. onlinemap env remove MapTR")
    targets = [r["prefix"] for r in rows if r["model"].lower() == model.lower()]
    if not targets:
        find_model(model)            # an unknown name: exit 2 listing the known models
        click.echo(f"no env of {model} under the envs folder")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"env remove {model} asks for confirmation and there is no terminal to ask on",
                             f"pass --yes: onlinemap env remove {model} --yes")
        click.confirm(f"remove {len(targets)} env(s): {', '.join(targets)}?", abort=True)
    for path in remove_envs(model):
        click.echo(f"removed {path}")
