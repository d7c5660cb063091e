"""Find model folders and resolve a user-given name to a ModelSpec, with a near-name suggestion."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterator

from onlinemap import paths
from onlinemap.errors import SpecError, UnknownModelError
from onlinemap.registry.spec import ModelSpec, load_model_spec

__all__ = ["iter_model_dirs", "known_model_names", "find_model", "load_models", "load_models_and_broken",
           "resolve_model_names"]


def iter_model_dirs() -> Iterator[Path]:
    """Every ``<dir>/<Model>/`` with a model.toml, first occurrence of a name wins."""
    seen: set[str] = set()
    for root in paths.envs_dirs():
        if not root.is_dir():
            continue
        for sub in sorted(root.iterdir(), key=lambda p: p.name.lower()):
            if (sub / "model.toml").is_file() and sub.name not in seen:
                seen.add(sub.name)
                yield sub


def known_model_names() -> list[str]:
    return [d.name for d in iter_model_dirs()]


def find_model(name: str) -> ModelSpec:
    """Load the spec of model ``name`` (case-insensitive); unknown names list the known ones."""
    dirs = {d.name: d for d in iter_model_dirs()}
    folder = dirs.get(name) or {k.lower(): v for k, v in dirs.items()}.get(str(name).lower())
    if folder is None:
        known = sorted(dirs, key=str.lower)
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(known) or '(none)'}",
                                f"{hint}run `onlinemap models` to list them")
    return load_model_spec(folder)


def resolve_model_names(spec: str | list[str]) -> list[str]:
    """Expand 'all' or 'A,B' (or a list) to canonical model names, in the order given."""
    items = spec if isinstance(spec, (list, tuple)) else [s.strip() for s in str(spec).split(",")]
    items = [s for s in items if s]
    if not items:
        raise UnknownModelError("no model named", "pass --models A,B or --models all")
    if [s.lower() for s in items] == ["all"]:
        return known_model_names()
    return [find_model(s).name for s in items]


def load_models() -> list[ModelSpec]:
    """Every model spec; a malformed one raises SpecError (the listing must not hide a broken file)."""
    return [load_model_spec(d) for d in iter_model_dirs()]


def load_models_and_broken() -> tuple[list[ModelSpec], dict[str, SpecError]]:
    """(every spec that loads, {folder name: its SpecError}): for listings that must go on past a bad pack.

    One malformed model.toml under ONLINEMAP_ENVS must not hide every good model from ``models``,
    ``bench --models all`` or ``doctor``; those show the bad pack as a row of its own instead.
    """
    good, broken = [], {}
    for folder in iter_model_dirs():
        try:
            good.append(load_model_spec(folder))
        except SpecError as exc:
            broken[folder.name] = exc
    return good, broken
