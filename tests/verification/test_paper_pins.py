"""The lane's paper stack runs the pins the packs ship, not a look-alike.

Each ``verification/models/<M>.paper.toml`` installs the pip section of ``envs/<M>/environment.yml``
except what its ``[pins]`` table lists: ``substituted`` (a CUDA build for PyPI's CPU-capable build of
the SAME version, or ``mmcv-full`` for lite ``mmcv`` of the same version), ``dropped`` and ``added``
(each with its reason). A pin changed on one side only fails here.
"""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from verification import record as rec

ROOT = Path(__file__).resolve().parents[2]
PAPER_SPECS = rec.spec_models(ROOT, rec.PAPER)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def _name(pin: str) -> str:
    return re.sub(r"[-_.]+", "-", pin.split("==")[0]).lower()


def _norm(pin: str) -> str:
    match = PIN.match(pin.strip())
    assert match, f"not an exact pin: {pin!r}"
    return f"{_name(pin)}=={match.group(2)}"


def environment_pip_pins(model: str) -> set[str]:
    env = yaml.safe_load((ROOT / "envs" / model / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_norm(p) for p in pip if not str(p).startswith("-")}


def environment_python(model: str) -> str:
    env = yaml.safe_load((ROOT / "envs" / model / "environment.yml").read_text())
    return next(d.split("=", 1)[1] for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))


def spec_pins(spec: dict) -> set[str]:
    e = spec["env"]
    steps = [a for step in e.get("pip_steps", []) for a in step if not a.startswith("-")]
    return {_norm(p) for p in e["first"] + e.get("build_tools", []) + e["requirements"] + e.get("no_deps", []) + steps}


def _load(model):
    return tomllib.loads(rec.spec_path(ROOT, model, rec.PAPER).read_text())


def test_there_are_paper_specs():
    assert PAPER_SPECS, "no verification/models/<M>.paper.toml"


def expected_pins(spec: dict, shipped: set[str], model: str) -> set[str]:
    """What the spec must install: the shipped pins, the listed ones replaced, dropped or added (checked)."""
    pins = spec.get("pins", {})
    substituted = {_norm(a): _norm(b) for a, b in pins.get("substituted", {}).items()}
    dropped = {_norm(a): why for a, why in pins.get("dropped", {}).items()}
    added = {_norm(a): why for a, why in pins.get("added", {}).items()}
    for what, table in (("dropped", dropped), ("added", added)):
        assert all(str(why).strip() for why in table.values()), f"{model}: every [pins] {what} entry needs its reason"
    listed = set(substituted) | set(dropped)
    assert listed <= shipped, f"{model}: [pins] names pins the environment.yml does not have: {sorted(listed - shipped)}"
    for old, new in substituted.items():
        old_name, old_version = old.split("==")
        new_name, new_version = new.split("==")
        assert new_version == old_version.split("+")[0], f"{model}: {old} -> {new} changes the version"
        assert new_name == old_name or (old_name, new_name) == ("mmcv-full", "mmcv"), f"{model}: {old} -> {new}"
    return (shipped - listed) | set(substituted.values()) | set(added)


@pytest.mark.parametrize("model", PAPER_SPECS)
def test_paper_spec_pins_equal_the_packs_environment_yml_but_for_listed_substitutions(model):
    spec = _load(model)
    assert spec["model"] == model
    shipped_python = environment_python(model)    # conda's match spec: "3.8" is any 3.8.x
    assert spec["env"]["python"] == shipped_python or spec["env"]["python"].startswith(shipped_python + "."), model
    expected = expected_pins(spec, environment_pip_pins(model), model)
    got = spec_pins(spec)
    assert got == expected, (f"{model}: paper spec vs envs/{model}/environment.yml: only in the spec "
                             f"{sorted(got - expected)}, only in the pack {sorted(expected - got)}")


def test_a_pin_changed_in_the_pack_only_is_caught():
    """The comparison is not vacuous: a shipped pin bumped, or a substitution changing the version, fails."""
    model = PAPER_SPECS[0]
    spec = _load(model)
    shipped = environment_pip_pins(model)
    listed = {_norm(a) for a in spec["pins"].get("substituted", {})} | {_norm(a) for a in spec["pins"].get("dropped", {})}
    victim = sorted(shipped - listed)[0]
    assert spec_pins(spec) != expected_pins(spec, (shipped - {victim}) | {victim + ".post999"}, model)
    old, new = next(iter(spec["pins"]["substituted"].items()))
    bad = dict(spec, pins=dict(spec["pins"], substituted={old: new + ".1"}))
    with pytest.raises(AssertionError, match="changes the version"):
        expected_pins(bad, shipped, model)
