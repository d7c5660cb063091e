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
