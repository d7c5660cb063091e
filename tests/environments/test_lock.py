"""``onlinemap env lock``: argv given to conda-lock (the stand-in), and the one-line errors when
conda-lock is missing or the channels are unreachable. Nothing here reaches the network."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_missing_conda_lock_exit_3(fakeconda, make_pack, monkeypatch):
    make_pack()
    (fakeconda.bin / "conda-lock").unlink()
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 3, proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "conda-lock not found" in err[0] and "pip install conda-lock" in err[0]


def test_unreachable_channels_exit_3(fakeconda, make_pack, monkeypatch):
    make_pack()
    monkeypatch.setenv("FAKECONDA_OFFLINE", "1")
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 3, proc.stderr
    assert "could not reach the conda channels" in proc.stderr


def test_lock_argv(fakeconda, make_pack):
    spec = make_pack()
    (spec.folder / "virtual-packages.yml").write_text("subdirs: {linux-64: {packages: {__cuda: '11.1'}}}\n")
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 0, proc.stderr
    argv = fakeconda.calls("conda-lock")[0]["argv"]
    derived = Path(argv[2])                     # environment.yml rewritten for conda-lock (test_lock_input.py)
    assert argv == ["lock", "-f", str(derived), "-p", "linux-64", "--virtual-package-spec",
                    str(spec.virtual_packages_file), "--lockfile", str(spec.lock_file)]
    assert derived.name == "environment.yml" and derived.parent.name.startswith("onlinemap-lock-FakeMap-")
    assert not derived.parent.exists()          # a temporary copy, gone after the lock
    assert spec.lock_file.is_file()
