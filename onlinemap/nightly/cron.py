"""``onlinemap cron install|remove|status``: one managed crontab block that runs ``onlinemap nightly``.

cron's environment is bare (PATH=/usr/bin:/bin, no venv, no ONLINEMAP_HOME), so the line names
the venv's ``onlinemap`` by absolute path and sets ONLINEMAP_HOME and PATH itself; output is
appended to ``ONLINEMAP_HOME/logs/nightly.log``. The nightly job takes its own lock, so a night
that overruns into the next start is refused, not doubled.

The user's other crontab lines are kept: ours sit between two marker comments and only that
block is replaced or removed. The crontab is read with ``crontab -l`` and written with
``crontab -`` (argv lists, never a shell). ``$ONLINEMAP_CRONTAB`` (or ``crontab=``) names another
binary: tests use a stand-in script and never touch the real crontab (the setup ``cron`` stage
honours it too).

cron's environment has no ``NUSCENES_ROOT`` either: ``install`` records the dataroot (``--dataroot``,
else ``$NUSCENES_ROOT``) and version in the nightly config the line runs, so a cron night measures
the same data as ``onlinemap nightly`` by hand.

On RunPod pods cron is not installed and nothing starts it (no systemd): ``apt-get install -y
cron && service cron start``, redone at every pod start (research/runpod-eval.md §1.2).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError, UsageError

__all__ = ["BEGIN", "END", "cron_line", "install", "remove", "status", "read_crontab", "onlinemap_argv",
           "CronStatus", "crontab_command"]

BEGIN = "# >>> onlinemap nightly (managed by `onlinemap cron`; edit with `onlinemap cron install`) >>>"
END = "# <<< onlinemap nightly <<<"
DEFAULT_AT = "03:00"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def crontab_command(crontab: str | None = None) -> tuple[str, str | None]:
    """(the crontab name asked for: ``crontab``, ``$ONLINEMAP_CRONTAB`` or the argument; its full path or None)."""
    name = crontab or os.environ.get("ONLINEMAP_CRONTAB") or "crontab"
    return name, shutil.which(name)


def _crontab_bin(crontab: str | None = None) -> str:
    name, found = crontab_command(crontab)
    if not found:
        raise MissingPrerequisiteError(f"no `{name}` command on this machine",
                                       "install cron (apt-get install -y cron && service cron start)")
    return found


def onlinemap_argv() -> list[str]:
    """The absolute command that starts this onlinemap: the venv's console script, else python -m onlinemap."""
    script = Path(sys.executable).parent / "onlinemap"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(Path(sys.executable).absolute()), "-m", "onlinemap"]


def _parse_at(at: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", at or "")
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise UsageError(f"invalid time {at!r}", "use HH:MM, 24-hour, e.g. --at 03:00")
    return int(m.group(1)), int(m.group(2))


def cron_line(at: str = DEFAULT_AT, *, config: Path | None = None, home: Path | None = None,
              argv: list[str] | None = None) -> str:
    """The crontab entry: ``MM HH * * * cd HOME && ONLINEMAP_HOME=… PATH=… onlinemap nightly … >> log 2>&1``."""
    hour, minute = _parse_at(at)
    home = Path(home or paths.home()).absolute()
    log = home / "logs" / "nightly.log"
    cmd = [*(argv or onlinemap_argv()), "nightly"]
    if config:
        cmd += ["--config", str(Path(config).absolute())]
    bindir = str(Path(cmd[0]).parent)
    env = [f"ONLINEMAP_HOME={shlex.quote(str(home))}", f"PATH={shlex.quote(bindir + ':' + SYSTEM_PATH)}"]
    # cron hands the command to /bin/sh; '%' is special in crontab (a newline) and must be escaped
    command = (f"mkdir -p {shlex.quote(str(log.parent))} && cd {shlex.quote(str(home))} && "
               f"{' '.join(env)} {shlex.join(cmd)} >> {shlex.quote(str(log))} 2>&1")
    return f"{minute} {hour} * * * {command.replace('%', chr(92) + '%')}"


def read_crontab(crontab: str | None = None) -> str:
    """The current user's crontab text ("" when there is none)."""
    proc = subprocess.run([_crontab_bin(crontab), "-l"], capture_output=True, text=True)
    if proc.returncode != 0:
        if "no crontab" in (proc.stderr or "").lower():
            return ""
        raise OnlinemapError(f"`crontab -l` failed ({proc.returncode}): {proc.stderr.strip()[:200]}",
                             "check that cron is installed and you may use it")
    return proc.stdout


def _write_crontab(text: str, crontab: str | None) -> None:
    proc = subprocess.run([_crontab_bin(crontab), "-"], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OnlinemapError(f"`crontab -` failed ({proc.returncode}): {proc.stderr.strip()[:200]}",
                             "check the crontab by hand: crontab -l")


def _strip_block(text: str) -> tuple[str, list[str]]:
    """(text without our block, the block's lines)."""
    out, block, inside = [], [], False
    for line in text.splitlines():
        if line.strip() == BEGIN:
            inside = True
            continue
        if line.strip() == END and inside:
            inside = False
            continue
        (block if inside else out).append(line)
    return "\n".join(out).rstrip("\n"), block


def install(at: str = DEFAULT_AT, *, config: Path | None = None, crontab: str | None = None,
            dataroot: str | Path | None = None, version: str | None = None) -> tuple[str, str | None]:
    """Add or replace the managed block; return (the cron line written, what was recorded in the config).

    ``dataroot`` (default ``$NUSCENES_ROOT``) and ``version`` go into the nightly config the line
    runs (``config``, else ONLINEMAP_HOME/nightly.toml), which cron's bare environment still reads.
    """
    from onlinemap.nightly.config import load_config, record_dataset

    line = cron_line(at, config=config)
    dataroot = dataroot or os.environ.get("NUSCENES_ROOT") or None
    load_config(config)            # a broken config is refused before the crontab changes
    recorded = record_dataset(dataroot, version, config)[1] if dataroot else None
    rest, _old = _strip_block(read_crontab(crontab))
    text = (rest + "\n" if rest else "") + f"{BEGIN}\n{line}\n{END}\n"
    paths.ensure_dir(paths.logs_dir())
    _write_crontab(text, crontab)
    return line, recorded


def remove(*, crontab: str | None = None) -> bool:
    """Remove the managed block (other lines stay); True if there was one."""
    rest, block = _strip_block(read_crontab(crontab))
    if not block:
        return False
    _write_crontab(rest + "\n" if rest else "", crontab)
    return True


@dataclass
class CronStatus:
    installed: bool
    line: str | None
    daemon: str | None        # a running cron daemon's process name, or None
    log: str
    last_night: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _cron_daemon() -> str | None:
    import psutil

    for proc in psutil.process_iter(["name"]):
        if proc.info.get("name") in ("cron", "crond", "cronie", "busybox-crond"):
            return proc.info["name"]
    return None


def status(*, crontab: str | None = None) -> CronStatus:
    """Is our block installed, is a cron daemon running, where is the log, which night ran last."""
    _rest, block = _strip_block(read_crontab(crontab))
    nights = sorted(p.name for p in (paths.home() / "nightly").glob("????-??-??") if p.is_dir())
    return CronStatus(installed=bool(block), line=block[0] if block else None, daemon=_cron_daemon(),
                      log=str(paths.logs_dir() / "nightly.log"), last_night=nights[-1] if nights else None)
