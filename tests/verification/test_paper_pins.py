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


def ops_build_differences(spec: dict, ops: dict) -> list[str]:
    """What the pack's ``model.toml [ops]`` builds that the spec does not stand in for: each ``git checkout
    --detach <commit>`` of a cloned folder must be a ``[[sources.side]]`` at that commit, each ``pip install -e``
    folder on ``[env] pythonpath`` (a ``-e git+URL@commit#egg=NAME`` with ``--src DIR`` both), each pinned
    ``pip install`` a ``pip_steps`` pin or a compiled package the ``[stubs]`` cover, and each ``cuda_ops`` module
    stubbed. (A folder pip builds without -e is a compiled op: its module is in ``cuda_ops``.)"""
    import fnmatch

    env = spec["env"]
    sides = {s["dest"]: s.get("commit") for s in spec.get("sources", {}).get("side", [])}
    pythonpath = set(env.get("pythonpath", []))
    step_pins = {_norm(a) for step in env.get("pip_steps", []) for a in step if "==" in a and not a.startswith("-")}
    stubs = spec.get("stubs", {}).get("names", [])

    def stubbed(module):
        return any(fnmatch.fnmatchcase(module, pattern) for pattern in stubs)

    problems = []
    for argv in ops.get("build", []):
        if argv[:1] == ["git"] and "checkout" in argv:
            dest, commit = argv[argv.index("-C") + 1], argv[-1]
            if sides.get(dest) != commit:
                problems.append(f"[ops] checks out {dest} at {commit}; [[sources.side]] has {sides.get(dest)}")
        elif "pip" in argv and "install" in argv:
            args = argv[argv.index("install") + 1:]
            for i, arg in enumerate(args):
                if i > 0 and args[i - 1] == "-e":
                    if arg.startswith("git+"):
                        url, _, egg = arg[len("git+"):].partition("#egg=")
                        url, _, commit = url.rpartition("@")
                        folder = f"{args[args.index('--src') + 1]}/{egg}" if "--src" in args else egg
                        if sides.get(folder) != commit:
                            problems.append(f"[ops] installs {egg} from {url}@{commit}; [[sources.side]] "
                                            f"{folder} has {sides.get(folder)}")
                    else:
                        folder = arg
                    if folder not in pythonpath:
                        problems.append(f"[ops] installs {folder} -e; it is not on [env] pythonpath")
                elif "==" in arg and not arg.startswith("-"):
                    if _norm(arg) not in step_pins and not stubbed(_name(arg).replace("-", "_")):
                        problems.append(f"[ops] installs {arg}: neither a [env] pip_steps pin nor stubbed")
    for module in ops.get("cuda_ops", []):
        if not stubbed(module):
            problems.append(f"[ops] cuda_ops {module} is not covered by [stubs] names")
    return problems


def _ops(model):
    return tomllib.loads((ROOT / "envs" / model / "model.toml").read_text()).get("ops", {})


@pytest.mark.parametrize("model", PAPER_SPECS)
def test_paper_spec_stands_in_for_everything_the_packs_ops_build_makes(model):
    """The same upstream sources at the same commits, the same editable folders importable, every compiled op
    stubbed (so a call is recorded, not an ImportError): the lane runs what ``env create`` would build."""
    problems = ops_build_differences(_load(model), _ops(model))
    assert not problems, f"{model}: " + "; ".join(problems)


def test_an_ops_build_the_spec_does_not_stand_in_for_is_named():
    """Not vacuous: TopoMLP's devkit at another commit, off sys.path, or flash-attn unstubbed each fail."""
    import copy

    spec = _load("TopoMLP")
    assert ops_build_differences(spec, _ops("TopoMLP")) == []
    moved = copy.deepcopy(spec)
    next(s for s in moved["sources"]["side"] if s["dest"] == "OpenLane-V2")["commit"] = "0" * 40
    assert any("checks out OpenLane-V2 at 4bff0185" in p for p in ops_build_differences(moved, _ops("TopoMLP")))
    off_path = copy.deepcopy(spec)
    off_path["env"]["pythonpath"] = ["mmdetection3d"]
    assert ops_build_differences(off_path, _ops("TopoMLP")) == [
        "[ops] installs OpenLane-V2 -e; it is not on [env] pythonpath"]
    unstubbed = copy.deepcopy(spec)
    unstubbed["stubs"]["names"] = ["mmcv._ext"]
    problems = ops_build_differences(unstubbed, _ops("TopoMLP"))
    assert "[ops] installs flash-attn==0.2.2: neither a [env] pip_steps pin nor stubbed" in problems
    assert "[ops] cuda_ops flash_attn_cuda is not covered by [stubs] names" in problems
    vad = _load("VAD")
    vad["sources"]["side"][0]["commit"] = "1" * 40
    assert any(p.startswith("[ops] installs mmdet3d from https://github.com/open-mmlab/mmdetection3d.git@f1107977")
               for p in ops_build_differences(vad, _ops("VAD")))


PACKS_WITH_ENV = sorted(p.parent.name for p in (ROOT / "envs").glob("*/environment.yml") if p.parent.name != "reference")


@pytest.mark.parametrize("model", PACKS_WITH_ENV)
def test_a_pack_pinning_tensorboard_2_9_pins_a_protobuf_it_can_import_with(model):
    """tensorboard 2.9.0 asks for protobuf>=3.9.2 only (2.9.1 added <3.20), so pip and uv take protobuf 5.29 on
    Python 3.8, whose runtime refuses tensorboard 2.9's generated _pb2 code: ``from torch.utils.tensorboard
    import SummaryWriter`` (mmcv's TensorboardLoggerHook, in mmdet3d's default_runtime.py the configs inherit)
    raises "Descriptors cannot be created directly". Seen in the lane's TopoMLP, PETR and StreamPETR paper venvs
    before the pin, gone with 3.20.3."""
    pins = dict(p.split("==") for p in environment_pip_pins(model))
    if not pins.get("tensorboard", "").startswith("2.9."):
        pytest.skip(f"{model} does not pin tensorboard 2.9")
    protobuf = pins.get("protobuf")
    assert protobuf and int(protobuf.split(".")[0]) < 4 and tuple(map(int, protobuf.split(".")[:2])) <= (3, 20), \
        f"{model}: envs/{model}/environment.yml pins tensorboard=={pins['tensorboard']} but protobuf {protobuf or 'unpinned'}"
