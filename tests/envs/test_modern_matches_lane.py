"""The modern variant's Python-level pins are the CPU verification lane's (issue 15: the lane is the CPU
half of the modern stack), so a change to one shows up against the other.

Reads ``verification/models/<Model>.toml`` (the lane's stack); skips where the lane is not in this
checkout. Allowed difference, by design: mmcv (the lane's lite mmcv 1.7.2 = the variant's mmcv-full 1.7.2 wheel);
torch/torchvision are the same (torch 2.8.0+cu128 runs on CPU). The exact, two-way comparison with the listed
substitutions is tests/verification/test_pins.py."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from onlinemap.registry.spec import load_model_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
LANE = REPO / "verification" / "models"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==(\S+)$")
BY_DESIGN: set[str] = set()


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _variant_pins(spec) -> dict:
    doc = yaml.safe_load(spec.environment_file.read_text())
    pip = next(d["pip"] for d in doc["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in [*pip, *(a for argv in spec.ops.build if "pip" in argv for a in argv)]:
        m = _PIN.match(str(line).split("#")[0].strip())
        if m:
            pins[_canon(m.group(1))] = m.group(2)
    for w in spec.wheels:
        pins[_canon(w.package)] = w.version
    return pins


@pytest.mark.parametrize("model", ["MapTR", "PETR", "StreamPETR", "VAD"])
def test_modern_pins_are_the_lanes(model):
    lane_file = LANE / f"{model}.toml"
    if not lane_file.is_file():
        pytest.skip(f"{lane_file.relative_to(REPO)} is not in this checkout (the verification lane's branch)")
    lane = tomllib.loads(lane_file.read_text())["env"]
    spec = load_model_spec(REPO / "envs" / model, "modern")
    ours = _variant_pins(spec)
    ours.setdefault("mmcv", ours.get("mmcv-full"))
    diffs = []
    for line in [*lane.get("requirements", []), *lane.get("no_deps", []), *lane.get("first", [])]:
        m = _PIN.match(line)
        name = _canon(m.group(1))
        if name in BY_DESIGN:
            continue
        if ours.get(name) != m.group(2):
            diffs.append(f"{m.group(1)}: lane {m.group(2)}, modern variant {ours.get(name)}")
    assert not diffs, f"{model}: " + "; ".join(diffs)
    assert lane["python"].rsplit(".", 1)[0] == spec.python
