"""The resolution check: does a pack's ``pip:`` section resolve, for the pack's Python on linux-64?

A real resolver (uv, ``uv pip compile --python-version X --python-platform x86_64-manylinux2014``)
runs against PyPI without that Python or that platform being here, so a pin that does not exist or
that conflicts with another pin's requirements fails the test suite, not a pod an hour into setup.

What it resolves, and what it cannot:

- every pip requirement that PyPI serves, plus the ``name==version`` pins that ``[ops] build`` installs
  with pip (pycocotools, flash-attn: built against the env, ``--no-build-isolation``); their own
  metadata comes from a setup.py that needs numpy/torch to run, so uv is told they declare no
  requirements (``dependency-metadata``): their existence on PyPI and their fit with every other
  pin's requirements are checked, their own requirements are not (they are installed ``--no-deps``);
- ``torch==X+cuNNN`` / ``torchvision`` / ``torchaudio``: resolved as the same release from PyPI (the
  PyPI build of a release has the same requirements; UNVERIFIED against the +cu111 wheels' metadata,
  which only download.pytorch.org serves), so their pins are still checked against mmcv/mmdet/... ;
- :data:`OTHER_INDEX` packages (mmcv-full: OpenMMLab's find-links pages only) are left out of the PyPI
  resolution and checked separately (:func:`other_index_pins`): a wheel of exactly that version for
  this Python on linux-64 must be linked from the pack's find-links pages / extra indexes (the wheel
  tag rules are lock_input.py's). Their own requirements are not resolved (the pages are not
  reachable where the suite runs); that check skips where the pages cannot be read.

Any ``environment.yml`` works: every env variant (``envs/<Model>/variants/<name>/``) is resolved too, for
its own Python and the glibc floor of its virtual-packages.yml (torch 2.8's wheels are manylinux_2_28),
with its ``[[wheels]]`` sdists (mmcv-full, built in the env) counted like ``[ops]`` pins.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from onlinemap.environments.lock_input import split_pip_section
from tests.venvs import uv_binary  # noqa: F401  (re-exported: the resolver is the installer of tests/venvs.py)

__all__ = ["OTHER_INDEX", "PackRequirements", "pack_requirements", "resolve", "Resolution", "pypi_reachable",
           "uv_binary", "other_index_pins"]

#: served only by other indexes (PyTorch's, OpenMMLab's find-links pages), never resolved against PyPI
OTHER_INDEX = ("mmcv-full",)
#: PyPI serves the same release without the local +cuNNN label
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s+]+)(\+\S+)?$")
_NETWORK = ("dns error", "failed to lookup address", "client error (connect)", "connection refused",
            "operation timed out", "network is unreachable", "tcp connect error")
PYPI = "https://pypi.org/simple"


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PackRequirements:
    """What the check hands to uv, and what it checks elsewhere."""

    python: str
    pypi: list = field(default_factory=list)            # requirement lines resolved against PyPI
    built_in_env: list = field(default_factory=list)    # (name, version) from [ops] pip installs
    other_index: list = field(default_factory=list)     # (name, version, local) served elsewhere
    indexes: list = field(default_factory=list)
    pages: list = field(default_factory=list)


def _ops_pip_pins(build: list) -> list[tuple[str, str]]:
    pins = []
    for argv in build or []:
        if "pip" in argv and "install" in argv:
            for arg in argv[argv.index("install") + 1:]:
                m = _PIN.match(arg)
                if m and not arg.startswith("-"):
                    pins.append((m.group(1), m.group(2)))
    return pins


def pack_requirements(environment_file: Path, *, python: str, ops_build: list | None = None) -> PackRequirements:
    """Split an environment.yml's pip section (and ``[ops] build``'s pip pins) for the check."""
    doc = yaml.safe_load(Path(environment_file).read_text())
    pip = next((d["pip"] for d in doc.get("dependencies") or [] if isinstance(d, dict) and "pip" in d), [])
    indexes, pages, reqs = split_pip_section(pip or [])
    out = PackRequirements(python=python, indexes=indexes, pages=pages, built_in_env=_ops_pip_pins(ops_build or []))
    for req in reqs:
        m = _PIN.match(req.replace(" ", ""))
        name = _canon(m.group(1)) if m else None
        if name in OTHER_INDEX:
            out.other_index.append((m.group(1), m.group(2), m.group(3) or ""))
        elif name in TORCH_FAMILY and m.group(3):
            out.other_index.append((m.group(1), m.group(2), m.group(3)))
            out.pypi.append(f"{m.group(1)}=={m.group(2)}")
        else:
            out.pypi.append(req)
    listed = {_canon(_PIN.match(r.replace(" ", "")).group(1)) for r in out.pypi if _PIN.match(r.replace(" ", ""))}
    for name, version in out.built_in_env:
        if _canon(name) not in listed:
            out.pypi.append(f"{name}=={version}")
    return out


@dataclass
class Resolution:
    ok: bool
    network: bool           # failed because PyPI could not be reached
    message: str            # uv's explanation (the conflict), one cause per line
    argv: list
    pinned: dict            # name -> version of the resolution (when ok)


def pypi_reachable(timeout: float = 15.0) -> str | None:
    """None when PyPI's simple index answers, else the reason it does not."""
    try:
        with urllib.request.urlopen(f"{PYPI}/pip/", timeout=timeout) as resp:  # noqa: S310 - fixed URL
            resp.read(64)
        return None
    except OSError as exc:
        return f"PyPI ({PYPI}) cannot be reached: {exc}"


def _explain(text: str) -> str:
    keep = [ln.strip() for ln in text.splitlines()
            if ln.strip().startswith(("error:", "cause:", "Because", "And because", "hint:", "╰─▶", "×"))
            or "we can conclude" in ln]
    return "\n".join(keep) or text.strip()[-2000:]


def platform_for(virtual_packages_file: Path) -> str:
    """uv's ``--python-platform`` for a pack: the glibc floor its virtual-packages.yml states (2.17 = manylinux2014)."""
    try:
        doc = yaml.safe_load(Path(virtual_packages_file).read_text()) or {}
        glibc = str(doc["subdirs"]["linux-64"]["packages"]["__glibc"])
    except (OSError, KeyError, TypeError):
        return "x86_64-manylinux2014"
    return "x86_64-manylinux2014" if glibc == "2.17" else f"x86_64-manylinux_{glibc.replace('.', '_')}"


def resolve(reqs: PackRequirements, *, uv: str, timeout: int = 900,
            platform: str = "x86_64-manylinux2014") -> Resolution:
    """``uv pip compile`` the PyPI part of ``reqs`` for CPython ``reqs.python`` on ``platform`` (x86_64 glibc)."""
    with tempfile.TemporaryDirectory(prefix="onlinemap-resolve-") as tmp:
        infile = Path(tmp) / "requirements.in"
        infile.write_text("\n".join(reqs.pypi) + "\n")
        config = Path(tmp) / "uv.toml"
        meta = "".join(f'[[dependency-metadata]]\nname = "{n}"\nversion = "{v}"\nrequires-dist = []\n\n'
                       for n, v in reqs.built_in_env)
        config.write_text(meta)
        out_file = Path(tmp) / "resolved.txt"
        argv = [uv, "pip", "compile", str(infile), "--python-version", reqs.python,
                "--python-platform", platform, "--index-url", PYPI, "--no-python-downloads",
                "--no-header", "--no-annotate", "--config-file", str(config), "-o", str(out_file)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        text = proc.stdout + proc.stderr
        pinned = {}
        if proc.returncode == 0:
            for line in out_file.read_text().splitlines():
                m = _PIN.match(line.strip())
                if m:
                    pinned[_canon(m.group(1))] = m.group(2)
        network = proc.returncode != 0 and any(s in text.lower() for s in _NETWORK) and "no solution" not in text.lower()
        return Resolution(ok=proc.returncode == 0, network=network, message=_explain(text), argv=argv, pinned=pinned)


def other_index_pins(reqs: PackRequirements, fetch) -> list[str]:
    """Problems with the :data:`OTHER_INDEX` / ``+cuNNN`` pins: no wheel for this Python on linux-64 linked
    from the pack's find-links pages or its extra indexes' ``<index>/<name>/`` pages ([] = all found)."""
    from onlinemap.environments.lock_input import find_links_wheels, wheel_matches

    problems = []
    for name, version, local in reqs.other_index:
        pages = list(reqs.pages) + [f"{ix.rstrip('/')}/{_canon(name)}/" for ix in reqs.indexes]
        wheels = find_links_wheels(pages, fetch) if pages else []
        full = version + local
        if not any(wheel_matches(fname, name, full, reqs.python) for fname, _ in wheels):
            problems.append(f"{name}=={full}: no cp{reqs.python.replace('.', '')} linux-64 wheel on "
                            + (", ".join(pages) or "any page (no --find-links / --extra-index-url given)"))
    return problems


def describe(argv: list) -> str:
    return shlex.join(argv)
