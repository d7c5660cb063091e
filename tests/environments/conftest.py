"""Fixtures for the env machinery: the stand-in conda executable, conda-kind test packs, a local git
repo and a local conda channel. Everything runs as real subprocesses; nothing reaches the network.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.environments import channel as ch

FAKECONDA = Path(__file__).resolve().parent.parent / "fixtures" / "fakeconda" / "micromamba"
CONDA_LOCK = "conda-lock==4.0.3"


@dataclass
class FakeConda:
    bin: Path
    log: Path

    def calls(self, tool: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r for r in rows if tool is None or r["tool"] == tool]

    def exe(self, name: str) -> str:
        return str(self.bin / name)


def install_fakeconda(dest: Path, names=("micromamba", "mamba", "conda", "conda-lock")) -> Path:
    """Copy the stand-in as each of ``names`` into ``dest`` with the shebang set to this interpreter."""
    dest.mkdir(parents=True, exist_ok=True)
    body = FAKECONDA.read_text().split("\n", 1)[1]
    for name in names:
        path = dest / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)
    return dest


@pytest.fixture
def fakeconda(tmp_path, monkeypatch, om_home) -> FakeConda:
    """The stand-in as micromamba/mamba/conda/conda-lock, first on a PATH that has no real conda."""
    fb = install_fakeconda(tmp_path / "fakebin")
    log = tmp_path / "fakeconda-calls.jsonl"
    monkeypatch.setenv("FAKECONDA_LOG", str(log))
    monkeypatch.setenv("PATH", os.pathsep.join([str(fb), "/usr/bin", "/bin"]))
    for var in ("CONDA_EXE", "MAMBA_EXE", "FAKECONDA_FAIL_AFTER", "FAKECONDA_SYSTEM_SITE", "FAKECONDA_OFFLINE",
                "TORCH_CUDA_ARCH_LIST"):
        monkeypatch.delenv(var, raising=False)
    return FakeConda(fb, log)


@pytest.fixture(scope="session")
def conda_lock_python(tmp_path_factory) -> Path:
    """A venv holding the real conda-lock alone (as pipx would), so the driver's venv stays as users have it."""
    from tests.venvs import build

    venv = tmp_path_factory.mktemp("conda-lock-venv")
    try:
        build(venv, [CONDA_LOCK], None, with_pip=True)      # pip too, as a pipx venv has it
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"could not install {CONDA_LOCK} from PyPI: {(exc.stderr or '').strip().splitlines()[-1:]}")
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def channel(tmp_path_factory) -> dict:
    """A local file:// conda channel indexed with py-rattler: python (stand-in), hello-mod, extra-mod."""
    pytest.importorskip("rattler", reason="py-rattler is not installed")
    root = tmp_path_factory.mktemp("channel")
    pkgs = {"python": ch.venv_python_package(root),
            "hello-mod": ch.module_package(root, "hello-mod", "1.0", "hello_mod", tool="hello-tool"),
            "extra-mod": ch.module_package(root, "extra-mod", "2.1", "extra_mod")}
    ch.index_channel(root)
    return {"root": root, "pkgs": pkgs}


@pytest.fixture(scope="session")
def git_repo(tmp_path_factory) -> dict:
    """A local git repo with two commits; ``pinned`` is the first (not HEAD), to prove the checkout pins."""
    path = tmp_path_factory.mktemp("upstream") / "model-repo"
    path.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(path)], check=True)
    (path / "setup_marker.txt").write_text("v1\n")
    subprocess.run([*git, "-C", str(path), "add", "."], check=True)
    subprocess.run([*git, "-C", str(path), "commit", "-q", "-m", "one"], check=True)
    pinned = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    (path / "setup_marker.txt").write_text("v2\n")
    subprocess.run([*git, "-C", str(path), "commit", "-q", "-am", "two"], check=True)
    head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    return {"path": path, "pinned": pinned, "head": head, "url": "https://example.invalid/test/model-repo"}


@pytest.fixture
def git_redirect(monkeypatch, git_repo):
    """Make git fetch ``https://example.invalid/test/model-repo`` from the local repo (url.insteadOf via env)."""
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{git_repo['path'].as_uri()}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", git_repo["url"])
    monkeypatch.setenv("GIT_CONFIG_KEY_1", "protocol.file.allow")
    monkeypatch.setenv("GIT_CONFIG_VALUE_1", "always")
    return git_repo


PACK_TOML = """schema_version = 1
name = "{name}"
task = "map"
outputs = ["map_elements"]
env_kind = "conda"
python = "{pyver}"
description = "test-only conda pack made by tests/environments/conftest.py"

[repo]
url = "{repo_url}"
commit = "{commit}"

[config]
default = "configs/test.py"

[checkpoint]
file = "{name}.pth"
url = "{ck_url}"
sha256 = "{ck_sha}"

[gpu]
min_compute = 6.0
max_compute = 8.9
note = "test pack"

[ops]
build = {ops}

[smoke]
imports = {imports}
"""


@pytest.fixture
def make_pack(tmp_path, monkeypatch, git_repo):
    """Factory: write a conda-kind model pack under tmp/packs/<name>/ and load its ModelSpec.

    ``lock``: a callable(pack_dir) writing conda-lock.yml, or None for no lock (environment.yml only).
    ``data``: keys of a ``[data]`` table (needs, info_files, converter, ...), or None for the defaults.
    """
    import hashlib

    from onlinemap.registry.spec import load_model_spec

    packs = tmp_path / "packs"
    packs.mkdir(exist_ok=True)
    monkeypatch.setenv("ONLINEMAP_ENVS", str(packs))
    weights_src = tmp_path / "weights-src.bin"
    weights_src.write_bytes(b"checkpoint bytes\n" * 100)

    def make(name="FakeMap", *, lock=None, imports=("hello_mod",), ops=None, commit=None, ck_sha=None, data=None):
        folder = packs / name
        folder.mkdir(exist_ok=True)
        ops = ops if ops is not None else [["python", "-c", "open('built.txt', 'w').write('ok')"]]
        sha = ck_sha if ck_sha is not None else hashlib.sha256(weights_src.read_bytes()).hexdigest()
        (folder / "model.toml").write_text(PACK_TOML.format(
            name=name, pyver=ch.PYVER, repo_url=git_repo["url"], commit=commit or git_repo["pinned"],
            ck_url=weights_src.as_uri(), ck_sha=sha, ops=json.dumps(ops), imports=json.dumps(list(imports)))
            + ("\n[data]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in data.items()) if data else ""))
        (folder / "demo.py").write_text("# test pack adapter (never run by these tests)\n")
        (folder / "environment.yml").write_text("name: fakemap\nchannels: [local]\ndependencies:\n  - python\n"
                                                "  - hello-mod\n")
        if lock is not None:
            lock(folder)
        return load_model_spec(folder)

    return make
