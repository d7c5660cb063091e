"""The committed verification record (verification/record.json) still vouches for the code in the tree.

The lane (scripts/verify-real-models.sh) runs each model's real upstream code on CPU; it is too slow
for every test run, so its record carries the sha256 of every file it verified. These tests fail
when one of them changed since, naming the command that refreshes the record.
"""
import shutil
from pathlib import Path

import pytest

from verification import record as rec

ROOT = Path(__file__).resolve().parents[2]
RECORD = rec.load()
PACKS = sorted(p.parent.name for p in (ROOT / "envs").glob("*/model.toml") if p.parent.name != "reference")


ENTRIES = sorted((stack, model) for stack in rec.STACKS for model in rec.stack_record(RECORD, stack).get("models", {}))


def _entry(stack, model):
    return rec.stack_record(RECORD, stack)["models"][model]


@pytest.mark.parametrize("stack", sorted(rec.STACKS))
def test_every_model_pack_is_verified_or_says_why_not(stack):
    """Per stack, a pack is covered by the lane (spec + record entry) or listed in that stack's not_covered with a
    reason; and every spec file of the stack has its entry (or a not_covered reason)."""
    part = rec.stack_record(RECORD, stack)
    models, not_covered = part.get("models", {}), part.get("not_covered") or {}
    where = "verification/record.json" + ("" if stack == rec.MODERN else f' ["stacks"]["{stack}"]')
    missing = [m for m in sorted(set(PACKS) | set(rec.spec_models(ROOT, stack)))
               if m not in models and not str(not_covered.get(m) or "").strip()]
    assert not missing, (f"no {stack}-stack verification record entry for {missing}: add "
                         f"{rec.spec_path(ROOT, '<M>', stack).relative_to(ROOT)} and run {rec.RERUN} --stack {stack} <MODEL> "
                         f"(or list the pack under not_covered in {where} with why)")
    for model in models:
        assert rec.spec_path(ROOT, model, stack).is_file(), (stack, model)


@pytest.mark.parametrize("stack,model", ENTRIES)
def test_record_matches_the_files_it_verified(stack, model):
    stale = rec.stale_files(ROOT, model, _entry(stack, model), stack)
    assert not stale, rec.staleness_message(model, stale, stack)


@pytest.mark.parametrize("stack,model", [k for k in ENTRIES if _entry(*k).get("status") == "passed"])
def test_a_passed_entry_passed_every_stage_with_no_stub_call(stack, model):
    entry = _entry(stack, model)
    stages = ("env", "checkout", "data", "checkpoint", "worker", "checks")
    assert all(entry["stages"].get(s, {}).get("passed") for s in stages), entry["stages"]
    assert entry["stub_calls"] == []
    assert entry["checks"] and all(c["passed"] for c in entry["checks"])


def _copy_tree(tmp_path, model, stack=rec.MODERN):
    for rel in rec.verified_files(ROOT, model, stack):
        dest = tmp_path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    return tmp_path


@pytest.mark.parametrize("stack,model", ENTRIES)
def test_changing_one_line_of_the_adapter_makes_the_record_stale(tmp_path, stack, model):
    entry = _entry(stack, model)
    root = _copy_tree(tmp_path, model, stack)
    assert rec.stale_files(root, model, entry, stack) == []
    demo = root / "envs" / model / "demo.py"
    lines = demo.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("return"))
    lines[at] = lines[at].replace("return", "return  ", 1)   # one line, same behaviour: still stale
    demo.write_text("".join(lines))
    stale = rec.stale_files(root, model, entry, stack)
    assert stale == [f"envs/{model}/demo.py"]
    message = rec.staleness_message(model, stale, stack)
    assert f"scripts/verify-real-models.sh --stack {stack} {model}" in message and "envs/" in message


def test_a_new_or_removed_patch_file_makes_the_record_stale(tmp_path):
    model = next(iter(sorted(RECORD["models"])), None)
    if model is None:
        pytest.skip("no record entry yet")
    entry = RECORD["models"][model]
    root = _copy_tree(tmp_path, model)
    extra = root / "envs" / model / "patches" / "modern" / "repo" / "9999-new.patch"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text("--- a/x\n+++ b/x\n")
    assert f"envs/{model}/patches/modern/repo/9999-new.patch" in rec.stale_files(root, model, entry)
    extra.unlink()
    gone = next(rel for rel in entry["files"] if "/patches/" in rel) if any("/patches/" in r for r in entry["files"]) else None
    if gone:
        (root / gone).unlink()
        assert gone in rec.stale_files(root, model, entry)


def test_a_patch_series_the_lane_does_not_apply_leaves_the_record_fresh(tmp_path):
    """The GPU variant's op-source patches (e.g. patches/modern-cuda/) are not run by the CPU lane, so
    the record does not vouch for them and adding one does not make it stale."""
    model = next(iter(sorted(RECORD["models"])), None)
    if model is None:
        pytest.skip("no record entry yet")
    entry = RECORD["models"][model]
    root = _copy_tree(tmp_path, model)
    assert "modern-cuda" not in rec.applied_series(root, model)
    extra = root / "envs" / model / "patches" / "modern-cuda" / "repo" / "0001-op.patch"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text("--- a/x\n+++ b/x\n")
    assert rec.stale_files(root, model, entry) == []


@pytest.mark.parametrize("stack,model", [k for k in ENTRIES if k[0] == rec.PAPER])
def test_a_paper_entry_is_stale_when_the_packs_environment_yml_changed(tmp_path, stack, model):
    """The paper stack's pins are the pack's environment.yml's: a pin changed there needs the lane rerun."""
    entry = _entry(stack, model)
    root = _copy_tree(tmp_path, model, stack)
    yml = root / "envs" / model / "environment.yml"
    yml.write_text(yml.read_text() + "# one more line\n")
    assert rec.stale_files(root, model, entry, stack) == [f"envs/{model}/environment.yml"]
def _spec_has_onnx(model):
    import tomllib

    spec = ROOT / "verification" / "models" / f"{model}.toml"
    return spec.is_file() and bool(tomllib.loads(spec.read_text()).get("onnx", {}).get("graph"))


@pytest.mark.parametrize("model", sorted(m for m in RECORD["models"] if _spec_has_onnx(m)))
def test_the_record_says_whether_onnx_export_and_onnxruntime_passed_and_if_not_why(model):
    """Issue 17: per model, the ONNX outcome on CPU: passed with its differences, or exactly what stopped it."""
    onnx = RECORD["models"][model].get("onnx")
    assert onnx, f"{model}: no onnx outcome in its record entry; rerun {rec.rerun_command(model)}"
    assert onnx["status"] in ("passed", "failed", "not_exportable"), onnx
    assert isinstance(onnx.get("seconds"), (int, float)), onnx
    if onnx.get("graphs") and onnx["graphs"][0].get("tensors"):   # it got as far as comparing: say with what
        assert onnx.get("torch") and onnx.get("onnxruntime") and onnx.get("exporter"), onnx
    if onnx["status"] == "passed":
        assert onnx.get("exporter") and onnx.get("opset") and onnx.get("max_abs") is not None, onnx
        assert all(g.get("status") == "passed" for g in onnx.get("graphs") or []), onnx
    else:
        reason = str(onnx.get("reason") or "")
        assert onnx.get("stage") and reason.strip() and "\n" not in reason, onnx
