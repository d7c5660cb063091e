"""List and remove the env prefixes under ``ONLINEMAP_HOME/envs``."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from onlinemap import paths
from onlinemap.environments.base import lock_hash, read_env_info
from onlinemap.errors import OnlinemapError, UsageError

__all__ = ["list_envs", "remove_envs", "prefix_size"]

_PREFIX_NAME = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9_.-]*)-(?P<hash>[0-9a-f]{12})$")   # base.env_prefix


def prefix_size(prefix: Path) -> int:
    """Bytes under ``prefix`` (hard links counted once, symlinks not followed)."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(prefix):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _current_hashes() -> dict[str, set]:
    from onlinemap.registry.discover import iter_model_dirs
    from onlinemap.registry.spec import load_model_spec

    out = {}
    for folder in iter_model_dirs():
        try:
            spec = load_model_spec(folder)
            if spec.env_kind == "conda":     # every env variant's lock is current (paper and modern)
                out[spec.name] = {lock_hash(spec.with_variant(v))[0] for v in spec.variant_names}
        except OnlinemapError:
            continue
    return out


def list_envs(*, sizes: bool = True) -> list[dict]:
    """One dict per prefix: prefix, model, manager, lock_hash, size_bytes, ready, current (matches today's lock)."""
    root = paths.envs_prefix_dir()
    if not root.is_dir():
        return []
    current = _current_hashes()
    rows = []
    for prefix in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        info = read_env_info(prefix) or {}
        named = _PREFIX_NAME.match(prefix.name)
        if not (info.get("model") or named):
            continue                    # not an env prefix (someone's folder): never listed, never removed
        model = info.get("model") or named.group("model")
        digest = info.get("lock_hash") or (named.group("hash") if named else None)
        rows.append({"prefix": str(prefix), "model": model, "manager": info.get("manager"), "lock_hash": digest,
                     "locked": info.get("locked"), "python": info.get("python"), "created": info.get("created"),
                     "size_bytes": prefix_size(prefix) if sizes else None, "ready": bool(info),
                     "variant": info.get("variant", "paper"), "current": digest in current.get(model, set())})
    return rows


def remove_envs(model: str) -> list[str]:
    """Delete every prefix of ``model`` (any lock hash); return the removed paths (info file first).

    Only env prefixes are candidates (an info file naming the model, or a ``<Model>-<12 hex>`` folder).
    """
    if not model or not model.strip():
        raise UsageError("env remove needs a model name, got an empty one", "e.g. onlinemap env remove MapTR")
    removed = []
    for row in list_envs(sizes=False):
        if row["model"].lower() == model.lower():
            prefix = Path(row["prefix"])
            info = prefix / ".onlinemap-env.json"
            if info.exists():
                info.unlink()          # not ready any more, even if the tree removal is interrupted
            shutil.rmtree(prefix, ignore_errors=True)
            removed.append(str(prefix))
    return removed
