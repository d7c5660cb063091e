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
                  archs = ["8.0", "8.6"]                      # TORCH_CUDA_ARCH_LIST of the ops build (optional)
    [ops]         build = [["python", "setup.py", "develop"], ...]  (argv lists run in the repo),
                  cuda_ops = ["mmcv._ext", ...]                 # compiled extension modules (smoke-imported)
    [smoke]       imports = ["torch", "mmcv", "mmdet3d"]      # what a ready env must import
                  plugin = "projects.mmdet3d_plugin"           # imported in the repo checkout
                  cuda_check = "..."                           # one tiny CUDA launch, run when a GPU is visible

Env variants: the files above are the ``paper`` variant (the published stack, kept unchanged for exact
reproduction). Another variant lives in ``envs/<Model>/variants/<name>/``: its own ``environment.yml``,
``virtual-packages.yml``, ``conda-lock.yml`` and a ``variant.toml`` (checked as strictly)::

    schema_version = 1
    python = "3.11"
    description = "..."
    repo_patches = ["patches/modern/repo/*.patch"]   # relative to the model folder; `git apply` in the checkout
    site_patches = ["patches/modern/site/*.patch"]   # applied in the env's site-packages after install
    [gpu] / [ops] / [smoke]                           # replace the model's tables for this variant
    [[wheels]]    package, version, patches = [...] (under envs/), env = {...}   # built once from the sdist, cached
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
           "CONVERTER_PLACEHOLDERS", "VariantSpec", "WheelSpec", "PAPER", "VARIANTS_DIR"]

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
#: the variant the model's own files describe (the published stack); others live in variants/<name>/
PAPER = "paper"
VARIANTS_DIR = "variants"
_VARIANT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
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
    #: TORCH_CUDA_ARCH_LIST entries the ops build covers ([] = 8.0 and 8.6 where in range)
    archs: list = field(default_factory=list)

    def check(self, path, prefix):
        _expect(isinstance(self.archs, list) and all(isinstance(a, str) and re.match(r"^\d+\.\d+(\+PTX)?$", a)
                                                     for a in self.archs), path, f"{prefix}.archs",
                'a list of compute capabilities as strings (e.g. ["8.0", "9.0", "12.0+PTX"])', self.archs)
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
    #: which env variant this spec describes (``paper`` = the model's own files) and the others it has
    variant: str = PAPER
    variant_dir: Path | None = None
    repo_patches: list = field(default_factory=list)
    site_patches: list = field(default_factory=list)
    wheels: list = field(default_factory=list)
    variants: dict = field(default_factory=dict)

    @property
    def adapter_path(self) -> Path:
        return self.folder / "demo.py"

    @property
    def env_dir(self) -> Path:
        """Where this variant's environment.yml / virtual-packages.yml / lock live."""
        return self.variant_dir or self.folder

    @property
    def environment_file(self) -> Path:
        return self.env_dir / "environment.yml"

    @property
    def lock_file(self) -> Path:
        return self.env_dir / "conda-lock.yml"

    @property
    def virtual_packages_file(self) -> Path:
        return self.env_dir / "virtual-packages.yml"

    @property
    def env_key(self) -> str:
        """The name part of the env prefix and the repo checkout: ``MapTR`` (paper) or ``MapTR-modern``."""
        return self.name if self.variant == PAPER else f"{self.name}-{self.variant}"

    @property
    def variant_flag(self) -> str:
        """`` --variant X`` for commands that fix this variant ("" for paper), e.g. in a fix hint."""
        return "" if self.variant == PAPER else f" --variant {self.variant}"

    @property
    def variant_names(self) -> list[str]:
        return [PAPER, *sorted(k for k in self.variants if k != PAPER)]

    def gpu_of(self, variant: str) -> GpuSpec:
        return self.base().with_variant(variant).gpu

    def base(self) -> "ModelSpec":
        """The paper variant of this model (self when it is one)."""
        return self if self.variant == PAPER else self.variants[PAPER]

    def with_variant(self, name: str | None) -> "ModelSpec":
        """This model as variant ``name`` describes it (SpecError naming the variants it has)."""
        from dataclasses import replace

        if not name or name == self.variant:
            return self
        if name == PAPER:
            return self.base()
        if self.variant != PAPER:
            return self.base().with_variant(name)
        v = self.variants.get(name)
        if v is None:
            raise SpecError(f"{self.name} has no env variant {name!r}",
                            f"choose one of: {', '.join(self.variant_names)}")
        return replace(self, variant=name, variant_dir=v.folder, python=v.python or self.python,
                       gpu=v.gpu, ops=v.ops, smoke=v.smoke if v.smoke is not None else self.smoke,
                       repo_patches=list(v.repo_patches), site_patches=list(v.site_patches), wheels=list(v.wheels),
                       variants={**self.variants, PAPER: self})

    def patch_files(self, kind: str) -> list[Path]:
        """The ``repo`` or ``site`` patch files of this variant, globs expanded in order (sorted within one)."""
        out: list[Path] = []
        for pattern in (self.repo_patches if kind == "repo" else self.site_patches):
            if any(c in pattern for c in "*?["):
                out += sorted(self.folder.glob(pattern))
            else:
                out.append(self.folder / pattern)
        return out

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Section):
                value = value.to_dict()
            elif isinstance(value, Path):
                value = str(value)
            elif f.name == "variants":
                value = {k: (v.to_dict() if hasattr(v, "to_dict") and k != PAPER else PAPER)
                         for k, v in value.items() if k != PAPER}
            elif f.name == "wheels":
                value = [w.to_dict() for w in value]
            out[f.name] = value
        return out


@dataclass
class WheelSpec(_Section):
    """A compiled dependency built once from its PyPI sdist (patched) and cached under ONLINEMAP_HOME/wheels.

    ``patches``: files relative to the ``envs/`` folder (shared by every model's variant, e.g.
    ``_shared/wheels/<package>-<version>-<change>.patch``), ``git apply``-ed in the unpacked sdist; ``env``:
    build variables (e.g. ``MMCV_WITH_OPS = "1"``); ``cuda_ops``-style checks stay in [ops]."""

    package: str = ""
    version: str = ""
    patches: list = field(default_factory=list)
    env: dict = field(default_factory=dict)

    def check(self, path, prefix):
        _expect(isinstance(self.package, str) and bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", self.package)),
                path, f"{prefix}.package", "a PyPI project name", self.package)
        _expect(isinstance(self.version, str) and bool(self.version) and " " not in self.version, path,
                f"{prefix}.version", "an exact version", self.version)
        _expect(isinstance(self.patches, list) and all(isinstance(p, str) and not p.startswith("/")
                                                      and ".." not in Path(p).parts for p in self.patches),
                path, f"{prefix}.patches", "a list of patch files relative to the envs/ folder", self.patches)
        _expect(isinstance(self.env, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in self.env.items()),
                path, f"{prefix}.env", "a table of string build variables", self.env)
        envs_root = path.parent.parent.parent.parent       # envs/<Model>/variants/<name>/variant.toml
        missing = [p for p in self.patches if not (envs_root / p).is_file()]
        _expect(not missing, path, f"{prefix}.patches", f"existing files under {envs_root}", missing)


@dataclass
class VariantSpec:
    """One ``variants/<name>/variant.toml`` (the paper variant is the model.toml itself)."""

    name: str
    folder: Path
    python: str = ""
    description: str = ""
    repo_patches: list = field(default_factory=list)
    site_patches: list = field(default_factory=list)
    gpu: GpuSpec = field(default_factory=GpuSpec)
    ops: OpsSpec = field(default_factory=OpsSpec)
    smoke: SmokeSpec | None = None
    wheels: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "python": self.python, "description": self.description,
                "repo_patches": self.repo_patches, "site_patches": self.site_patches, "gpu": self.gpu.to_dict(),
                "ops": self.ops.to_dict(), "smoke": self.smoke.to_dict() if self.smoke else None,
                "wheels": [w.to_dict() for w in self.wheels]}


_VARIANT_SCALARS = {"schema_version": int, "python": str, "description": str, "repo_patches": list,
                    "site_patches": list}
_VARIANT_SECTIONS = {"gpu": GpuSpec, "ops": OpsSpec, "smoke": SmokeSpec}


def load_variant(model_folder: Path, name: str) -> VariantSpec:
    """Read ``model_folder/variants/<name>/variant.toml`` strictly (same rules as model.toml)."""
    folder = model_folder / VARIANTS_DIR / name
    path = folder / "variant.toml"
    if not _VARIANT_NAME.match(name) or name == PAPER:
        raise SpecError(f"{folder}: {name!r} is not a valid variant folder name",
                        "use lowercase letters, digits and '-' (and not 'paper': that is the model.toml itself)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: missing", "every variants/<name>/ folder needs a variant.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})", "fix the syntax at the line shown") from None
    allowed = set(_VARIANT_SCALARS) | set(_VARIANT_SECTIONS) | {"wheels"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(f"{path}: unknown field '{unknown[0]}'", f"allowed top-level fields: {', '.join(sorted(allowed))}")
    for key in ("schema_version", "python", "gpu"):
        if key not in raw:
            raise SpecError(f"{path}: missing required field '{key}'", "see docs/environments.md (env variants)")
    for key, typ in _VARIANT_SCALARS.items():
        if key in raw:
            _expect(isinstance(raw[key], typ) and not (typ is int and isinstance(raw[key], bool)), path, key,
                    f"of type {typ.__name__}", raw[key])
    _expect(raw["schema_version"] == SCHEMA_VERSION, path, "schema_version", str(SCHEMA_VERSION), raw["schema_version"])
    for key in ("repo_patches", "site_patches"):
        pats = raw.get(key, [])
        envs_root = model_folder.resolve().parent
        _expect(all(isinstance(p, str) and p.endswith(".patch") and not p.startswith("/")
                    and envs_root in (model_folder / p).resolve().parents
                    and not (".." in Path(p).parts and any(c in p for c in "*?["))
                    for p in pats), path, key,
                "patch files or globs ending in .patch, relative to the model folder (a file of another model's "
                "folder as ../<Model>/patches/..., never a glob there)", pats)
    if not (folder / "environment.yml").is_file():
        raise SpecError(f"{folder / 'environment.yml'}: missing", "each variant needs its own environment.yml")
    sections = {k: cls.from_table(raw[k], path, k) for k, cls in _VARIANT_SECTIONS.items() if k in raw}
    wheels_raw = raw.get("wheels", [])
    _expect(isinstance(wheels_raw, list), path, "wheels", "an array of tables ([[wheels]])", wheels_raw)
    wheels = [WheelSpec.from_table(w, path, f"wheels[{i}]") for i, w in enumerate(wheels_raw)]
    return VariantSpec(name=name, folder=folder, python=raw["python"], description=raw.get("description", ""),
                       repo_patches=raw.get("repo_patches", []), site_patches=raw.get("site_patches", []),
                       wheels=wheels, **sections)


def _load_variants(folder: Path) -> dict:
    root = folder / VARIANTS_DIR
    if not root.is_dir():
        return {}
    return {d.name: load_variant(folder, d.name) for d in sorted(root.iterdir()) if d.is_dir()}


_SECTIONS = {"repo": RepoSpec, "config": ConfigSpec, "checkpoint": CheckpointSpec, "data": DataSpec,
             "gpu": GpuSpec, "ops": OpsSpec, "smoke": SmokeSpec}
_SCALARS = {"schema_version": int, "name": str, "task": str, "outputs": list, "env_kind": str, "python": str,
            "temporal": bool, "description": str}


def load_model_spec(folder: Path, variant: str | None = None) -> ModelSpec:
    """Read and validate ``folder/model.toml`` (and its variants); raise SpecError naming the file and the field.

    ``variant``: return that env variant (default: ``paper``, the model's own files)."""
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
    variants = _load_variants(folder)
    if variants and raw["env_kind"] != "conda":
        raise SpecError(f"{folder / VARIANTS_DIR}: env variants are for conda models only",
                        f"remove the folder or make {folder.name} a conda model")
    return ModelSpec(folder=folder, **scalars, **sections, variants=variants).with_variant(variant)
