"""A lane spec's pins against its pack variant's: the two must not drift apart (issue 15).

Why. The lane is the CPU half of a variant's stack: it is only evidence for that variant if it runs the
same Python-level pins. A spec (verification/models/<M>.toml) names its ``variant`` ("modern": the
files under ``envs/<M>/variants/modern/``; "paper": the pack's own ``environment.yml``/``model.toml``)
and may differ from it only by

- ``[[substitutions]]``: a variant requirement that cannot exist on a CPU (mmcv-full's compiled ops,
  CUDA conda packages, flash-attn) -> the lane's stand-in of the same version, or nothing; each with why;
- ``env.lane_only``: packages only the lane installs (its ONNX stage), none of them in the variant.

``differences`` lists every other mismatch; tests/verification/test_pins.py fails on any.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _variant_files(root: Path, model: str, variant: str) -> tuple[Path, Path]:
    pack = root / "envs" / model
    if variant == "paper":
        return pack / "environment.yml", pack / "model.toml"
    return pack / "variants" / variant / "environment.yml", pack / "variants" / variant / "variant.toml"


def variant_of(spec: dict) -> str:
    """The variant a spec stands for: ``env.variant``, else "modern" for the modern-cpu stack (a spec that
    predates the field), else "paper"."""
    env = spec.get("env", {})
    if env.get("variant"):
        return env["variant"]
    return "modern" if str(spec.get("stack", "")).startswith("modern") else "paper"


def variant_requirements(root: Path, model: str, variant: str) -> tuple[str | None, list[str]]:
    """(conda python version, requirements) of a pack variant: its environment.yml's pip section and conda
    packages (``conda:<spec>``), its ``[[wheels]]`` (``name==version``) and the pins of its ``[ops]`` pip steps."""
    env_yml, toml_file = _variant_files(root, model, variant)
    doc = yaml.safe_load(env_yml.read_text())
    python, out = None, []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict):
            out += [str(p).strip() for p in dep.get("pip") or []]
        elif str(dep).split("=")[0].strip() == "python":
            python = str(dep).split("=", 1)[1].lstrip("=").strip()
        else:
            out.append("conda:" + str(dep).strip())
    meta = tomllib.loads(toml_file.read_text()) if toml_file.is_file() else {}
    out += [f"{w['package']}=={w['version']}" for w in meta.get("wheels") or []]
    for argv in (meta.get("ops") or {}).get("build") or []:
        if "pip" in argv and "install" in argv:
            out += [a for a in argv if "==" in a and not a.startswith("-")]
    return python, out


def _key(req: str) -> str:
    if req.startswith("conda:"):
        return "conda:" + req[6:].split("=")[0].strip().lower()
    return canonicalize_name(Requirement(req).name)


def _by_key(reqs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in reqs:
        out[_key(r)] = r if r.startswith("conda:") else str(Requirement(r).specifier)
    return out


def _as_list(value) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def differences(root: Path, spec: dict) -> list[str]:
    """Every way the spec's pins differ from its variant's outside its listed substitutions and lane_only."""
    model, variant = spec["model"], variant_of(spec)
    env = spec["env"]
    env_yml, _ = _variant_files(root, model, variant)
    if not env_yml.is_file():
        return [f"{model}: the spec stands for variant {variant!r}, but {env_yml.relative_to(root)} does not exist"]
    python, wanted = variant_requirements(root, model, variant)
    problems = []
    if python and python != env["python"]:
        problems.append(f"python: the variant has {python}, the lane {env['python']}")
    lane = _by_key(env["first"] + env.get("build_tools", []) + env["requirements"] + env.get("no_deps", []))
    want = _by_key(wanted)
    for sub in spec.get("substitutions") or []:
        if not str(sub.get("why") or "").strip():
            problems.append(f"substitution {sub.get('variant')!r} says no why")
        for item in _as_list(sub.get("variant")):
            key = _key(item)
            if key not in want:
                problems.append(f"substitution for {item!r}: the variant has no such requirement (stale entry)")
            want.pop(key, None)
        for item in _as_list(sub.get("lane")):
            key = _key(item)
            if key not in lane:
                problems.append(f"substitution {item!r} is not among the lane's pins")
            for old in _as_list(sub.get("variant")):
                if not old.startswith("conda:") and str(Requirement(old).specifier) != str(Requirement(item).specifier):
                    problems.append(f"substitution {old!r} -> {item!r}: a stand-in must keep the version")
            want[key] = lane.get(key, "")
    for key in sorted(set(want) | set(lane)):
        if key not in lane:
            problems.append(f"{key}{want[key] if not key.startswith('conda:') else ''}: in the variant, not in the lane "
                            f"(add it, or a [[substitutions]] entry saying why it cannot exist on a CPU)")
        elif key not in want:
            problems.append(f"{key}{lane[key]}: in the lane, not in the variant (add it to the variant, or to "
                            f"env.lane_only if only the lane needs it)")
        elif want[key] != lane[key]:
            problems.append(f"{key}: the variant pins {want[key]}, the lane {lane[key]}")
    variant_names = {_key(r) for r in wanted}
    for item in env.get("lane_only", []):
        if _key(item) in variant_names:
            problems.append(f"lane_only {item!r} is a variant requirement too: pin it like the others")
    return [f"{model} (variant {variant}): {p}" for p in problems]
