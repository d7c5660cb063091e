"""model.toml validation: every error names the file, the field and what was expected."""
from __future__ import annotations

from pathlib import Path

import pytest

from onlinemap.errors import EXIT_BAD_INPUT, SpecError, UnknownModelError
from onlinemap.registry import find_model, load_model_spec
from onlinemap.registry.discover import resolve_model_names

REPO = Path(__file__).resolve().parents[2]
GOOD = """schema_version = 1
name = "Toy"
task = "detection"
outputs = ["detections_3d"]
env_kind = "conda"
[repo]
url = "https://github.com/example/toy"
commit = "0123456789abcdef0123456789abcdef01234567"
[config]
default = "configs/toy.py"
[checkpoint]
file = "toy.pth"
url = "https://example.org/toy.pth"
sha256 = ""
"""


def write_pack(root: Path, text: str, name: str = "Toy") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.toml").write_text(text)
    (folder / "demo.py").write_text("class Adapter: pass\n")
    return folder


def test_a_valid_spec_loads(tmp_path):
    spec = load_model_spec(write_pack(tmp_path, GOOD))
    assert spec.name == "Toy" and spec.repo.commit.startswith("0123") and spec.checkpoint.file == "toy.pth"
    assert spec.adapter_path.name == "demo.py"


@pytest.mark.parametrize("edit, field, expected", [
    (lambda s: s.replace('task = "detection"', 'task = "segmentation"'), "task", "one of"),
    (lambda s: s.replace('env_kind = "conda"', 'env_kind = "docker"'), "env_kind", "one of"),
    (lambda s: s.replace('name = "Toy"', 'name = "Other"'), "name", "folder name"),
    (lambda s: s.replace("0123456789abcdef0123456789abcdef01234567", "main"), "repo.commit", "40-character"),
    (lambda s: s.replace('url = "https://github.com/example/toy"', 'url = "git@github.com:x/y"'), "repo.url", "https://"),
    (lambda s: s.replace('sha256 = ""', 'sha256 = "abc"'), "checkpoint.sha256", "64 lowercase hex"),
    (lambda s: s.replace('outputs = ["detections_3d"]', 'outputs = ["boxes"]'), "outputs", "drawn from"),
    (lambda s: s.replace("schema_version = 1", 'schema_version = "1"'), "schema_version", "of type int"),
    (lambda s: "colour = 3\n" + s, "colour", "allowed top-level"),
    (lambda s: s.replace("[checkpoint]", "[checkpoint]\nmd5 = \"x\""), "checkpoint.md5", "allowed in [checkpoint]"),
])
def test_bad_fields_name_file_field_and_expectation(tmp_path, edit, field, expected):
    folder = write_pack(tmp_path, edit(GOOD))
    with pytest.raises(SpecError) as err:
        load_model_spec(folder)
    text = err.value.one_line()
    assert str(folder / "model.toml") in text and field in text and expected in text
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_missing_required_field(tmp_path):
    with pytest.raises(SpecError, match="missing required field 'task'"):
        load_model_spec(write_pack(tmp_path, GOOD.replace('task = "detection"\n', "")))


def test_conda_model_needs_repo_config_checkpoint(tmp_path):
    text = GOOD.split("[repo]")[0]
    with pytest.raises(SpecError, match=r"missing required table \[repo\]"):
        load_model_spec(write_pack(tmp_path, text))


def test_toml_syntax_error_is_one_readable_line(tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        load_model_spec(write_pack(tmp_path, GOOD + "\nname = = 3\n"))


def test_newer_schema_version_asks_for_an_upgrade(tmp_path):
    with pytest.raises(SpecError, match="newer than this onlinemap"):
        load_model_spec(write_pack(tmp_path, GOOD.replace("schema_version = 1", "schema_version = 9")))


def test_missing_demo_py(tmp_path):
    folder = write_pack(tmp_path, GOOD)
    (folder / "demo.py").unlink()
    with pytest.raises(SpecError, match="demo.py: missing"):
        load_model_spec(folder)


def test_every_committed_pack_is_valid():
    folders = [p for p in (REPO / "envs").iterdir() if (p / "model.toml").exists() and (p / "demo.py").exists()]
    assert any(f.name == "reference" for f in folders)
    for folder in folders:
        load_model_spec(folder)


def test_unknown_model_lists_known_ones_and_suggests(om_home):
    with pytest.raises(UnknownModelError) as err:
        find_model("refrence")
    text = err.value.one_line()
    assert "reference" in text and "did you mean reference" in text and err.value.exit_code == 2


def test_names_are_case_insensitive_and_all_expands(om_home):
    assert find_model("REFERENCE").name == "reference"
    names = resolve_model_names("all")
    assert "reference" in names and "slowref" in names
    assert resolve_model_names("reference, crashref") == ["reference", "crashref"]
