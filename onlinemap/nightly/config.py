"""``nightly.toml``: which models the nightly job runs, on which samples, and how it judges them.

Every key is optional; the defaults below are the ones documented in docs/nightly.md. Unknown keys
are refused (a typo would otherwise silently change what is measured)::

    models = ["reference", "MapTR"]   # or "all"
    samples = 50                      # measured samples (the first N of the fixed evaluation order)
    sample_tokens = []                # or an explicit list (overrides the order above)
    warmup = 5
    device = "auto"                   # cpu | cuda | cuda:N | auto
    dataroot = ""                     # default: $NUSCENES_ROOT, else the synthetic dataset
    version = ""                      # default: the dataroot's only (or mini) version
    factor = 1.1                      # a regression is a median slowdown beyond this ratio ...
    alpha = 0.002                     # ... that Mann-Whitney U also finds significant (p < alpha)
    history = 20                      # compare with at most this many earlier nightly runs
    min_history = 3                   # fewer earlier runs: report, never flag
    timeout_s = 3600                  # per model run
    inactivity_s = 600
    [options]                         # passed to every adapter (settings.options)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from onlinemap import paths
from onlinemap.errors import SpecError

__all__ = ["NightlyConfig", "load_config", "default_config_path", "record_dataset"]

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib


@dataclass
class NightlyConfig:
    """What one night runs and how it is judged (defaults shared with docs/nightly.md)."""

    models: list = field(default_factory=lambda: ["reference"])
    samples: int = 50
    sample_tokens: list = field(default_factory=list)
    warmup: int = 5
    device: str = "auto"
    dataroot: str = ""
    version: str = ""
    factor: float = 1.1
    alpha: float = 0.002
    history: int = 20
    min_history: int = 3
    timeout_s: float | None = 3600.0
    inactivity_s: float | None = 600.0
    options: dict = field(default_factory=dict)   # passed to the adapters (settings.options)
    source: str = ""          # the file it came from ("" = defaults)

    def __post_init__(self):
        where = self.source or "nightly config"
        if isinstance(self.models, str):
            self.models = [m.strip() for m in self.models.split(",") if m.strip()]
        checks = [
            (isinstance(self.models, list) and self.models and all(isinstance(m, str) for m in self.models),
             "models", "a non-empty list of model names (or \"all\")"),
            (isinstance(self.samples, int) and self.samples >= 1, "samples", "an integer >= 1"),
            (isinstance(self.warmup, int) and self.warmup >= 0, "warmup", "an integer >= 0"),
            (isinstance(self.factor, (int, float)) and self.factor > 1.0, "factor", "a number > 1 (e.g. 1.1)"),
            (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 1, "alpha", "a p-value in (0, 1), e.g. 0.002"),
            (isinstance(self.history, int) and self.history >= 1, "history", "an integer >= 1"),
            (isinstance(self.min_history, int) and self.min_history >= 1, "min_history", "an integer >= 1"),
            (isinstance(self.sample_tokens, list), "sample_tokens", "a list of sample tokens"),
            (isinstance(self.dataroot, str), "dataroot", "a folder path (a string)"),
            (isinstance(self.version, str), "version", "a nuScenes version string, e.g. \"v1.0-mini\""),
        ]
        for ok, key, want in checks:
            if not ok:
                raise SpecError(f"{where}: {key} must be {want}, got {getattr(self, key)!r}",
                                "fix the file (keys: docs/nightly.md)")

    def to_dict(self) -> dict:
        return asdict(self)


def default_config_path() -> Path:
    return paths.home() / "nightly.toml"


def load_config(path: Path | str | None = None) -> NightlyConfig:
    """Read ``path`` (default ONLINEMAP_HOME/nightly.toml; absent -> the defaults); refuse unknown keys."""
    explicit = path is not None
    path = Path(path) if path else default_config_path()
    if not path.exists():
        if explicit:
            raise SpecError(f"{path}: missing", "give an existing nightly.toml (see docs/nightly.md)", exit_code=2)
        return NightlyConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})", "fix the file (see docs/nightly.md)") from None
    known = {f.name for f in fields(NightlyConfig)} - {"source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {', '.join(unknown)}", f"known keys: {', '.join(sorted(known))}")
    if raw.get("dataroot") is None:
        raw.pop("dataroot", None)
    return NightlyConfig(**raw, source=str(path))


def record_dataset(dataroot: str | Path, version: str | None = None, path: Path | None = None) -> tuple[Path, str]:
    """Write ``dataroot`` (and ``version``) into the nightly config, so cron runs on the data a run by hand uses.

    cron's environment has no ``NUSCENES_ROOT``; the config is what both read. A config that already
    names a dataroot keeps it (it was chosen on purpose). The keys go at the top of the file, before
    any ``[table]``, and the rest of the file is left as it is. Returns (config path, what happened).
    """
    import json

    path = Path(path) if path else default_config_path()
    current = load_config(path) if path.exists() else NightlyConfig()
    dataroot = str(Path(dataroot).expanduser().absolute())
    if current.dataroot:
        if str(Path(current.dataroot).expanduser().absolute()) == dataroot:
            return path, f"{path} already names dataroot {dataroot}"
        return path, f"{path} keeps its dataroot {current.dataroot} (not {dataroot}); edit it to change"
    lines = [f"dataroot = {json.dumps(dataroot)}   # recorded by `onlinemap cron install`"]
    if version and not current.version:
        lines.append(f"version = {json.dumps(version)}")
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    from onlinemap.fileio import write_bytes_atomic

    paths.ensure_dir(path.parent)
    write_bytes_atomic(path, ("\n".join(lines) + "\n" + old).encode("utf-8"))
    load_config(path)   # the file still parses and validates
    return path, f"recorded dataroot {dataroot} in {path}"
