"""``onlinemap compare``: runs side by side — latency, memory, accuracy, env and GPU — in one table."""
from __future__ import annotations

import json

import click

__all__ = ["compare", "run_selection", "selection_kwargs"]


def run_selection(func):
    """RUN_ID… arguments plus ``--latest`` / ``--models`` (shared by eval, compare and viz)."""
    func = click.option("--models", "-m", default=None,
                        help="with --latest: A,B or all [default: all]")(func)
    func = click.option("--latest", is_flag=True, help="the newest ok run of each model instead of run ids")(func)
    return click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")(func)


def selection_kwargs(run_ids, latest: bool, models: str | None) -> dict:
    """The API's run-selection keywords; ``--models`` alone implies ``--latest``."""
    if run_ids:
        return {"run_ids": list(run_ids), "latest": latest, "models": models}
    return {"run_ids": None, "latest": latest or bool(models), "models": models or ("all" if latest else None)}


def _mem(row: dict, key: str) -> str:
    from onlinemap.cli.render import fmt_mb

    return fmt_mb(row[key], row[key[:-3] + "_reason"])


def _acc(row: dict) -> str:
    parts = []
    if row["det_NDS"] is not None:
        parts.append(f"NDS {row['det_NDS']:.3f} mAP {row['det_mAP']:.3f}" if row["det_mAP"] is not None
                     else f"NDS {row['det_NDS']:.3f}")
    if row["map_mAP"] is not None:
        parts.append(f"map mAP {row['map_mAP']:.3f}")
    if row["plan_L2_3s"] is not None:
        parts.append(f"L2@3s {row['plan_L2_3s']:.2f} m")
    if not parts:
        return "n/a (not evaluated)" if not row["has_metrics"] else "n/a"
    return ", ".join(parts)


def comparison_table(rows: list[dict]) -> str:
    """The terminal table of comparison rows."""
    from onlinemap.cli.render import fmt_ms, table

    return table([[r["model"], r.get("backend") or "torch", r.get("variant") or "-", r["run_id"][-6:], r["status"], fmt_ms(r["p50_ms"]), fmt_ms(r["p90_ms"]),
                   "n/a" if r["fps"] is None else f"{r['fps']:.1f}",
                   _mem(r, "torch_max_allocated_mb"), _mem(r, "nvml_device_delta_peak_mb"),
                   _mem(r, "nvml_process_used_peak_mb"), _mem(r, "host_rss_peak_mb"), _acc(r), r.get("reproduction") or "-",
                   f"{r['env_kind'] or 'n/a'} {r['lock_hash'] or ''}".strip(), r["gpu"] or f"none ({r['device']})"]
                  for r in rows],
                 ["model", "backend", "variant", "run", "status", "p50", "p90", "FPS", "torch peak", "NVML dev Δ", "NVML proc",
                  "host RSS", "accuracy", "reproduction", "env", "GPU"])


@click.command("compare")
@run_selection
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="also write comparison_summary.json and comparison.csv into this folder [default: write nothing]")
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON")
@click.option("--csv", "as_csv", is_flag=True, help="print the rows as CSV")
def compare(run_ids, latest, models, out, as_json, as_csv):
    """Compare runs side by side: latency, memory, accuracy, env and GPU.

    \b
    onlinemap compare 20260101-1200 20260101-1300      run ids (unique prefixes are enough)
    onlinemap compare --latest --models all            the newest ok run of each model
    Accuracy appears once `onlinemap eval` has written the run's metrics.json. A run whose driver
    died shows as `crashed`, with figures computed from the samples it left on disk. Prints only;
    --out DIR also writes comparison_summary.json and comparison.csv (`onlinemap report`: a full report).
    """
    from onlinemap import api
    from onlinemap.report.compare import rows_to_csv

    result = api.compare(**selection_kwargs(run_ids, latest, models), out=out)
    rows = result["rows"]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    elif as_csv:
        click.echo(rows_to_csv(rows), nl=False)
    else:
        click.echo(comparison_table(rows))
        if any(not r["has_metrics"] for r in rows):
            click.echo("accuracy: run `onlinemap eval RUN_ID…` for the runs marked 'not evaluated'")
    if result["files"]:
        click.echo(f"wrote {result['files']['summary']}", err=True)
