"""Each lane spec runs exactly its pack variant's pins, outside the substitutions it lists (issue 15)."""
import copy
import tomllib
from pathlib import Path

import pytest

from verification import pins
from verification import record as rec

ROOT = Path(__file__).resolve().parents[2]
# the modern stack's specs (the paper stack's <M>.paper.toml are held to environment.yml by test_paper_pins.py)
SPECS = [rec.spec_path(ROOT, m, rec.MODERN) for m in rec.spec_models(ROOT, rec.MODERN)]


def _spec(path):
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_lane_pins_are_the_variants_pins(path):
    problems = pins.differences(ROOT, _spec(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_substitution_says_why(path):
    for sub in _spec(path).get("substitutions") or []:
        assert str(sub.get("why") or "").strip(), sub


def _modern_spec():
    path = ROOT / "verification" / "models" / "PETR.toml"
    spec = _spec(path)
    assert pins.variant_of(spec) == "modern" and pins.differences(ROOT, spec) == []
    return spec


def test_a_different_torch_in_the_lane_is_named():
    spec = copy.deepcopy(_modern_spec())
    spec["env"]["first"] = ["torch==2.13.0" if p.startswith("torch==") else p for p in spec["env"]["first"]]
    problems = pins.differences(ROOT, spec)
    assert any("torch: the variant pins ==2.8.0, the lane ==2.13.0" in p for p in problems), problems


def test_a_package_missing_from_the_lane_or_extra_in_it_is_named():
    spec = copy.deepcopy(_modern_spec())
    spec["env"]["requirements"] = [r for r in spec["env"]["requirements"] if not r.startswith("einops")]
    spec["env"]["requirements"].append("timm==0.6.12")
    problems = pins.differences(ROOT, spec)
    assert any(p.endswith("einops==0.8.2: in the variant, not in the lane (add it, or a [[substitutions]] entry "
                          "saying why it cannot exist on a CPU)") for p in problems), problems
    assert any("timm==0.6.12: in the lane, not in the variant" in p for p in problems), problems


def test_an_unlisted_substitution_fails_and_a_stand_in_must_keep_the_version():
    spec = copy.deepcopy(_modern_spec())
    spec["substitutions"] = [s for s in spec["substitutions"] if s["variant"] != "mmcv-full==1.7.2"]
    problems = pins.differences(ROOT, spec)
    assert any("mmcv-full==1.7.2: in the variant, not in the lane" in p for p in problems), problems
    assert any("mmcv==1.7.2: in the lane, not in the variant" in p for p in problems), problems

    spec = copy.deepcopy(_modern_spec())
    spec["env"]["requirements"] = ["mmcv==1.7.1" if r == "mmcv==1.7.2" else r for r in spec["env"]["requirements"]]
    next(s for s in spec["substitutions"] if s["variant"] == "mmcv-full==1.7.2")["lane"] = "mmcv==1.7.1"
    assert any("a stand-in must keep the version" in p for p in pins.differences(ROOT, spec))


def test_lane_only_may_not_shadow_a_variant_requirement_and_a_python_change_is_named():
    spec = copy.deepcopy(_modern_spec())
    spec["env"]["lane_only"] = spec["env"].get("lane_only", []) + ["numpy==1.26.4"]
    assert any("lane_only 'numpy==1.26.4' is a variant requirement too" in p for p in pins.differences(ROOT, spec))
    spec = copy.deepcopy(_modern_spec())
    spec["env"]["python"] = "3.11.9"
    assert any("python: the variant has 3.11.7, the lane 3.11.9" in p for p in pins.differences(ROOT, spec))


def test_a_conda_package_the_spec_does_not_list_is_named(tmp_path):
    """A CUDA conda package added to the variant must be listed as a substitution, not silently skipped."""
    spec = copy.deepcopy(_modern_spec())
    sub = next(s for s in spec["substitutions"] if isinstance(s["variant"], list))
    sub["variant"] = [v for v in sub["variant"] if v != "conda:cuda-nvcc"]
    assert any(p.endswith("conda:cuda-nvcc: in the variant, not in the lane (add it, or a [[substitutions]] entry "
                          "saying why it cannot exist on a CPU)") for p in pins.differences(ROOT, spec))
