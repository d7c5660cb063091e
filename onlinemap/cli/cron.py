"""``onlinemap cron install [--at HH:MM] | remove | status``: the crontab line that runs ``onlinemap nightly``."""
from __future__ import annotations

import json

import click


@click.group("cron")
def cron():
    """Schedule `onlinemap nightly` with cron (one managed block in your crontab).

    On a RunPod pod cron is not installed and not started: apt-get install -y cron &&
    service cron start (again after every pod start). $ONLINEMAP_CRONTAB overrides the crontab binary.
    """


@cron.command("install")
@click.option("--at", "at", default="03:00", show_default=True, help="local time, HH:MM")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="nightly.toml to pass to the job [default: ONLINEMAP_HOME/nightly.toml]")
@click.option("--dataroot", type=click.Path(file_okay=False, exists=True), default=None,
              help="dataset the nightly job uses, recorded in its config [default: $NUSCENES_ROOT]")
@click.option("--version", "version", default=None, help="nuScenes version to record with it, e.g. v1.0-mini")
def install(at, config_path, dataroot, version):
    """Add (or replace) the nightly line.

    cron passes no NUSCENES_ROOT: the dataroot (--dataroot, else $NUSCENES_ROOT) is written into the
    nightly config the line runs, so cron nights measure the same data as `onlinemap nightly` by hand.
    """
    from onlinemap.nightly import cron as c

    line, recorded = c.install(at, config=config_path, dataroot=dataroot, version=version)
    click.echo(f"installed: {line}")
    if recorded:
        click.echo(recorded)
    if c.status().daemon is None:
        click.echo("warning: no cron daemon is running here (on a pod: apt-get install -y cron && service cron start)",
                   err=True)


@cron.command("remove")
def remove():
    """Remove the nightly line (other crontab lines stay)."""
    from onlinemap.nightly import cron as c

    click.echo("removed" if c.remove() else "nothing to remove: no onlinemap block in the crontab")


@cron.command("status")
@click.option("--json", "as_json", is_flag=True)
def status(as_json):
    """Show the installed line, whether cron runs, the log and the last night."""
    from onlinemap.nightly import cron as c

    st = c.status()
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2))
        return
    click.echo(f"installed:  {st.line if st.installed else 'no'}")
    click.echo(f"cron daemon: {st.daemon or 'not running'}")
    click.echo(f"log:        {st.log}")
    click.echo(f"last night: {st.last_night or 'none yet'}")
