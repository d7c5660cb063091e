"""``ModelSpec``: what ``envs/<Model>/model.toml`` says, checked strictly.

The file is committed and read by every command, so a typo must fail loudly with the file, the
field and what was expected, never silently fall back to a default. Unknown keys are rejected
(conda-lock's StrictModel idea, done with the standard library).

Schema (version 1)::

    schema_version = 1
    name = "MapTR"                       # equals the folder name
    task = "map"                         # detection | map | topology | planning
    outputs = ["map_elements"]           # keys of the standard prediction this model fills
    env_kind = "conda"                   # conda | host
    python = "3.8"
    temporal = false                     # keeps state across consecutive samples of a scene
    description = "..."
    [repo]        url, commit (40 hex), license (optional)
    [config]      default, others = [...]
    [checkpoint]  file, url, sha256 ("" until pinned), gdrive_id, note
    [data]        needs = ["nuscenes", "can_bus", "map_expansion", "openlane_v2"], versions, info_files,
                  converter = ["python", "tools/create_data.py", "--root-path", "{root}", ...], converter_cwd, note
    [gpu]         min_compute = 6.0, max_compute = 8.9, note    # compute capabilities the env runs on
    [ops]         build = [["python", "setup.py", "develop"], ...]  (argv lists run in the repo),
                  cuda_ops = ["mmcv._ext", ...]                 # compiled extension modules (smoke-imported)
    [smoke]       imports = ["torch", "mmcv", "mmdet3d"]      # what a ready env must import
                  plugin = "projects.mmdet3d_plugin"           # imported in the repo checkout
                  cuda_check = "..."                           # one tiny CUDA launch, run when a GPU is visible
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from onlinemap.errors import SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

__all__ = ["ModelSpec", "RepoSpec", "ConfigSpec", "CheckpointSpec", "DataSpec", "GpuSpec", "OpsSpec",
           "SmokeSpec", "load_model_spec", "TASKS", "ENV_KINDS", "OUTPUT_KEYS", "DATA_NEEDS", "SCHEMA_VERSION",
           "CONVERTER_PLACEHOLDERS"]

SCHEMA_VERSION = 1
TASKS = ("detection", "map", "topology", "planning")
ENV_KINDS = ("conda", "host")
OUTPUT_KEYS = ("detections_3d", "map_elements", "topology", "plan")
DATA_NEEDS = ("nuscenes", "can_bus", "map_expansion", "openlane_v2")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PLACEHOLDER = re.compile(r"{([^{}]*)}")
#: what a [data] converter argv may name: the dataroot, the output dir, the devkit version argument
#: (v1.0 for trainval, v1.0-mini), and the directory that holds can_bus/
CONVERTER_PLACEHOLDERS = ("root", "out", "version", "canbus")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Section:
    """Shared strict construction for the nested tables."""

    @classmethod
    def from_table(cls, table: Any, path: Path, prefix: str):
        if not isinstance(table, dict):
            raise SpecError(f"{path}: [{prefix}] must be a table, got {type(table).__name__}",
                            "see docs/models.md for the model.toml schema")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise SpecError(f"{path}: unknown field '{prefix}.{unknown[0]}'",
                            f"allowed in [{prefix}]: {', '.join(sorted(known))}")
        obj = cls(**table)
        obj.check(path, prefix)
        return obj

    def check(self, path: Path, prefix: str) -> None:  # overridden where needed
        pass

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _expect(cond: bool, path: Path, name: str, expected: str, got: Any) -> None:
    if not cond:
        raise SpecError(f"{path}: field '{name}' must be {expected}, got {got!r}",
                        "fix the model.toml (schema in docs/models.md)")


@dataclass
class RepoSpec(_Section):
    url: str = ""
    commit: str = ""
    license: str = ""

    def check(self, path, prefix):
        _expect(isinstance(self.url, str) and self.url.startswith("https://"), path, f"{prefix}.url",
                "an https:// URL", self.url)
        _expect(isinstance(self.commit, str) and bool(_COMMIT.match(self.commit)), path, f"{prefix}.commit",
                "a full 40-character lowercase git commit hash", self.commit)


@dataclass
class ConfigSpec(_Section):
    default: str = ""
    others: list = field(default_factory=list)

    def check(self, path, prefix):
        _expect(isinstance(self.default, str) and bool(self.default) and not self.default.startswith("/"),
                path, f"{prefix}.default", "a config path relative to the repo (or envs folder)", self.default)
        _expect(isinstance(self.others, list) and all(isinstance(o, str) for o in self.others), path,
                f"{prefix}.others", "a list of config paths", self.others)


@dataclass
class CheckpointSpec(_Section):
    file: str = ""
    url: str = ""
    sha256: str = ""
    gdrive_id: str = ""
    note: str = ""

    def check(self, path, prefix):
        _expect(isinstance(self.file, str) and "/" not in self.file, path, f"{prefix}.file",
                "a bare file name (no directories)", self.file)
        _expect(self.sha256 == "" or bool(_SHA256.match(str(self.sha256))), path, f"{prefix}.sha256",
                "64 lowercase hex digits or \"\" (not pinned yet)", self.sha256)
        _expect(not self.file or bool(self.url or self.gdrive_id), path, f"{prefix}.url",
                "a download URL or a gdrive_id when a checkpoint file is named", self.url)


@dataclass
class DataSpec(_Section):
    needs: list = field(default_factory=lambda: ["nuscenes"])
    versions: list = field(default_factory=lambda: ["v1.0-trainval", "v1.0-mini"])
    info_files: list = field(default_factory=list)
    converter: list = field(default_factory=list)   # argv run with the env's python (setup's info stage)
    converter_cwd: str = ""                          # where it runs, relative to the repo (also its PYTHONPATH)
    note: str = ""

    def check(self, path, prefix):
        _expect(isinstance(self.needs, list) and all(n in DATA_NEEDS for n in self.needs), path,
                f"{prefix}.needs", f"a list drawn from {list(DATA_NEEDS)}", self.needs)
        _expect(isinstance(self.info_files, list) and all(isinstance(f, str) and f and "/" not in f
                                                          for f in self.info_files),
                path, f"{prefix}.info_files", "a list of bare file names", self.info_files)
        ok = isinstance(self.converter, list) and all(isinstance(a, str) for a in self.converter)
        _expect(ok and (not self.converter or self.converter[0] == "python"), path, f"{prefix}.converter",
                'an argv list starting with "python" (or [] when the info files are made by hand)', self.converter)
        bad = sorted({m for a in self.converter for m in _PLACEHOLDER.findall(a)} - set(CONVERTER_PLACEHOLDERS))
        _expect(not bad, path, f"{prefix}.converter",
                "placeholders drawn from " + ", ".join("{%s}" % n for n in CONVERTER_PLACEHOLDERS), bad)
        _expect(isinstance(self.converter_cwd, str) and not self.converter_cwd.startswith("/")
                and ".." not in Path(self.converter_cwd).parts, path, f"{prefix}.converter_cwd",
                "a folder inside the repo (relative, no ..)", self.converter_cwd)
        _expect(not self.converter or bool(self.info_files), path, f"{prefix}.info_files",
                "the files the converter writes (a converter is given)", self.info_files)


@dataclass
class GpuSpec(_Section):
    min_compute: float = 0.0
    max_compute: float = 99.0
    cpu_ok: bool = False
    note: str = ""

    def check(self, path, prefix):
        _expect(isinstance(self.min_compute, (int, float)) and isinstance(self.max_compute, (int, float))
                and self.min_compute <= self.max_compute, path, f"{prefix}.min_compute",
                "numbers with min_compute <= max_compute (e.g. 6.0 and 8.9)", (self.min_compute, self.max_compute))

    def supports(self, compute_capability: float) -> bool:
        return self.min_compute <= compute_capability <= self.max_compute


@dataclass
class OpsSpec(_Section):
    """``build``: argv lists run in the repo checkout with the env's python. ``cuda_ops``: the compiled
    extension modules those steps (and the prebuilt mmcv-full) provide; the smoke step imports each, so
    an env whose build silently skipped its CUDA code is not called ready."""

    build: list = field(default_factory=list)
    cuda_ops: list = field(default_factory=list)

    def check(self, path, prefix):
        _expect(isinstance(self.build, list) and all(isinstance(c, list) and c and all(isinstance(a, str) for a in c)
                                                     for c in self.build),
                path, f"{prefix}.build", "a list of argv lists (no shell strings)", self.build)
        _expect(isinstance(self.cuda_ops, list) and all(isinstance(m, str) and _MODULE.match(m) for m in self.cuda_ops),
                path, f"{prefix}.cuda_ops", "a list of dotted module names (compiled extensions)", self.cuda_ops)


@dataclass
class SmokeSpec(_Section):
    """What a ready env must import. ``imports`` run anywhere (doctor too); ``plugin`` is the repo's own
    plugin package, imported with the repo checkout as the working directory; ``cuda_check`` is Python
    code run after them only when ``torch.cuda.is_available()`` (one tiny kernel launch that fails with
    "no kernel image" when the compiled ops miss this GPU's architecture)."""

    imports: list = field(default_factory=list)
    plugin: str = ""
    cuda_check: str = ""

    def check(self, path, prefix):
        _expect(isinstance(self.imports, list) and all(isinstance(m, str) and _MODULE.match(m) for m in self.imports),
                path, f"{prefix}.imports", "a list of dotted module names", self.imports)
        _expect(isinstance(self.plugin, str) and (not self.plugin or bool(_MODULE.match(self.plugin))), path,
                f"{prefix}.plugin", "a dotted module name inside the repo (or \"\")", self.plugin)
        _expect(isinstance(self.cuda_check, str), path, f"{prefix}.cuda_check", "Python code as a string", self.cuda_check)


@dataclass
class ModelSpec:
    """One model as its ``model.toml`` describes it; ``folder`` is the ``envs/<Model>/`` it came from."""

    name: str
    task: str
    env_kind: str
    folder: Path
    outputs: list = field(default_factory=list)
    python: str = "3.8"
    temporal: bool = False
    description: str = ""
    schema_version: int = SCHEMA_VERSION
    repo: RepoSpec | None = None
    config: ConfigSpec | None = None
    checkpoint: CheckpointSpec | None = None
    data: DataSpec = field(default_factory=DataSpec)
    gpu: GpuSpec = field(default_factory=GpuSpec)
    ops: OpsSpec = field(default_factory=OpsSpec)
    smoke: SmokeSpec = field(default_factory=SmokeSpec)

    @property
    def adapter_path(self) -> Path:
        return self.folder / "demo.py"

    @property
    def environment_file(self) -> Path:
        return self.folder / "environment.yml"

    @property
    def lock_file(self) -> Path:
        return self.folder / "conda-lock.yml"

    @property
    def virtual_packages_file(self) -> Path:
        return self.folder / "virtual-packages.yml"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Section):
                value = value.to_dict()
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


_SECTIONS = {"repo": RepoSpec, "config": ConfigSpec, "checkpoint": CheckpointSpec, "data": DataSpec,
             "gpu": GpuSpec, "ops": OpsSpec, "smoke": SmokeSpec}
_SCALARS = {"schema_version": int, "name": str, "task": str, "outputs": list, "env_kind": str, "python": str,
            "temporal": bool, "description": str}


def load_model_spec(folder: Path) -> ModelSpec:
    """Read and validate ``folder/model.toml``; raise SpecError naming the file and the field."""
    folder = Path(folder)
    path = folder / "model.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: missing", "every envs/<Model>/ folder needs a model.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})", "fix the syntax at the line shown") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text", "re-save the file as UTF-8") from None

    unknown = sorted(set(raw) - set(_SCALARS) - set(_SECTIONS))
    if unknown:
        raise SpecError(f"{path}: unknown field '{unknown[0]}'",
                        f"allowed top-level fields: {', '.join(sorted(set(_SCALARS) | set(_SECTIONS)))}")
    for key in ("schema_version", "name", "task", "env_kind"):
        if key not in raw:
            raise SpecError(f"{path}: missing required field '{key}'", "see docs/models.md for the schema")
    for key, typ in _SCALARS.items():
        if key in raw:
            _expect(isinstance(raw[key], typ) and not (typ is int and isinstance(raw[key], bool)), path, key,
                    f"of type {typ.__name__}", raw[key])
    version = raw["schema_version"]
    if version > SCHEMA_VERSION:
        raise SpecError(f"{path}: schema_version {version} is newer than this onlinemap understands ({SCHEMA_VERSION})",
                        "upgrade onlinemap (git pull && pip install -e .)")
    _expect(version == SCHEMA_VERSION, path, "schema_version", str(SCHEMA_VERSION), version)
    _expect(raw["name"] == folder.name, path, "name", f"the folder name {folder.name!r}", raw["name"])
    _expect(raw["task"] in TASKS, path, "task", f"one of {list(TASKS)}", raw["task"])
    _expect(raw["env_kind"] in ENV_KINDS, path, "env_kind", f"one of {list(ENV_KINDS)}", raw["env_kind"])
    outputs = raw.get("outputs", [])
    _expect(bool(outputs) and all(o in OUTPUT_KEYS for o in outputs), path, "outputs",
            f"a non-empty list drawn from {list(OUTPUT_KEYS)}", outputs)

    sections = {key: cls.from_table(raw[key], path, key) for key, cls in _SECTIONS.items() if key in raw}
    if raw["env_kind"] == "conda":
        for key in ("repo", "config", "checkpoint"):
            if key not in sections:
                raise SpecError(f"{path}: missing required table [{key}] for env_kind = \"conda\"",
                                "conda models are built from a pinned repo, a config and a checkpoint")
    if not (folder / "demo.py").is_file():
        raise SpecError(f"{folder / 'demo.py'}: missing", "each model folder needs its demo.py adapter")
    scalars = {k: raw[k] for k in _SCALARS if k in raw}
    return ModelSpec(folder=folder, **scalars, **sections)
