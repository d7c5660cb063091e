"""``onlinemap env create|list|remove`` end to end (stand-in micromamba), and what ``onlinemap test``
says for a conda model that is not installed."""
from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.environments import channel as ch


def _lock(channel):
    def write(folder):
        ch.write_lock_v1(folder / "conda-lock.yml", channel["root"], [channel["pkgs"]["python"], channel["pkgs"]["hello-mod"]])
    return write


def test_create_list_remove(fakeconda, make_pack, channel, git_redirect, om_home):
    make_pack(lock=_lock(channel))
    proc = run_cli("env", "create", "FakeMap", "--json")
    assert proc.returncode == 0, proc.stderr
    created = json.loads(proc.stdout)[0]
    assert created["manager"] == "micromamba" and created["weights"]
    assert "[FakeMap] env: ready at" in proc.stderr                   # progress lines
    rows = json.loads(run_cli("env", "list", "--json", check=True).stdout)
    assert [(r["model"], r["manager"], r["ready"], r["current"]) for r in rows] == [("FakeMap", "micromamba", True, True)]
    assert rows[0]["size_bytes"] > 0
    table = run_cli("env", "list", check=True).stdout
    assert "FakeMap" in table and "micromamba" in table
    models = json.loads(run_cli("models", "--json", check=True).stdout)
    fake = next(m for m in models if m["name"] == "FakeMap")
    assert fake["installed"], fake
    out = run_cli("env", "remove", "FakeMap", "--yes", check=True).stdout
    assert "removed" in out and not list((om_home / "envs").glob("FakeMap-*"))


def test_test_command_names_missing_steps(fakeconda, make_pack, om_home, tmp_path):
    make_pack()
    proc = run_cli("test", "--model", "FakeMap", "--samples", "1", "--dataroot", str(tmp_path / "no-data"))
    assert proc.returncode == 3, proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1
    line = err[0]
    for step in ("env:", "repo:", "weights:", "data:"):
        assert step in line, line
    assert "onlinemap env create FakeMap" in line
