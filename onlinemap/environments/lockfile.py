"""Read a conda-lock v1 file (``envs/<Model>/conda-lock.yml``) strictly, and render what managers need.

conda-lock's unified format (v1) lists every package of every platform with its URL and hashes;
``manager: conda`` entries are conda archives, ``manager: pip`` entries are wheels/sdists installed
afterwards with ``pip --no-deps``. We read it ourselves (PyYAML, no conda-lock import) because every
installer needs the same facts: the conda URLs + hashes for one platform (for the explicit file that
conda/mamba install, and for our own hash check before py-rattler installs ``file://`` archives), and
the pip entries. A malformed file is a :class:`SpecError` (exit 4) naming the file and the entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from onlinemap.errors import SpecError

__all__ = ["LockedEntry", "LockData", "load_lock", "load_environment_yml", "render_explicit", "pip_requirement",
           "PLATFORM"]

PLATFORM = "linux-64"   # the only platform onlinemap's model envs are locked for (pods are linux-64)


@dataclass(frozen=True)
class LockedEntry:
    """One package of the lock for one platform."""

    name: str
    version: str
    manager: str          # conda | pip
    platform: str
    url: str
    sha256: str
    md5: str
    category: str = "main"


@dataclass
class LockData:
    path: Path
    version: int
    platforms: list
    entries: list

    def conda(self, platform: str = PLATFORM) -> list[LockedEntry]:
        return [e for e in self.entries if e.manager == "conda" and e.platform == platform and e.category == "main"]

    def pip(self, platform: str = PLATFORM) -> list[LockedEntry]:
        return [e for e in self.entries if e.manager == "pip" and e.platform == platform and e.category == "main"]


def _bad(path: Path, what: str) -> SpecError:
    return SpecError(f"{path}: {what}",
                     "regenerate it with `onlinemap env lock MODEL` (conda-lock v1 unified format)")


def load_lock(path: Path, platform: str = PLATFORM) -> LockData:
    """Parse and check a conda-lock v1 file; raise SpecError (exit 4) on anything malformed."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _bad(path, "missing") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _bad(path, f"not valid YAML ({first})") from None
    if not isinstance(doc, dict):
        raise _bad(path, "not a conda-lock file (top level is not a mapping)")
    version = doc.get("version")
    if version != 1:
        raise _bad(path, f"lock version {version!r} is not supported (expected version: 1)")
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("platforms"), list):
        raise _bad(path, "field 'metadata.platforms' missing")
    packages = doc.get("package")
    if not isinstance(packages, list):
        raise _bad(path, "field 'package' must be a list")
    entries = []
    for i, raw in enumerate(packages):
        if not isinstance(raw, dict):
            raise _bad(path, f"package[{i}] is not a mapping")
        missing = [k for k in ("name", "version", "manager", "platform", "url") if not raw.get(k)]
        if missing:
            raise _bad(path, f"package[{i}] ({raw.get('name', '?')}) lacks '{missing[0]}'")
        hashes = raw.get("hash") or {}
        if not isinstance(hashes, dict):
            raise _bad(path, f"package[{i}] ({raw['name']}): 'hash' must be a mapping")
        if raw["manager"] not in ("conda", "pip"):
            raise _bad(path, f"package[{i}] ({raw['name']}): unknown manager {raw['manager']!r}")
        if not (hashes.get("sha256") or hashes.get("md5")):
            raise _bad(path, f"package[{i}] ({raw['name']}) has neither sha256 nor md5")
        if raw["manager"] == "pip" and not hashes.get("sha256"):
            raise _bad(path, f"package[{i}] ({raw['name']}): a pip entry needs a sha256")
        entries.append(LockedEntry(name=str(raw["name"]), version=str(raw["version"]), manager=raw["manager"],
                                   platform=str(raw["platform"]), url=str(raw["url"]),
                                   sha256=str(hashes.get("sha256") or ""), md5=str(hashes.get("md5") or ""),
                                   category=str(raw.get("category") or "main")))
    data = LockData(path=path, version=1, platforms=[str(p) for p in meta["platforms"]], entries=entries)
    if platform not in data.platforms:
        raise _bad(path, f"not locked for {platform} (platforms: {', '.join(data.platforms) or 'none'})")
    if not data.conda(platform):
        raise _bad(path, f"no conda packages for {platform}")
    return data


def load_environment_yml(path: Path) -> dict:
    """Read a model's environment.yml strictly enough to refuse a broken one before any tool runs."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: missing", "every conda model needs an environment.yml") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise SpecError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc})",
                        "fix the syntax (see the other envs/<Model>/environment.yml files)") from None
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list) or not data["dependencies"]:
        raise SpecError(f"{path}: needs a non-empty 'dependencies' list", "see docs/environments.md")
    if not isinstance(data.get("channels", []), list):
        raise SpecError(f"{path}: 'channels' must be a list", "e.g. channels: [conda-forge]")
    return data


def render_explicit(lock: LockData, dest: Path, platform: str = PLATFORM) -> Path:
    """Write an ``@EXPLICIT`` file (``url#md5`` lines) that ``conda/mamba create --file`` installs unsolved."""
    lines = [f"# Rendered by onlinemap from {lock.path} for {platform}; pip entries are installed separately.",
             f"# platform: {platform}", "@EXPLICIT"]
    for e in lock.conda(platform):
        lines.append(f"{e.url}#{e.md5}" if e.md5 else f"{e.url}#sha256={e.sha256}")
    Path(dest).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(dest)


def pip_requirement(entry: LockedEntry) -> str:
    """``name @ url#sha256=…``: pip checks the fragment hash of what it downloads."""
    url = entry.url.split("#", 1)[0]
    return f"{entry.name} @ {url}#sha256={entry.sha256}"
