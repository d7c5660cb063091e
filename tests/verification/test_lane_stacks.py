"""The lane's stack plumbing: which spec a (model, stack) runs, where its files go, where its entry lands.

The lane itself takes minutes per model (scripts/verify-real-models.sh); these check the parts that
decide what it runs and records, without building a venv.
"""
import json

from verification import lane
from verification import record as rec

ROOT = rec.ROOT


def test_each_stack_lists_only_its_own_spec_files():
    modern, paper = rec.spec_models(ROOT, rec.MODERN), rec.spec_models(ROOT, rec.PAPER)
    assert {"MapTR", "PETR", "StreamPETR", "VAD"} <= set(modern)
    assert {"MapTR", "PETR", "StreamPETR", "TopoMLP", "VAD"} <= set(paper)
    assert not any("." in m for m in modern + paper)
    for model in paper:
        assert lane.spec_of(model, rec.PAPER)["env"]["python"].startswith("3.8")
    for model in modern:
        assert not lane.spec_of(model, rec.MODERN)["env"]["python"].startswith("3.8")


def test_the_two_stacks_of_a_model_never_share_a_venv_or_a_work_folder():
    modern, paper = lane.spec_of("MapTR", rec.MODERN), lane.spec_of("MapTR", rec.PAPER)
    assert lane.venv_dir("MapTR", modern) != lane.venv_dir("MapTR", paper)
    assert "-paper-" in lane.venv_dir("MapTR", paper).name
    assert lane.work_dir(modern) == lane.WORK / "MapTR"          # where the modern lane always worked
    assert lane.checkout_dir(paper) == lane.WORK / "MapTR-paper" / "checkout"


def test_a_paper_record_entry_leaves_the_modern_one_alone(tmp_path):
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"models": {"MapTR": {"status": "passed", "stack": "modern-cpu"}},
                                "stacks": {"paper": {"models": {}, "not_covered": {"MapTR": "not run yet"}}}}))
    rec.update("MapTR", {"status": "passed", "stack": "paper-cpu"}, path=path, stack=rec.PAPER)
    record = json.loads(path.read_text())
    assert record["models"]["MapTR"]["stack"] == "modern-cpu"
    assert record["stacks"]["paper"]["models"]["MapTR"]["stack"] == "paper-cpu"
    assert "MapTR" not in record["stacks"]["paper"]["not_covered"]
    assert rec.stack_record(record, rec.MODERN) is record


def test_a_model_without_a_spec_for_the_stack_is_one_readable_line(capsys):
    assert lane.main(["--stack", "paper", "--no-record", "NoSuchModel"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NoSuchModel" in err[0] and "paper" in err[0] and ".paper.toml" in err[0]


def test_the_paper_entries_vouch_for_the_packs_environment_yml():
    files = rec.verified_files(ROOT, "VAD", rec.PAPER)
    assert "envs/VAD/environment.yml" in files and "verification/models/VAD.paper.toml" in files
    assert "envs/VAD/environment.yml" not in rec.verified_files(ROOT, "VAD", rec.MODERN)
    assert not any("/patches/modern/" in f for f in files)   # the paper stack applies no modern shim


def test_a_stack_whose_python_is_missing_is_skipped_not_recorded(monkeypatch, capsys):
    """--stack all covers each stack where its interpreter exists: no Python 3.8 here means no paper run
    (and no failed entry overwriting a passed one); asked for explicitly, that is a failure."""
    ran = []
    monkeypatch.setattr(lane, "verify", lambda model, stack: ran.append((model, stack)) or {"status": "passed", "seconds": 0})
    monkeypatch.setattr(lane.rec, "update", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recorded")))
    def python_for(version):
        if version.startswith("3.8"):
            raise lane.StageFailed("env", f"Python {version} not found")
        return "/usr/bin/python3"

    monkeypatch.setattr(lane, "python_for", python_for)
    assert lane.main(["--no-record", "VAD"]) == 0
    assert ran == [("VAD", rec.MODERN)]
    assert "VAD [paper]: skipped" in capsys.readouterr().err
    assert lane.main(["--no-record", "--stack", "paper", "VAD"]) == 1
