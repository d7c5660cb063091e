"""The crontab block, written through a stand-in ``crontab`` (the real one is never touched)."""
from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

FAKE = '''#!{python}
"""Test-only stand-in for crontab(1): keeps the table in $FAKE_CRONTAB_FILE."""
import os, sys
path = os.environ["FAKE_CRONTAB_FILE"]
with open(path + ".calls", "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:] == ["-l"]:
    if not os.path.exists(path):
        sys.stderr.write("no crontab for tester\\n")
        sys.exit(1)
    sys.stdout.write(open(path).read())
elif sys.argv[1:] == ["-"]:
    open(path, "w").write(sys.stdin.read())
else:
    sys.exit(2)
'''


@pytest.fixture
def fake_crontab(tmp_path, monkeypatch, om_home) -> Path:
    script = tmp_path / "crontab"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    table = tmp_path / "table.txt"
    monkeypatch.setenv("ONLINEMAP_CRONTAB", str(script))
    monkeypatch.setenv("FAKE_CRONTAB_FILE", str(table))
    return table


def test_install_keeps_other_lines_and_replaces_its_block(fake_crontab, om_home):
    fake_crontab.write_text("MAILTO=me\n0 1 * * * /usr/bin/backup\n")
    proc = run_cli("cron", "install", "--at", "02:30")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("cron", "install", "--at", "04:05")           # replaces, never duplicates
    assert proc.returncode == 0, proc.stderr
    text = fake_crontab.read_text()
    assert text.startswith("MAILTO=me\n0 1 * * * /usr/bin/backup\n")
    assert text.count("onlinemap nightly (managed") == 1 and text.count(" nightly") >= 1
    line = [ln for ln in text.splitlines() if ln.startswith("5 4 * * * ")]
    assert len(line) == 1
    cmd = line[0][len("5 4 * * * "):]
    words = shlex.split(cmd)
    assert f"ONLINEMAP_HOME={om_home}" in words
    path_var = next(w for w in words if w.startswith("PATH="))
    exe = words[words.index("nightly") - 1]
    assert os.path.isabs(exe) and (exe.endswith("/onlinemap") or exe.endswith("python") or "python" in exe)
    assert str(Path(exe).parent) in path_var and "/usr/bin" in path_var
    assert words[-3:] == [">>", str(om_home / "logs" / "nightly.log"), "2>&1"]
    assert "%" not in cmd.replace("\\%", "")
    calls = Path(str(fake_crontab) + ".calls").read_text().split("\n")
    assert "-l" in calls and "-" in calls

    st = run_cli("cron", "status", "--json")
    assert st.returncode == 0 and '"installed": true' in st.stdout

    assert run_cli("cron", "remove").returncode == 0
    assert fake_crontab.read_text() == "MAILTO=me\n0 1 * * * /usr/bin/backup\n"
    assert "nothing to remove" in run_cli("cron", "remove").stdout


def test_install_on_empty_crontab_and_bad_time(fake_crontab):
    assert run_cli("cron", "install").returncode == 0
    assert "0 3 * * * " in fake_crontab.read_text()
    bad = run_cli("cron", "install", "--at", "25:00")
    assert bad.returncode == 2 and "HH:MM" in bad.stderr


def test_missing_crontab_binary_is_a_missing_prerequisite(om_home, monkeypatch):
    monkeypatch.setenv("ONLINEMAP_CRONTAB", "/nonexistent/crontab")
    proc = run_cli("cron", "status")
    assert proc.returncode == 3 and "apt-get install -y cron" in proc.stderr


CRON_CONFIG = ('models = ["reference"]\nsamples = 2\nwarmup = 0\ndevice = "cpu"\n'
               '[options]\nimage_height = 32\nimage_width = 32\nwidth = 4\n')


def _night_dataroots(home: Path) -> list[str]:
    import json

    out = []
    for rec in sorted((home / "results").glob("*/run.json")):
        data = json.loads(rec.read_text())
        if data.get("kind") == "nightly":
            out.append((data["created"], data["status"], data["settings"]["dataroot"]))
    return [d for _, _, d in sorted(out)], [s for _, s, _ in sorted(out)]


def test_the_cron_line_under_env_i_uses_the_dataroot_of_a_run_by_hand(fake_crontab, om_home, synth_root):
    """cron's environment is only what the line sets: the installed line, run under ``env -i``, must measure the
    same data as ``onlinemap nightly`` by hand with NUSCENES_ROOT (the dataroot is recorded in nightly.toml)."""
    import subprocess

    config = om_home / "nightly.toml"
    config.write_text(CRON_CONFIG)
    installed = run_cli("cron", "install")                         # NUSCENES_ROOT=synth_root (om_home fixture)
    assert installed.returncode == 0, installed.stderr
    assert f"recorded dataroot {synth_root}" in installed.stdout
    assert config.read_text().endswith(CRON_CONFIG)                  # the user's file is kept below the new key
    line = next(ln for ln in fake_crontab.read_text().splitlines() if ln.startswith("0 3 * * * "))
    command = line[len("0 3 * * * "):].replace("\\%", "%")
    cron = subprocess.run(["env", "-i", "/bin/sh", "-c", command], capture_output=True, text=True, timeout=300)
    log = (om_home / "logs" / "nightly.log").read_text()
    assert cron.returncode == 0, log[-3000:]

    by_hand = run_cli("nightly", "--force", timeout=300)             # the same job, from this shell
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
    dataroots, statuses = _night_dataroots(om_home)
    assert statuses == ["ok", "ok"], log[-2000:]
    assert dataroots == [str(synth_root), str(synth_root)]

    again = run_cli("cron", "install", "--dataroot", str(om_home))   # a named dataroot is kept, not replaced
    assert again.returncode == 0 and "keeps its dataroot" in again.stdout
    assert config.read_text().count("dataroot =") == 1


def test_the_setup_cron_stage_honours_onlinemap_crontab(fake_crontab, om_home):
    """`onlinemap cron` reads $ONLINEMAP_CRONTAB; the setup stage's check must look at the same binary."""
    from onlinemap.setup.models import _check_cron

    res = _check_cron()
    assert "not installed" not in res.detail and "not in the crontab" in res.detail
    assert run_cli("cron", "install").returncode == 0
    assert "no cron daemon" in _check_cron().detail or _check_cron().ok
