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


# ----------------------------------------------------------------------------------------------
# the upstream repos at their pinned commits (../shared/upstream), read by the tests, never copied
# ----------------------------------------------------------------------------------------------

UPSTREAM = ROOT.parent / "shared" / "upstream"


def upstream_file(tarball: str, member: str) -> str:
    """Text of ``member`` inside ``../shared/upstream/<tarball>`` (skips the test when the snapshot is absent)."""
    import tarfile

    import pytest

    path = UPSTREAM / tarball
    if not path.is_file():
        pytest.skip(f"upstream snapshot {path} not present")
    with tarfile.open(path) as tar:
        for info in tar.getmembers():
            if info.name.lstrip("./") == member:
                return tar.extractfile(info).read().decode("utf-8")
    raise FileNotFoundError(f"{member} not in {path}")


def upstream_config(tarball: str, member: str) -> dict:
    """The variables an upstream mmcv config file defines itself (plain ``exec``; ``_base_`` not merged)."""
    namespace: dict = {}
    exec(compile(upstream_file(tarball, member), member, "exec"), namespace)  # noqa: S102 - pinned upstream config
    return namespace


# ----------------------------------------------------------------------------------------------
# the mmcv / mmdet3d entry points an adapter's load() calls, as recording stand-ins
# ----------------------------------------------------------------------------------------------

class AttrDict(dict):
    """A dict with attribute access, as mmcv's ``ConfigDict`` gives config sections."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    @classmethod
    def wrap(cls, obj):
        if isinstance(obj, dict):
            return cls({k: cls.wrap(v) for k, v in obj.items()})
        if isinstance(obj, list):
            return [cls.wrap(v) for v in obj]
        return obj


class FakeDataset:
    """What ``build_dataset`` returns to an adapter: ``data_infos`` and the class list."""

    CLASSES = ("dataset-class",)

    def __init__(self, cfg, infos):
        self.cfg = cfg
        self.data_infos = infos


class FakeModel:
    """What ``build_model`` returns: records ``to(device)`` and ``eval()``."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.device = None
        self.evaluated = False

    def to(self, device):
        self.device = str(device)
        return self

    def eval(self):
        self.evaluated = True
        return self


class FakeMMStack:
    """Test-only stand-ins for the mmcv / mmdet3d functions the adapters' ``load()`` calls.

    They only record the calls (in order, with what the config looked like at that moment) and hand
    back plain objects; they do no work of their own. What the real functions do is not modelled:
    the tests check only the order and arguments of our calls, which is what tools/test.py fixes.
    """

    def __init__(self, cfg: dict, infos=(), checkpoint_meta=None):
        self.cfg = AttrDict.wrap(cfg)
        self.infos = list(infos)
        self.checkpoint_meta = checkpoint_meta
        self.calls: list[tuple[str, object]] = []

    def install(self, monkeypatch) -> "FakeMMStack":
        import copy
        import sys
        import types

        stack = self

        def module(name, **attrs):
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            monkeypatch.setitem(sys.modules, name, mod)
            return mod

        class Config:
            @staticmethod
            def fromfile(path):
                stack.calls.append(("Config.fromfile", str(path)))
                return stack.cfg

        def build_dataset(cfg):
            stack.calls.append(("build_dataset", copy.deepcopy(dict(cfg))))
            return FakeDataset(cfg, copy.deepcopy(stack.infos))

        def build_model(cfg, test_cfg=None):
            stack.calls.append(("build_model", copy.deepcopy(dict(cfg))))
            return FakeModel(cfg)

        def load_checkpoint(model, filename, map_location=None):
            stack.calls.append(("load_checkpoint", (str(filename), map_location)))
            return {"meta": dict(stack.checkpoint_meta)} if stack.checkpoint_meta is not None else {}

        def wrap_fp16_model(model):
            stack.calls.append(("wrap_fp16_model", None))

        def import_modules_from_strings(imports=(), allow_failed_imports=False):
            stack.calls.append(("import_modules_from_strings", list(imports)))

        mmcv = module("mmcv", Config=Config)
        mmcv.runner = module("mmcv.runner", load_checkpoint=load_checkpoint, wrap_fp16_model=wrap_fp16_model)
        mmcv.utils = module("mmcv.utils", import_modules_from_strings=import_modules_from_strings)
        mmdet3d = module("mmdet3d")
        mmdet3d.datasets = module("mmdet3d.datasets", build_dataset=build_dataset)
        mmdet3d.models = module("mmdet3d.models", build_model=build_model)
        return self

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def call(self, name: str):
        return next(arg for n, arg in self.calls if n == name)
