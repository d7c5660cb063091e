"""The ``onlinemap`` command: a click group whose commands are imported only when named.

``onlinemap --help`` loads click and this file, nothing else (tests assert it). Every expected
failure is an OnlinemapError: printed as one line (``error: what -> how to fix``) with its exit
code (docs/exit-codes.md). Anything else is a bug and keeps its traceback; ``--debug`` shows
tracebacks for expected failures too.
"""
from __future__ import annotations

import importlib
import logging
import sys

import click

__all__ = ["main", "cli"]

# command name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS = {
    "models": ("onlinemap.cli.models", "models", "List the models under envs/ and whether each is ready."),
    "test": ("onlinemap.cli.test", "test", "Smoke-run one model on a few samples and summarise it."),
    "bench": ("onlinemap.cli.bench", "bench", "Benchmark several models in turn, measured the same way."),
    "results": ("onlinemap.cli.results", "results", "List the runs on disk, newest first."),
    "data": ("onlinemap.cli.data", "data", "Datasets: write the synthetic nuScenes-format dataset."),
    "nightly": ("onlinemap.cli.nightly", "nightly", "Run the nightly benchmark and flag regressions against history."),
    "cron": ("onlinemap.cli.cron", "cron", "Install, remove or show the crontab line that runs the nightly job."),
    "kernel": ("onlinemap.cli.kernel", "kernel", "Jupyter kernels per model env: install, list, remove."),
    "sky": ("onlinemap.cli.sky", "sky", "SkyPilot: generate one task per model, merge returned results."),
    "env": ("onlinemap.cli.env", "env", "Model environments: lock, create, list, remove."),
    "setup": ("onlinemap.cli.setup", "setup", "Set up this machine stage by stage (what ./runpod_setup.sh runs)."),
    "doctor": ("onlinemap.cli.doctor", "doctor", "Replay every setup check without changing anything; a table."),
    "eval": ("onlinemap.cli.eval", "eval_cmd", "Evaluate runs' accuracy (mAP/NDS, map mAP, planning L2); writes metrics.json."),
    "compare": ("onlinemap.cli.compare", "compare", "Compare runs side by side: latency, memory, accuracy, env, GPU."),
    "report": ("onlinemap.cli.report", "report", "Write a report: summary.md, PNG plots, comparison_summary.json."),
    "viz": ("onlinemap.cli.viz", "viz", "Bird's-eye-view PNG of one sample's predictions over ground truth."),
    "export": ("onlinemap.cli.export", "export", "Export a model's forward to ONNX or PT2 inside its env."),
    "reproduce": ("onlinemap.cli.reproduce", "reproduce", "Run a model on its paper's split; published vs measured, a verdict."),
    "verify": ("onlinemap.cli.verify", "verify", "Compare a backend (onnxruntime, pt2) against PyTorch, tensor by tensor."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is invoked."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="onlinemap")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show full tracebacks for expected errors too.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Install, test, benchmark and compare nuScenes online-mapping models, each in its own locked env.

    \b
    Start here:   onlinemap models
    Smoke test:   onlinemap test --model reference
    Benchmark:    onlinemap bench --models all
    Exit codes:   0 ok, 1 run failed, 2 usage, 3 missing prerequisite, 4 bad input file, 75 locked,
                  124 timeout, 129 hung up, 130 interrupted, 143 terminated (docs/exit-codes.md)
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning OnlinemapError into one line and its exit code."""
    from onlinemap.errors import OnlinemapError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="onlinemap", standalone_mode=False)
    except OnlinemapError as exc:
        if debug:
            raise
        click.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
