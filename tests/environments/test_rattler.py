"""A real env built by py-rattler from a conda-lock v1 file, offline.

Real: the conda packages (hand-made noarch .tar.bz2 archives, tests/environments/channel.py), the local
``file://`` channel indexed by ``rattler.index.index_fs``, the conda-lock v1 YAML with their true
sha256/md5, ``rattler.LockFile.from_path`` + ``rattler.install`` into ``ONLINEMAP_HOME/envs/<Model>-<hash>``
with ``ONLINEMAP_HOME/pkgs`` as cache, the git checkout and the ops step, the smoke import, the info file,
``resolve_environment`` and the launch through ``run_supervised``.
Stood in: the package named ``python`` is not CPython from conda-forge (none is reachable offline) but a
venv-style interpreter (bin/python -> this test run's base interpreter, plus pyvenv.cfg), so the env has
its own sys.prefix and site-packages. No GPU here: ``gpu={"available": False}``.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from onlinemap.environments import resolve_environment
from onlinemap.environments.base import read_env_info, run_prefix_argv
from onlinemap.environments.create import create_env
from onlinemap.environments.rattler_install import HashMismatchError
from onlinemap.proc import run_supervised
from tests.environments import channel as ch

pytest.importorskip("rattler", reason="py-rattler is not installed")

NO_GPU = {"available": False, "reason": "test: no GPU on this machine"}


def _lock(channel, **kw):
    def write(folder: Path):
        ch.write_lock_v1(folder / "conda-lock.yml", channel["root"],
                         [channel["pkgs"][n] for n in ("python", "hello-mod", "extra-mod")], **kw)
    return write


def test_rattler_env_end_to_end(fakeconda, make_pack, channel, git_redirect, om_home, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")          # no conda manager at all: rattler is the fallback
    spec = make_pack(lock=_lock(channel), imports=("hello_mod", "extra_mod"))
    res = create_env(spec, gpu=NO_GPU, progress=lambda s: None)
    assert res.manager == "rattler" and res.steps == ["install", "ops", "info"]
    prefix = Path(res.prefix)
    assert read_env_info(prefix)["manager"] == "rattler"
    assert (prefix / "conda-meta" / "hello-mod-1.0-0.json").is_file()
    assert any((om_home / "pkgs").iterdir())                     # the shared package cache was used
    assert (Path(res.repo) / "built.txt").read_text() == "ok"

    env = resolve_environment(spec)
    assert env.manager == "rattler" and run_prefix_argv(env) == []
    script = tmp_path / "probe.py"
    script.write_text("import os, sys, hello_mod, extra_mod\n"
                      "print('OK', hello_mod.VALUE, extra_mod.VALUE, sys.prefix)\n")
    log = tmp_path / "launch.log"
    out = run_supervised(env.launch_argv(script), log_path=log)
    assert out.ok, log.read_text()
    assert f"OK hello-mod-1.0 extra-mod-2.1 {prefix}" in log.read_text()
    # the package's bin/ script is installed and executable
    tool = subprocess.run([str(prefix / "bin" / "hello-tool")], capture_output=True, text=True)
    assert tool.stdout.strip() == "hello-tool from hello-mod"
    # the driver's venv packages are NOT visible inside: the env is isolated
    probe = subprocess.run([env.python, "-c", "import click"], capture_output=True, text=True)
    assert probe.returncode != 0


def test_rattler_refuses_hash_mismatch(fakeconda, make_pack, channel, git_redirect, om_home):
    """py-rattler does not enforce sha256 for file:// URLs: onlinemap checks them first and refuses."""
    spec = make_pack(lock=_lock(channel, override={"extra-mod": {"hash": {"sha256": "0" * 64, "md5": "0" * 32}}}),
                     imports=("hello_mod",))
    with pytest.raises(HashMismatchError, match="extra-mod 2.1") as exc:
        create_env(spec, manager="rattler", gpu=NO_GPU, progress=lambda s: None)
    assert "\n" not in exc.value.one_line()
    assert not list((om_home / "envs").glob("FakeMap-*"))
