"""Code that runs inside model envs must parse as Python 3.7 and import only the standard library
at module level (the envs are Python 3.7/3.8 with only their own packages)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = sorted((REPO / "onlinemap" / "harness").glob("*.py"))
ADAPTERS = sorted((REPO / "envs").glob("*/demo.py"))
# envs/_shared/: stdlib-only helpers the adapters import by path (no model.toml, so not a model folder).
SHARED = sorted((REPO / "envs" / "_shared").glob("*.py"))
STDLIB = set(sys.stdlib_module_names)


def top_level_imports(tree: ast.Module) -> set[str]:
    """Modules imported at module level (not inside functions or classes' methods)."""
    names = set()
    for node in tree.body:
        stmts = [node]
        if isinstance(node, (ast.If, ast.Try)):
            stmts = list(ast.walk(node))
        for stmt in stmts:
            if isinstance(stmt, ast.Import):
                names.update(a.name.split(".")[0] for a in stmt.names)
            elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
                names.add(stmt.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", HARNESS + ADAPTERS + SHARED, ids=lambda p: str(p.relative_to(REPO)))
def test_parses_as_python_37(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 7))


@pytest.mark.parametrize("path", HARNESS + ADAPTERS + SHARED, ids=lambda p: str(p.relative_to(REPO)))
def test_module_level_imports_are_stdlib_only(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    foreign = sorted(m for m in top_level_imports(tree) if m not in STDLIB and m != "__future__")
    assert not foreign, f"{path.name} imports {foreign} at module level; import them inside functions"


def test_harness_never_imports_the_driver():
    for path in HARNESS:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("onlinemap"), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("onlinemap") for a in node.names), path


def test_adapters_and_shared_never_import_the_driver():
    for path in ADAPTERS + SHARED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n.split(".")[0] == "onlinemap" for n in names), path


def test_every_model_folder_has_an_adapter():
    assert ADAPTERS, "no envs/*/demo.py found"
    assert SHARED, "no envs/_shared/*.py found"
    for folder in (REPO / "envs").iterdir():
        if (folder / "model.toml").exists():
            assert (folder / "demo.py").exists(), folder
