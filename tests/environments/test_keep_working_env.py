"""Don't destroy what works, and stop the way the exit-code table says (issue 11).

- ``env create --force --manager X`` checks X before it removes a ready env;
- an env whose recorded manager executable is gone (conda on the container disk, envs on the volume,
  after a pod reset) is launched with another one of the same kind, or refused in one line by readiness,
  ``models`` and ``test``; ``env create`` rebuilds it instead of failing with a traceback;
- ``env remove`` refuses an empty or unknown name and never touches folders that are not env prefixes,
  and without ``--yes`` and without a terminal it says "pass --yes";
- Ctrl-C during ``env create`` exits 130 and leaves no half-built prefix and no process behind.
All through the stand-in conda (tests/fixtures/fakeconda) as real subprocesses.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onlinemap.environments import resolve_environment
from onlinemap.environments.base import read_env_info
from onlinemap.environments.create import create_env
from onlinemap.errors import MissingPrerequisiteError, UsageError
from onlinemap.proc import run_supervised
from tests.conftest import REPO, run_cli
from tests.environments import channel as ch
from tests.environments.conftest import install_fakeconda
from tests.reliability.signals import default_signals

NO_GPU = {"available": False, "reason": "test: no GPU on this machine"}


def _lock(channel):
    def write(folder: Path):
        ch.write_lock_v1(folder / "conda-lock.yml", channel["root"], [channel["pkgs"]["python"], channel["pkgs"]["hello-mod"]])
    return write


def _create(spec, **kw):
    kw.setdefault("gpu", NO_GPU)
    kw.setdefault("progress", lambda line: None)
    kw.setdefault("skip_weights", True)
    return create_env(spec, **kw)


def _cli(*args, timeout=180):
    """The CLI with stdin closed (no terminal), as cron or CI runs it."""
    return subprocess.run([sys.executable, "-m", "onlinemap", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, cwd=REPO)


def _error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("bad", ["mamba", "path", "rattler"])
def test_force_with_a_missing_manager_keeps_the_ready_env(bad, fakeconda, make_pack, channel, git_redirect,
                                                         monkeypatch, tmp_path):
    spec = make_pack(lock=_lock(channel))
    first = _create(spec)
    (fakeconda.bin / "mamba").unlink()
    if bad == "rattler":
        import onlinemap.environments.managers as managers

        monkeypatch.setattr(managers, "rattler_available", lambda: (False, "py-rattler is not importable (test)"))
    manager = {"mamba": "mamba", "path": str(tmp_path / "nowhere" / "conda"), "rattler": "rattler"}[bad]
    with pytest.raises(MissingPrerequisiteError):
        _create(spec, manager=manager, force=True)
    assert read_env_info(Path(first.prefix)) is not None           # still ready
    assert resolve_environment(spec).prefix == Path(first.prefix)


def test_force_with_a_tampered_archive_keeps_the_ready_env(fakeconda, make_pack, channel, git_redirect, tmp_path):
    """The hash check runs before the ready env is removed, not after (a local channel rewritten in place)."""
    from onlinemap.environments.integrity import HashMismatchError

    chan = tmp_path / "own-channel"
    shutil.copytree(channel["root"], chan)
    pkgs = [ch.Package(p.name, p.version, chan / p.path.relative_to(channel["root"]), p.sha256, p.md5)
            for p in (channel["pkgs"]["python"], channel["pkgs"]["hello-mod"])]
    spec = make_pack(lock=lambda folder: ch.write_lock_v1(folder / "conda-lock.yml", chan, pkgs))
    first = _create(spec)
    with open(pkgs[1].path, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(HashMismatchError):
        _create(spec, force=True)
    assert read_env_info(Path(first.prefix)) is not None and resolve_environment(spec).prefix == Path(first.prefix)


def test_env_whose_manager_is_gone_uses_another_of_its_kind_or_says_so(fakeconda, make_pack, channel, git_redirect,
                                                                       om_home, tmp_path):
    spec = make_pack(lock=_lock(channel))
    container_disk = install_fakeconda(tmp_path / "opt-conda" / "bin", names=("conda",))
    res = _create(spec, manager=str(container_disk / "conda"))
    assert read_env_info(Path(res.prefix))["manager_exe"] == str(container_disk / "conda")
    shutil.rmtree(tmp_path / "opt-conda")                          # the pod reset took the container disk

    # another conda on PATH: launched with it
    env = resolve_environment(spec)
    assert env.launch_argv(Path("x.py"))[:2] == [fakeconda.exe("conda"), "run"]
    probe = tmp_path / "probe.py"
    probe.write_text("import hello_mod\nprint('VALUE', hello_mod.VALUE)\n")
    log = tmp_path / "launch.log"
    assert run_supervised(env.launch_argv(probe), log_path=log).ok, log.read_text()

    # no conda anywhere: one line from readiness, `models` says not installed, `test` refuses (exit 3)
    (fakeconda.bin / "conda").unlink()
    with pytest.raises(MissingPrerequisiteError) as exc:
        resolve_environment(spec)
    line = exc.value.one_line()
    assert "conda" in line and "is gone" in line and "onlinemap env create FakeMap --force" in line and "\n" not in line
    models = json.loads(run_cli("models", "--json", check=True).stdout)
    assert not next(m for m in models if m["name"] == "FakeMap")["installed"]
    proc = _cli("test", "--model", "FakeMap", "--samples", "1")
    assert proc.returncode == 3 and "is gone" in _error_line(proc)
    proc = _cli("doctor", "--models", "FakeMap", "--skip-weights")
    assert "is gone" in proc.stdout + proc.stderr and "raised" not in proc.stdout + proc.stderr, proc.stdout
    assert not (om_home / "results").exists() or not list((om_home / "results").iterdir())   # no run stuck at running

    # env create (no --force) rebuilds it with the manager that is here, rather than a traceback
    again = _create(spec)
    assert not again.reused and read_env_info(Path(again.prefix))["manager"] == "micromamba"


def test_env_remove_refuses_empty_and_unknown_names_and_spares_other_folders(fakeconda, make_pack, channel,
                                                                             git_redirect, om_home):
    spec = make_pack(lock=_lock(channel))
    res = _create(spec)
    others = [om_home / "envs" / "notes", om_home / "envs" / "my-data", om_home / "envs" / "FakeMap-notes"]
    for folder in others:
        folder.mkdir(parents=True)
        (folder / "keep.txt").write_text("mine\n")
    for name, code in (("", 2), ("  ", 2), ("my", 2), ("notes", 2)):
        proc = _cli("env", "remove", name, "--yes")
        assert proc.returncode == code, (name, proc.returncode, proc.stdout, proc.stderr)
        _error_line(proc)
    rows = json.loads(run_cli("env", "list", "--json", check=True).stdout)
    assert [r["prefix"] for r in rows] == [res.prefix]              # other folders are not envs
    # no --yes and no terminal: "pass --yes", not "interrupted"
    proc = _cli("env", "remove", "FakeMap")
    assert proc.returncode == 2 and "--yes" in _error_line(proc) and "interrupted" not in proc.stderr
    assert Path(res.prefix).is_dir()
    proc = _cli("env", "remove", "FakeMap", "--yes")
    assert proc.returncode == 0 and not Path(res.prefix).exists()
    assert all((f / "keep.txt").is_file() for f in others)
    from onlinemap.environments.manage import remove_envs

    with pytest.raises(UsageError):
        remove_envs("")


def test_ctrl_c_during_env_create_exits_130_and_leaves_nothing(fakeconda, make_pack, channel, git_redirect,
                                                               om_home, tmp_path):
    make_pack(lock=_lock(channel))
    marker = tmp_path / "manager-started"
    env = dict(os.environ, FAKECONDA_HANG_FILE=str(marker))
    driver = subprocess.Popen([sys.executable, "-m", "onlinemap", "env", "create", "FakeMap", "--skip-weights"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=REPO, preexec_fn=default_signals)   # SIGINT not inherited as ignored
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() or not marker.read_text().strip():         # the manager is installing
            assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
            time.sleep(0.05)
        manager_pid = int(marker.read_text())
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err
    assert "interrupted" in _error_line(subprocess.CompletedProcess([], 130, out, err))
    assert not list((om_home / "envs").glob("FakeMap-*"))          # nothing half-built looks ready
    with pytest.raises(ProcessLookupError):
        os.kill(manager_pid, 0)                                    # the manager's group was killed
