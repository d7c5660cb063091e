"""Upgrades of older run.json files, one ``update_to_N`` per schema version (asv's update_json idea).

Version 1 is the first; files without a version are pre-release records written as version 1.
"""
from __future__ import annotations

from onlinemap.runs.schema import SCHEMA_VERSION

__all__ = ["upgrade"]


def update_to_1(data: dict) -> dict:
    data.setdefault("summary", {})
    data["schema_version"] = 1
    return data


_MIGRATIONS = {1: update_to_1}


def upgrade(data: dict) -> dict:
    """Apply every migration from the file's version up to SCHEMA_VERSION."""
    version = data.get("schema_version") or 0
    for target in range(int(version) + 1, SCHEMA_VERSION + 1):
        data = _MIGRATIONS[target](data)
    return data
