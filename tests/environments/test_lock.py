"""``onlinemap env lock``: argv given to conda-lock (the stand-in), reproducible locks, and one-line errors
classified from what THIS run wrote, by conda's/Python's error types. Nothing here reaches the network.

The stand-in conda-lock records ``metadata.sources`` relative to the lock and unions them with an existing
lock's, and honours ``--check-input-hash``, as conda-lock 4.0.3's make_lock_files does (read from its source);
its failure output is shaped after conda-lock's solve_specs_for_arch (conda's JSON error + CalledProcessError).
"""
from __future__ import annotations

import yaml

from onlinemap.environments.lock import LOCK_INPUT_FILE, classify_failure
from tests.conftest import run_cli


def _error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_missing_conda_lock_exit_3(fakeconda, make_pack, monkeypatch):
    make_pack()
    (fakeconda.bin / "conda-lock").unlink()
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 3, proc.stderr
    err = _error_line(proc)
    assert "conda-lock not found" in err and "pip install conda-lock" in err


def test_unreachable_channels_exit_3_and_the_line_names_the_name_map_and_condarc(fakeconda, make_pack, monkeypatch):
    make_pack()
    monkeypatch.setenv("FAKECONDA_OFFLINE", "1")
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 3, proc.stderr
    err = _error_line(proc)
    assert "could not reach the conda channels" in err and "(CondaHTTPError)" in err
    assert "name map" in err and "GitHub" in err and "CONDARC=" in err and "CONDA_ROOT" in err


def test_lock_argv(fakeconda, make_pack):
    spec = make_pack()
    (spec.folder / "virtual-packages.yml").write_text("subdirs: {linux-64: {packages: {__cuda: '11.1'}}}\n")
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 0, proc.stderr
    call = fakeconda.calls("conda-lock")[0]
    assert call["cwd"] == str(spec.folder)
    assert call["argv"] == ["lock", "-f", LOCK_INPUT_FILE, "-p", "linux-64", "--virtual-package-spec",
                            "virtual-packages.yml", "--check-input-hash", "--lockfile", "conda-lock.yml"]
    assert (spec.folder / LOCK_INPUT_FILE).is_file()          # kept beside the lock, for `conda-lock --update`
    assert spec.lock_file.is_file()


def test_locking_an_unchanged_pack_twice_gives_identical_bytes(fakeconda, make_pack):
    spec = make_pack()
    assert run_cli("env", "lock", "FakeMap").returncode == 0
    first = spec.lock_file.read_bytes()
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 0, proc.stderr
    assert spec.lock_file.read_bytes() == first and "unchanged" in proc.stderr
    sources = yaml.safe_load(first)["metadata"]["sources"]
    assert sources == [LOCK_INPUT_FILE] and (spec.folder / sources[0]).is_file()
    # a changed pack is re-solved, and its sources entry is not appended again
    with open(spec.environment_file, "a") as fh:
        fh.write("  - extra-mod\n")
    assert run_cli("env", "lock", "FakeMap").returncode == 0
    relocked = yaml.safe_load(spec.lock_file.read_bytes())
    assert relocked["metadata"]["sources"] == [LOCK_INPUT_FILE]
    assert "extra-mod" in [p["name"] for p in relocked["package"]]


def test_solve_failure_is_not_a_network_failure_even_after_an_old_network_error(fakeconda, make_pack, om_home,
                                                                                monkeypatch):
    """openssl (``ssl``) and async-timeout (``timed out``) are package names, not network errors; and an
    older run's network error in the appended log must not decide this run's verdict."""
    spec = make_pack()
    with open(spec.environment_file, "a") as fh:
        fh.write("  - openssl=9.9\n  - async-timeout\n")
    monkeypatch.setenv("FAKECONDA_OFFLINE", "1")
    assert run_cli("env", "lock", "FakeMap").returncode == 3            # leaves a network error in the log
    monkeypatch.delenv("FAKECONDA_OFFLINE")
    monkeypatch.setenv("FAKECONDA_UNAVAILABLE", "openssl")
    proc = run_cli("env", "lock", "FakeMap")
    assert proc.returncode == 1, proc.stderr
    err = _error_line(proc)
    assert "solve failed (PackagesNotFoundError)" in err and "could not reach" not in err
    assert "CONDARC=" in err


def test_env_lock_all_tries_every_model_and_reports_each(fakeconda, make_pack, monkeypatch, capsys):
    """In-process, with discovery limited to the two test packs: `--all` must never lock the repo's real
    packs from a test (conda-lock runs as a real subprocess all the same)."""
    import pytest

    import onlinemap.registry.discover as discover
    from onlinemap.cli import main

    bad = make_pack("AFails")
    with open(bad.environment_file, "a") as fh:
        fh.write("  - openssl=9.9\n")
    good = make_pack("BLocks")
    monkeypatch.setattr(discover, "load_models", lambda *a, **k: [bad, good])
    monkeypatch.setenv("FAKECONDA_UNAVAILABLE", "openssl")
    with pytest.raises(SystemExit) as exc:
        main(["env", "lock", "--all"])
    err = capsys.readouterr().err
    assert exc.value.code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "AFails" in errors[0] and "1 of 2 models failed" in errors[1], err
    assert good.lock_file.is_file() and not bad.lock_file.exists()


def test_classify_failure_reads_types_not_words():
    assert classify_failure('"exception_name": "PackagesNotFoundError"\n  - openssl\n  - async-timeout') == \
        ("solve", "PackagesNotFoundError")
    assert classify_failure("requests.exceptions.ConnectionError: HTTPSConnectionPool(...)") == \
        ("network", "ConnectionError")
    assert classify_failure("socket.gaierror: [Errno -2] Name or service not known") == ("network", "gaierror")
    assert classify_failure("Could not connect, timed out, ssl handshake, openssl\n") == ("other", None)


def _real_conda_lock(fakeconda, conda_lock_python, spec, channel):
    """The REAL conda-lock 4.0.3 on PATH; its solver conda is the stand-in (`create --dry-run --json` over the
    file:// channel: no real conda can be had here). Only `conda` is left, so ensureconda picks it."""
    for name in ("conda-lock", "micromamba", "mamba"):
        (fakeconda.bin / name).unlink()
    (fakeconda.bin / "conda-lock").symlink_to(conda_lock_python.parent / "conda-lock")
    spec.environment_file.write_text(f"name: fakemap\nchannels: [{channel['root'].as_uri()}]\n"
                                     "dependencies:\n  - python\n  - hello-mod\n")


def test_real_conda_lock_twice_gives_identical_bytes(fakeconda, conda_lock_python, make_pack, channel):
    spec = make_pack()
    _real_conda_lock(fakeconda, conda_lock_python, spec, channel)
    proc = run_cli("env", "lock", "FakeMap", timeout=600)
    assert proc.returncode == 0, proc.stderr
    first = spec.lock_file.read_bytes()
    doc = yaml.safe_load(first)
    assert "generated by conda-lock" in first.decode() and doc["metadata"]["sources"] == [LOCK_INPUT_FILE]
    assert {p["name"] for p in doc["package"]} == {"python", "hello-mod"}
    assert run_cli("env", "lock", "FakeMap", timeout=600).returncode == 0
    assert spec.lock_file.read_bytes() == first
    with open(spec.environment_file, "a") as fh:                 # a real change: re-solved, sources not appended
        fh.write("  - extra-mod\n")
    assert run_cli("env", "lock", "FakeMap", timeout=600).returncode == 0
    doc = yaml.safe_load(spec.lock_file.read_bytes())
    assert doc["metadata"]["sources"] == [LOCK_INPUT_FILE] and "extra-mod" in {p["name"] for p in doc["package"]}
    # and micromamba/py-rattler read what the real conda-lock wrote
    from onlinemap.environments.lockfile import load_lock

    assert {e.name for e in load_lock(spec.lock_file).conda()} == {"python", "hello-mod", "extra-mod"}


def test_real_conda_lock_solve_failure_is_classified_by_type(fakeconda, conda_lock_python, make_pack, channel):
    spec = make_pack()
    _real_conda_lock(fakeconda, conda_lock_python, spec, channel)
    with open(spec.environment_file, "a") as fh:
        fh.write("  - openssl=9.9\n")
    proc = run_cli("env", "lock", "FakeMap", timeout=600)
    assert proc.returncode == 1, proc.stderr
    err = _error_line(proc)
    assert "solve failed (PackagesNotFoundError)" in err and "could not reach" not in err
