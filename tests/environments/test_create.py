"""create_env through the stand-in micromamba/conda (tests/fixtures/fakeconda): real subprocesses,
argv asserted from the stand-in's call log; the repo is a local git repo, the weights a file:// URL.
No GPU here: every create passes ``gpu={"available": False}`` (what gpu_info says without NVML)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from onlinemap.environments import resolve_environment
from onlinemap.environments.base import ENV_INFO_FILE, read_env_info
from onlinemap.environments.create import OPS_MARKER_DIR, StepFailed, create_env
from onlinemap.errors import SpecError
from onlinemap.proc import run_supervised
from tests.conftest import run_cli
from tests.environments import channel as ch

NO_GPU = {"available": False, "reason": "test: no GPU on this machine"}


def lock_with(channel, names=("python", "hello-mod"), **kw):
    def write(folder: Path):
        ch.write_lock_v1(folder / "conda-lock.yml", channel["root"], [channel["pkgs"][n] for n in names], **kw)
    return write


def create(spec, **kw):
    kw.setdefault("gpu", NO_GPU)
    kw.setdefault("progress", lambda line: None)
    return create_env(spec, **kw)


def test_micromamba_create_argv_info_last_and_launch(fakeconda, make_pack, channel, git_redirect, om_home, tmp_path):
    spec = make_pack(lock=lock_with(channel))
    res = create(spec)
    prefix = Path(res.prefix)
    assert res.manager == "micromamba" and not res.reused and prefix.name.startswith("FakeMap-")
    creates = [c for c in fakeconda.calls("micromamba") if c["argv"][:1] == ["create"]]
    assert len(creates) == 1
    argv = creates[0]["argv"]
    assert argv[:4] == ["create", "-y", "-p", str(prefix)] and argv[4] == "-f"
    assert argv[5].endswith("/FakeMap-lock.yml")                    # micromamba needs *-lock.yml
    assert creates[0]["CONDA_PKGS_DIRS"] == str(om_home / "pkgs")
    assert creates[0]["MAMBA_ROOT_PREFIX"] == str(om_home)
    runs = [c["argv"] for c in fakeconda.calls("micromamba") if c["argv"][:1] == ["run"]]
    assert ["run", "-p", str(prefix), str(prefix / "bin" / "python"), "-c", "import hello_mod"] in runs
    # the ops step ran in the repo root through `micromamba run`, and left its marker in the prefix
    assert (Path(res.repo) / "built.txt").read_text() == "ok"
    assert len(list((prefix / OPS_MARKER_DIR).iterdir())) == 1
    # info file: the contract keys, written last (newest mtime of every file in the prefix)
    info = read_env_info(prefix)
    for key in ("schema_version", "model", "lock_hash", "locked", "manager", "manager_exe", "manager_version",
                "created", "python"):
        assert key in info
    assert info["manager_version"] == "1.5.8" and info["python"] == ".".join(ch.PYVER.split(".")) + info["python"][len(ch.PYVER):]
    newest = max(p.lstat().st_mtime_ns for p in prefix.rglob("*") if p.is_file() and not p.is_symlink())
    assert (prefix / ENV_INFO_FILE).stat().st_mtime_ns == newest
    # weights fetched and verified
    assert Path(res.weights).read_bytes().startswith(b"checkpoint bytes")
    # the runner's view: resolve + launch through `micromamba run`
    env = resolve_environment(spec)
    script = tmp_path / "probe.py"
    script.write_text("import sys, hello_mod\nprint('VALUE', hello_mod.VALUE, sys.prefix)\n")
    assert env.launch_argv(script)[:4] == [fakeconda.exe("micromamba"), "run", "-p", str(prefix)]
    log = tmp_path / "launch.log"
    out = run_supervised(env.launch_argv(script), log_path=log)
    assert out.ok, log.read_text()
    assert f"VALUE hello-mod-1.0 {prefix}" in log.read_text()


def test_reuse_then_rebuild_on_failed_smoke_and_on_lock_change(fakeconda, make_pack, channel, git_redirect):
    spec = make_pack(lock=lock_with(channel))
    first = create(spec, skip_weights=True)
    again = create(spec, skip_weights=True)
    assert again.reused and again.prefix == first.prefix
    assert len([c for c in fakeconda.calls() if c["argv"][:1] == ["create"]]) == 1
    # break the env: the smoke import fails -> rebuilt in place
    site = Path(first.prefix) / ch.SITE / "hello_mod.py"
    site.unlink()
    rebuilt = create(spec, skip_weights=True)
    assert not rebuilt.reused and site.exists()
    assert len([c for c in fakeconda.calls() if c["argv"][:1] == ["create"]]) == 2
    # a new lock -> a new prefix (new hash), built fresh; ops run again for the new prefix
    spec = make_pack(lock=lock_with(channel, names=("python", "hello-mod", "extra-mod")),
                     imports=("hello_mod", "extra_mod"))
    newer = create(spec, skip_weights=True)
    assert newer.prefix != first.prefix and not newer.reused
    assert resolve_environment(spec).prefix == Path(newer.prefix)


def test_failure_mid_install_removes_prefix(fakeconda, make_pack, channel, git_redirect, monkeypatch, om_home):
    spec = make_pack(lock=lock_with(channel))
    monkeypatch.setenv("FAKECONDA_FAIL_AFTER", "1")
    with pytest.raises(StepFailed) as exc:
        create(spec)
    line = exc.value.one_line()
    assert "install (micromamba create from lock)" in line and str(om_home / "logs" / "env-FakeMap.log") in line
    assert "\n" not in line
    assert not list((om_home / "envs").glob("FakeMap-*"))
    assert "simulated failure" in (om_home / "logs" / "env-FakeMap.log").read_text()


def test_failing_smoke_import_leaves_nothing(fakeconda, make_pack, channel, git_redirect, om_home):
    spec = make_pack(lock=lock_with(channel), imports=("hello_mod", "not_in_the_lock"))
    with pytest.raises(StepFailed, match="smoke import"):
        create(spec)
    assert not list((om_home / "envs").glob("FakeMap-*"))


def test_halfbuilt_prefix_is_replaced(fakeconda, make_pack, channel, git_redirect, om_home):
    spec = make_pack(lock=lock_with(channel))
    from onlinemap.environments.base import env_prefix

    stale = env_prefix(spec)
    (stale / "junk").mkdir(parents=True)          # a crash left this behind, no info file
    res = create(spec, skip_weights=True)
    assert not (stale / "junk").exists() and read_env_info(Path(res.prefix))


def _wheel(path: Path, name: str, version: str) -> Path:
    whl = path / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr(f"{name}.py", f"VALUE = 'pip-{version}'\n")
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return whl


def test_conda_explicit_then_pip_entries(fakeconda, make_pack, channel, git_redirect, monkeypatch, tmp_path):
    """conda path: render @EXPLICIT, `conda create --file`, then the env's pip installs the pip entries
    (a real pip run: the stand-in env sees the base interpreter's site-packages, FAKECONDA_SYSTEM_SITE=1)."""
    import hashlib

    monkeypatch.setenv("FAKECONDA_SYSTEM_SITE", "1")
    whl = _wheel(tmp_path, "pipmod", "0.3")
    pip = [{"name": "pipmod", "version": "0.3", "url": whl.as_uri(),
            "hash": {"sha256": hashlib.sha256(whl.read_bytes()).hexdigest()}}]
    spec = make_pack(lock=lock_with(channel, pip=pip), imports=("hello_mod", "pipmod"))
    res = create(spec, manager="conda", skip_weights=True)
    prefix = Path(res.prefix)
    calls = fakeconda.calls("conda")
    create_argv = next(c["argv"] for c in calls if c["argv"][:1] == ["create"])
    assert create_argv[:5] == ["create", "-y", "-p", str(prefix), "--file"]
    assert create_argv[5].endswith("FakeMap-linux-64.explicit.txt")
    pip_argv = next(c["argv"] for c in calls if "pip" in c["argv"])
    assert pip_argv[:4] == ["run", "-p", str(prefix), "--no-capture-output"]
    assert pip_argv[4:10] == [str(prefix / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-input"]
    assert f"pipmod @ {whl.as_uri()}#sha256=" in pip_argv[-1]
    assert (prefix / ch.SITE / "pipmod.py").is_file()          # pip installed INTO the env
    assert read_env_info(prefix)["manager"] == "conda"


def test_unlocked_fallback_warns_loudly(fakeconda, make_pack, git_redirect):
    spec = make_pack(lock=None, imports=("hello_mod",))
    lines = []
    res = create_env(spec, gpu=NO_GPU, skip_weights=True, progress=lines.append)
    assert not res.locked and read_env_info(Path(res.prefix))["locked"] is False
    assert any("UNLOCKED" in line for line in lines)
    argv = next(c["argv"] for c in fakeconda.calls() if c["argv"][:1] == ["create"])
    assert argv[-1].endswith("environment.yml")


def test_corrupt_lock_is_spec_error_exit_4(fakeconda, make_pack, om_home):
    def bad(folder):
        (folder / "conda-lock.yml").write_text("version: 1\npackage: {not: [a list\n")

    spec = make_pack(lock=bad)
    with pytest.raises(SpecError, match="conda-lock.yml: not valid YAML"):
        create(spec)
    proc = run_cli("env", "create", "FakeMap", "--skip-weights")
    assert proc.returncode == 4, proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "conda-lock.yml" in err[0] and "onlinemap env lock" in err[0]
    assert not list((om_home / "envs").glob("FakeMap-*"))


@pytest.mark.parametrize("text,expected", [
    ("version: 2\nmetadata: {platforms: [linux-64]}\npackage: []\n", "lock version 2 is not supported"),
    ("version: 1\nmetadata: {platforms: [osx-arm64]}\npackage:\n- {name: a, version: '1', manager: conda, "
     "platform: osx-arm64, url: 'file:///a', hash: {md5: x}}\n", "not locked for linux-64"),
    ("version: 1\nmetadata: {platforms: [linux-64]}\npackage:\n- {name: a, version: '1', manager: conda, "
     "platform: linux-64, url: 'file:///a', hash: {}}\n", "neither sha256 nor md5"),
    ("- just a list\n", "not a conda-lock file"),
])
def test_lock_parser_one_line_errors(tmp_path, text, expected):
    from onlinemap.environments.lockfile import load_lock

    path = tmp_path / "conda-lock.yml"
    path.write_text(text)
    with pytest.raises(SpecError, match=expected) as exc:
        load_lock(path)
    assert exc.value.exit_code == 4 and "\n" not in exc.value.one_line()


@pytest.mark.parametrize("manager", ["micromamba", "mamba", "conda"])
@pytest.mark.parametrize("bad", [{"sha256": "0" * 64}, {"md5": "0" * 32}])
def test_local_archive_hash_mismatch_refused_before_any_manager_runs(manager, bad, fakeconda, make_pack, channel,
                                                                     git_redirect, om_home):
    """Real conda installs a file:// archive whose hash does not match (the stand-in, like it, does not
    check): onlinemap must hash every local archive against the lock itself, for every manager."""
    good = channel["pkgs"]["hello-mod"]
    hashes = {"sha256": good.sha256, "md5": good.md5, **bad}
    spec = make_pack(lock=lock_with(channel, override={"hello-mod": {"hash": hashes}}))
    from onlinemap.environments.integrity import HashMismatchError

    with pytest.raises(HashMismatchError, match="hello-mod 1.0") as exc:
        create(spec, manager=manager, skip_weights=True)
    assert "\n" not in exc.value.one_line() and ("sha256" if "sha256" in bad else "md5") in exc.value.message
    assert not [c for c in fakeconda.calls() if c["argv"][:1] == ["create"]]      # no manager touched the prefix
    assert not list((om_home / "envs").glob("FakeMap-*"))


def test_stand_in_installs_a_mismatching_archive_as_real_conda_does(fakeconda, channel, tmp_path):
    """The stand-in itself must not check hashes (real conda does not on file://): else the test above
    could pass with onlinemap's own check missing."""
    import subprocess

    pkg = channel["pkgs"]["hello-mod"]
    explicit = tmp_path / "x.explicit.txt"
    explicit.write_text(f"@EXPLICIT\n{pkg.url}#{'0' * 32}\n")
    out = subprocess.run([fakeconda.exe("conda"), "create", "-y", "-p", str(tmp_path / "p"), "--file", str(explicit)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
