"""environment.yml -> the file conda-lock can read.

conda (and micromamba) pass an environment.yml's ``pip:`` list to pip as a requirements file, so the
packs use pip's own options there: ``--extra-index-url`` for PyTorch's cu111 index and
``--find-links`` for the pages that host the CUDA wheels (torch_stable.html, OpenMMLab's mmcv-full
builds). conda-lock's parser rejects every such line (``InvalidRequirement``, checked with conda-lock
4.0.3; conda/conda-lock#488 is the open request). It does read two things that say the same:

- a top-level ``pip-repositories:`` list (PEP 503 indexes searched besides PyPI): where
  ``--extra-index-url`` goes;
- direct references ``name @ URL``: each ``name==version`` pin that a ``--find-links`` page serves
  for this Python on linux-64 becomes one, the URL taken from the page (with its ``#sha256=`` when
  the page gives one). The tag rules are ``packaging.tags``' (the library pip vendors).

The derived file is written next to nothing committed (a temp folder); environment.yml stays the
single source that unlocked creation reads too.
"""
from __future__ import annotations

import re
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urljoin, urlparse

import yaml

from onlinemap.errors import MissingPrerequisiteError, SpecError

__all__ = ["conda_lock_input", "split_pip_section", "find_links_wheels", "wheel_matches", "fetch_page"]

_OPTION = re.compile(r"^(--extra-index-url|--find-links|-f)(?:\s+|=)(\S+)$")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==(\S+)$")
# linux-64 with the glibc in the packs' virtual-packages.yml (2.17): the platforms pip accepts there
_LINUX_64 = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]
_FETCH_TIMEOUT_S = 60


class _Links(HTMLParser):
    """Every ``<a href>`` of a find-links page, made absolute."""

    def __init__(self, base: str):
        super().__init__()
        self.base, self.links = base, []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(urljoin(self.base, href))


def fetch_page(url: str) -> str:
    """The text of a find-links page (https:// or file://); a network failure is one readable error."""
    try:
        with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_S) as resp:  # noqa: S310 - URLs from the pack
            return resp.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise MissingPrerequisiteError(f"could not read the pip --find-links page {url}: {exc}",
                                       "run `onlinemap env lock` where the network reaches it") from None


def split_pip_section(pip: list) -> tuple[list[str], list[str], list[str]]:
    """(index URLs, find-links pages, requirements) of an environment.yml ``pip:`` list."""
    indexes, pages, reqs = [], [], []
    for entry in pip:
        text = str(entry).split(" #", 1)[0].strip()
        m = _OPTION.match(text)
        if m:
            (pages if m.group(1) in ("--find-links", "-f") else indexes).append(m.group(2))
        elif text.startswith("-"):
            raise SpecError(f"pip option {text!r} cannot be expressed for conda-lock",
                            "use --extra-index-url or --find-links in environment.yml's pip list")
        elif text:
            reqs.append(text)
    return indexes, pages, reqs


def find_links_wheels(pages: list[str], fetch: Callable[[str], str] = fetch_page) -> list[tuple[str, str]]:
    """(file name, URL) of every wheel linked from ``pages``, in page order."""
    wheels = []
    for page in pages:
        parser = _Links(page)
        parser.feed(fetch(page))
        for link in parser.links:
            name = unquote(Path(urlparse(link).path).name)
            if name.endswith(".whl"):
                wheels.append((name, link))
    return wheels


def wheel_matches(filename: str, name: str, version: str, python: str) -> bool:
    """Is ``filename`` a wheel of ``name==version`` that pip installs on CPython ``python`` on linux-64?"""
    from packaging.tags import compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    try:
        wname, wversion, _build, wtags = parse_wheel_filename(filename)
        if canonicalize_name(wname) != canonicalize_name(name) or wversion != Version(version):
            return False
    except (ValueError, InvalidVersion):
        return False
    pyver = tuple(int(p) for p in python.split(".")[:2])
    ok = set(cpython_tags(pyver, platforms=_LINUX_64)) | set(compatible_tags(pyver, f"cp{pyver[0]}{pyver[1]}",
                                                                          platforms=_LINUX_64))
    return bool(ok & set(wtags))


def conda_lock_input(environment_file: Path, dest: Path, *, python: str,
                     fetch: Callable[[str], str] = fetch_page) -> Path:
    """Write ``dest``: ``environment_file`` with its pip options turned into what conda-lock reads."""
    try:
        doc = yaml.safe_load(Path(environment_file).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{environment_file}: cannot read it ({exc})", "fix the YAML") from None
    deps = list(doc.get("dependencies") or [])
    pip_at = [i for i, d in enumerate(deps) if isinstance(d, dict) and "pip" in d]
    if pip_at:
        indexes, pages, reqs = split_pip_section(deps[pip_at[0]]["pip"] or [])
        wheels = find_links_wheels(pages, fetch) if pages else []
        out = []
        for req in reqs:
            m = _PIN.match(req)
            hit = next((url for fname, url in wheels if m and wheel_matches(fname, m.group(1), m.group(2), python)),
                       None)
            out.append(f"{m.group(1)} @ {hit}" if hit else req)
        deps[pip_at[0]] = {"pip": out}
        doc["dependencies"] = deps
        if indexes:
            doc["pip-repositories"] = list(dict.fromkeys([*(doc.get("pip-repositories") or []), *indexes]))
    dest = Path(dest)
    dest.write_text(f"# derived from {Path(environment_file).name} by onlinemap (pip options -> what conda-lock reads)\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return dest
