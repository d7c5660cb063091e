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


def test_harness_modules_load_their_siblings_through_the_one_loader():
    """One bootstrap (loader.load_sibling), not a private spec-loader per entry script: only loader.py
    builds module specs; every other harness module gets its siblings from it."""
    for path in HARNESS:
        if path.name == "loader.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert not defined & {"_sibling", "load_file", "load_sibling"}, f"{path.name} defines its own loader"
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not attrs & {"spec_from_file_location", "module_from_spec"}, f"{path.name} loads modules by itself"


@pytest.mark.parametrize("name", ["worker", "export", "verify"])
def test_an_entry_script_keeps_its_folder_off_sys_path(name, tmp_path):
    """Run as a script (its folder first on sys.path, as ``python worker.py`` puts it), it takes its folder
    off sys.path, and its siblings live only under private ``_onlinemap_harness_*`` names: a model repo's
    own ``flat`` / ``loader`` / ``events`` modules keep theirs."""
    import subprocess

    script = REPO / "onlinemap" / "harness" / f"{name}.py"
    probe = ("import runpy, sys\n"
             "here = sys.argv[1]\n"
             "sys.path.insert(0, here)\n"
             f"runpy.run_path({str(script)!r})\n"
             "print(sorted(k for k in sys.modules if k.startswith('_onlinemap_harness_')))\n"
             "print([p for p in sys.path if p == here], [m for m in ('flat', 'loader', 'events') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", probe, str(script.parent)], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.splitlines()
    assert "_onlinemap_harness_loader" in out[0]
    assert out[1] == "[] []"
