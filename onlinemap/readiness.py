"""What a model needs before it can run, checked step by step: env, repo, weights, data.

``onlinemap models`` shows the verdict, ``onlinemap test`` refuses early with the first missing
step and the command that fixes it (rather than failing minutes later inside the env), and
``onlinemap doctor`` replays the same checks.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError
from onlinemap.registry.spec import ModelSpec

__all__ = ["Check", "REPO_INFO_FILE", "repo_dir", "weights_path", "check_model", "require_ready"]

REPO_INFO_FILE = ".onlinemap-repo.json"


@dataclass
class Check:
    step: str            # env | repo | weights | data
    ok: bool
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def repo_dir(spec: ModelSpec) -> Path | None:
    if spec.repo is None:
        return None
    # keyed by (model, commit, variant): ops are built in place, so each env variant has its own checkout
    suffix = "" if spec.variant == "paper" else f"-{spec.variant}"
    return paths.repos_dir() / f"{spec.name}@{spec.repo.commit[:12]}{suffix}"


def weights_path(spec: ModelSpec) -> Path | None:
    if spec.checkpoint is None or not spec.checkpoint.file:
        return None
    return paths.weights_dir() / spec.checkpoint.file


def _check_env(spec: ModelSpec) -> Check:
    from onlinemap.environments import resolve_environment

    try:
        env = resolve_environment(spec)
    except OnlinemapError as exc:
        return Check("env", False, exc.message, exc.hint)
    where = "driver's Python" if env.kind == "host" else f"{env.manager} env {env.prefix}"
    return Check("env", True, f"ready ({where})")


def _check_repo(spec: ModelSpec) -> Check | None:
    path = repo_dir(spec)
    if path is None:
        return None
    try:
        info = json.loads((path / REPO_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Check("repo", False, f"{spec.repo.url} not checked out at {spec.repo.commit[:12]} ({path})",
                     f"onlinemap env create {spec.name}{spec.variant_flag}")
    if info.get("commit") != spec.repo.commit:
        return Check("repo", False, f"{path} is at {str(info.get('commit'))[:12]}, expected {spec.repo.commit[:12]}",
                     f"onlinemap env create {spec.name}{spec.variant_flag} --force")
    return Check("repo", True, f"{path} at {spec.repo.commit[:12]}")


def _check_weights(spec: ModelSpec) -> Check | None:
    path = weights_path(spec)
    if path is None:
        return None
    if not path.is_file():
        return Check("weights", False, f"checkpoint {spec.checkpoint.file} not downloaded ({path})",
                     f"onlinemap env create {spec.name}{spec.variant_flag}")
    return Check("weights", True, f"{path}")


def _check_data(spec: ModelSpec, dataroot: Path | None) -> Check:
    from onlinemap.harness import nuscenes_index

    from onlinemap.data.selection import default_dataroot_for

    root = Path(dataroot) if dataroot else default_dataroot_for(spec.data.needs)
    if "openlane_v2" in spec.data.needs:   # the sample source: the collection pickle's frames
        from onlinemap.harness import openlane_index

        try:
            collection = openlane_index.detect_collection(str(root))
        except openlane_index.NotOpenLane as exc:
            fix = ("onlinemap data synth --openlane" if root == paths.data_dir() / "openlane-v2-synth"
                   else "pass --dataroot DIR (or set OPENLANE_V2_ROOT) pointing at the OpenLane-V2 subset_A data")
            return Check("data", False, str(exc), fix)
        return Check("data", True, f"OpenLane-V2 {root} ({collection})")
    try:
        version = nuscenes_index.detect_version(str(root))
    except nuscenes_index.NotNuScenes as exc:
        # synth only ever for its own default folder: never suggested over a path the user named
        fix = ("onlinemap data synth" if root == paths.data_dir() / "nuscenes-synth" and spec.env_kind == "host"
               else "pass --dataroot DIR (or set NUSCENES_ROOT) pointing at a nuScenes root")
        return Check("data", False, str(exc), fix)
    if "map_expansion" in spec.data.needs:
        from onlinemap.setup.data import map_expansion_problems

        problems = map_expansion_problems(root)
        if problems:
            return Check("data", False, f"{root} ({version}) lacks {', '.join(problems)}",
                         "download the map expansion v1.3 from nuscenes.org and unpack it into <root>/maps")
    return Check("data", True, f"{root} ({version})")


def check_model(spec: ModelSpec, dataroot: Path | None = None) -> list[Check]:
    """Every readiness check that applies to ``spec``, in the order a setup would fix them."""
    checks = [_check_env(spec), _check_repo(spec), _check_weights(spec), _check_data(spec, dataroot)]
    return [c for c in checks if c is not None]


def require_ready(spec: ModelSpec, dataroot: Path | None = None) -> list[Check]:
    """Raise MissingPrerequisiteError naming every missing step (first fix as the hint)."""
    checks = check_model(spec, dataroot)
    missing = [c for c in checks if not c.ok]
    if missing:
        steps = "; ".join(f"{c.step}: {c.detail}" for c in missing)
        fixes = list(dict.fromkeys(c.fix for c in missing if c.fix))
        raise MissingPrerequisiteError(f"{spec.name} is not ready — {steps}",
                                       " then ".join(fixes) + (" (creates the env, checks out the repo, builds the ops and "
                                                               "fetches the weights; it skips what is already in place)"
                                                               if any(f.startswith("onlinemap env create") for f in fixes) else ""))
    return checks
