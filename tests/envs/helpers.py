"""Shared scaffolding of the adapter conversion tests (envs/ is not a package: adapters load by path)."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_adapter(model: str):
    """envs/<model>/demo.py as a module (it needs only the standard library to import)."""
    spec = importlib.util.spec_from_file_location(f"_test_{model.lower()}_demo", ROOT / "envs" / model / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_valid(pred: dict) -> None:
    """The prediction survives a JSON round trip and passes the project's own schema check."""
    from onlinemap.evaluation.predictions import validate_prediction

    errors = validate_prediction(json.loads(json.dumps(pred, allow_nan=False)))
    assert errors == [], errors


def quat_z(deg: float) -> list[float]:
    """[w, x, y, z] quaternion of a rotation by ``deg`` degrees about +z."""
    half = math.radians(deg) / 2
    return [math.cos(half), 0.0, 0.0, math.sin(half)]


class FakeLiDARBoxes:
    """Test-only stand-in for mmdet3d's LiDARInstance3DBoxes: like the real one, adapters read only ``tensor``."""

    def __init__(self, tensor):
        self.tensor = tensor
