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


def rerun_command(model: str) -> str:
    return f"{RERUN} {model}"


def verified_files(root: Path, model: str) -> list[str]:
    """Repo-relative paths whose content a verification of ``model`` vouches for."""
    pack = root / "envs" / model
    files = [pack / "demo.py", pack / "model.toml", root / "verification" / "models" / f"{model}.toml"]
    files += sorted((root / "envs" / "_shared").glob("*.py"))
    for series in applied_series(root, model):    # only what the lane applies: a GPU-only series it
        folder = pack / "patches" / series          # never applies (modern-cuda: op sources) is not vouched for
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file())
    return [p.relative_to(root).as_posix() for p in files if p.is_file()]


def applied_series(root: Path, model: str) -> list[str]:
    """The patch series (``envs/<model>/patches/<series>/``) the lane's spec applies, in order."""
    import tomllib

    spec = root / "verification" / "models" / f"{model}.toml"
    if not spec.is_file():
        return []
    return list(tomllib.loads(spec.read_text()).get("patches", {}).get("series", []))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_hashes(root: Path, model: str) -> dict[str, str]:
    return {rel: sha256(root / rel) for rel in verified_files(root, model)}


def load(path: Path = RECORD) -> dict:
    if not path.is_file():
        return {"models": {}}
    return json.loads(path.read_text())


def save(record: dict, path: Path = RECORD) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def update(model: str, entry: dict, path: Path = RECORD) -> None:
    """Replace one model's entry, under a lock (several lanes may finish at once)."""
    import fcntl

    lock_path = ROOT / ".venv-verify-work" / "record.lock"   # ignored (/.venv-*/), beside the lane's work
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = load(path)
        record.setdefault("models", {})[model] = entry
        (record.get("not_covered") or {}).pop(model, None)
        save(record, path)


def stale_files(root: Path, model: str, entry: dict) -> list[str]:
    """Files changed, added or removed since ``entry`` (one model's record) was written."""
    recorded = entry.get("files") or {}
    now = file_hashes(root, model)
    changed = [rel for rel, digest in now.items() if recorded.get(rel) != digest]
    gone = [rel for rel in recorded if rel not in now]
    return sorted(changed + gone)


def staleness_message(model: str, stale: list[str]) -> str:
    shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
    return (f"{model}: {shown} changed since its verification record (verification/record.json); "
            f"rerun the real-code lane: {rerun_command(model)}")
