"""The committed verification record (verification/record.json) and the files it vouches for.

Why. The lane takes minutes per model, so it cannot run in every test; instead its last result is
committed with the sha256 of every file it verified (the adapter, ``model.toml``, the shared adapter
code, the pack's patch series the lane applies and the lane's own model spec). ``stale_files`` says which of them
changed since; tests/verification/ fails on any, naming the command that refreshes the record.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "verification" / "record.json"
RERUN = "scripts/verify-real-models.sh"
# The lane's stacks and their spec files (verification/models/<M><suffix>.toml). The modern entries stay
# at record["models"][M] (as before stacks existed); every other stack's at record["stacks"][stack].
MODERN, PAPER = "modern", "paper"
STACKS = {MODERN: "", PAPER: ".paper"}


def rerun_command(model: str, stack: str = MODERN) -> str:
    return f"{RERUN} --stack {stack} {model}"


def spec_path(root: Path, model: str, stack: str = MODERN) -> Path:
    return root / "verification" / "models" / f"{model}{STACKS[stack]}.toml"


def spec_models(root: Path, stack: str = MODERN) -> list[str]:
    """The models with a lane spec for ``stack``."""
    suffix = STACKS[stack] + ".toml"
    names = [p.name[: -len(suffix)] for p in (root / "verification" / "models").glob("*" + suffix)]
    return sorted(n for n in names if "." not in n)


def stack_record(record: dict, stack: str = MODERN) -> dict:
    """``{"models": {...}, "not_covered": {...}}`` of one stack (the modern one is the record's top level)."""
    if stack == MODERN:
        return record
    return record.setdefault("stacks", {}).setdefault(stack, {"models": {}, "not_covered": {}})


def verified_files(root: Path, model: str, stack: str = MODERN) -> list[str]:
    """Repo-relative paths whose content a verification of ``model`` on ``stack`` vouches for."""
    pack = root / "envs" / model
    files = [pack / "demo.py", pack / "model.toml", spec_path(root, model, stack)]
    if stack == PAPER:      # the paper stack's pins are the pack's environment.yml's (tests/verification/test_paper_pins.py)
        files.append(pack / "environment.yml")
    files += sorted((root / "envs" / "_shared").glob("*.py"))
    for series in applied_series(root, model, stack):    # only what the lane applies: a GPU-only series it
        folder = pack / "patches" / series          # never applies (modern-cuda: op sources) is not vouched for
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file())
    return [p.relative_to(root).as_posix() for p in files if p.is_file()]


def applied_series(root: Path, model: str, stack: str = MODERN) -> list[str]:
    """The patch series (``envs/<model>/patches/<series>/``) the lane's spec applies, in order."""
    import tomllib

    spec = spec_path(root, model, stack)
    if not spec.is_file():
        return []
    return list(tomllib.loads(spec.read_text()).get("patches", {}).get("series", []))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_hashes(root: Path, model: str, stack: str = MODERN) -> dict[str, str]:
    return {rel: sha256(root / rel) for rel in verified_files(root, model, stack)}


def load(path: Path = RECORD) -> dict:
    if not path.is_file():
        return {"models": {}}
    return json.loads(path.read_text())


def save(record: dict, path: Path = RECORD) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def update(model: str, entry: dict, path: Path = RECORD, stack: str = MODERN) -> None:
    """Replace one model's entry, under a lock (several lanes may finish at once)."""
    import fcntl

    lock_path = ROOT / ".venv-verify-work" / "record.lock"   # ignored (/.venv-*/), beside the lane's work
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = load(path)
        part = stack_record(record, stack)
        part.setdefault("models", {})[model] = entry
        (part.get("not_covered") or {}).pop(model, None)
        save(record, path)


def stale_files(root: Path, model: str, entry: dict, stack: str = MODERN) -> list[str]:
    """Files changed, added or removed since ``entry`` (one model's record on ``stack``) was written."""
    recorded = entry.get("files") or {}
    now = file_hashes(root, model, stack)
    changed = [rel for rel, digest in now.items() if recorded.get(rel) != digest]
    gone = [rel for rel in recorded if rel not in now]
    return sorted(changed + gone)


def staleness_message(model: str, stale: list[str], stack: str = MODERN) -> str:
    shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
    return (f"{model} ({stack} stack): {shown} changed since its verification record (verification/record.json); "
            f"rerun the real-code lane: {rerun_command(model, stack)}")
