"""Hand-made conda packages, a local ``file://`` channel and conda-lock v1 files, for tests only.

Real: the ``.tar.bz2`` packages are genuine conda packages (``info/index.json``, ``info/paths.json``,
``info/files``), indexed with py-rattler's ``rattler.index.index_fs`` and installed by py-rattler
exactly as a package from conda-forge would be. Stood in: no conda ``python`` package is available
offline, so :func:`venv_python_package` makes a package called ``python`` that holds a venv-style
interpreter (``bin/python`` -> the test's base interpreter, plus ``pyvenv.cfg``), which gives the env
an isolated ``sys.prefix`` whose ``lib/pythonX.Y/site-packages`` is the env's own.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

PYVER = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"lib/python{PYVER}/site-packages"


@dataclass
class Package:
    name: str
    version: str
    path: Path           # the .tar.bz2 in the channel
    sha256: str
    md5: str

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()


def _digest(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()


def make_package(channel: Path, name: str, version: str, files: dict[str, bytes] | None = None,
                 symlinks: dict[str, str] | None = None, depends: list[str] | None = None,
                 executables: tuple[str, ...] = ()) -> Package:
    """Write ``channel/noarch/<name>-<version>-0.tar.bz2`` (noarch: generic) holding ``files``/``symlinks``."""
    files = files or {}
    symlinks = symlinks or {}
    subdir = channel / "noarch"
    subdir.mkdir(parents=True, exist_ok=True)
    index = {"name": name, "version": version, "build": "0", "build_number": 0, "depends": depends or [],
             "noarch": "generic", "subdir": "noarch", "license": "MIT", "timestamp": 1700000000000}
    entries = []
    for rel, data in sorted(files.items()):
        entries.append({"_path": rel, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
                        "size_in_bytes": len(data)})
    for rel in sorted(symlinks):
        entries.append({"_path": rel, "path_type": "softlink", "size_in_bytes": 0})
    paths_json = {"paths": sorted(entries, key=lambda e: e["_path"]), "paths_version": 1}
    meta = {"info/index.json": json.dumps(index).encode(), "info/paths.json": json.dumps(paths_json).encode(),
            "info/files": "".join(f"{e['_path']}\n" for e in paths_json["paths"]).encode()}
    out = subdir / f"{name}-{version}-0.tar.bz2"
    with tarfile.open(out, "w:bz2") as tar:
        for rel, data in [*meta.items(), *sorted(files.items())]:
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mtime = 1700000000
            info.mode = 0o755 if rel in executables else 0o644
            tar.addfile(info, io.BytesIO(data))
        for rel, target in sorted(symlinks.items()):
            info = tarfile.TarInfo(rel)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            info.mtime = 1700000000
            tar.addfile(info)
    sha, md5 = _digest(out)
    return Package(name, version, out, sha, md5)


def venv_python_package(channel: Path) -> Package:
    """A stand-in ``python`` package: bin/python -> the base interpreter of the test run, plus pyvenv.cfg."""
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    cfg = (f"home = {base.parent}\ninclude-system-site-packages = false\n"
           f"version = {sys.version.split()[0]}\n").encode()
    return make_package(channel, "python", sys.version.split()[0], files={"pyvenv.cfg": cfg},
                        symlinks={"bin/python": str(base), f"bin/python{PYVER}": str(base)})


def module_package(channel: Path, name: str, version: str, module: str, tool: str | None = None) -> Package:
    """A package with ``site-packages/<module>.py`` (``VALUE = <name>-<version>``) and optionally ``bin/<tool>``."""
    files = {f"{SITE}/{module}.py": f"VALUE = {name + '-' + version!r}\n".encode()}
    execs: tuple[str, ...] = ()
    if tool:
        files[f"bin/{tool}"] = f"#!/bin/sh\necho {tool} from {name}\n".encode()
        execs = (f"bin/{tool}",)
    return make_package(channel, name, version, files=files, depends=["python"], executables=execs)


def index_channel(channel: Path) -> None:
    """Write repodata.json for the channel with py-rattler (0.28: ``rattler.index.index_fs``)."""
    from rattler.index import index_fs

    (channel / "linux-64").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, force=True))


def write_lock_v1(path: Path, channel: Path, packages: list[Package], pip: list[dict] | None = None,
                  platform: str = "linux-64", override: dict | None = None) -> Path:
    """A conda-lock v1 YAML for ``packages`` (file:// URLs, real sha256/md5); ``override`` edits entries by name."""
    import yaml

    override = override or {}
    entries = []
    for pkg in packages:
        entry = {"name": pkg.name, "version": pkg.version, "manager": "conda", "platform": platform,
                 "dependencies": {}, "url": pkg.url, "hash": {"md5": pkg.md5, "sha256": pkg.sha256},
                 "category": "main", "optional": False}
        entry.update(override.get(pkg.name, {}))
        entries.append(entry)
    for p in pip or []:
        entries.append({"manager": "pip", "platform": platform, "dependencies": {}, "category": "main",
                        "optional": False, **p})
    doc = {"version": 1,
           "metadata": {"content_hash": {platform: "0" * 64},
                        "channels": [{"url": channel.resolve().as_uri(), "used_env_vars": []}],
                        "platforms": [platform], "sources": ["environment.yml"]},
           "package": entries}
    path.write_text("# made by tests/environments/channel.py (test fixture)\n" + yaml.safe_dump(doc, sort_keys=False))
    return path
