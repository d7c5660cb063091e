"""Import helpers for the upstream oracles: load single upstream modules without their packages'
``__init__`` (which pull in the whole mmdet3d plugin), and stand in for imports those modules make
but the oracle never calls. Every stand-in raises when called, so a result can never come from one."""
import ast
import importlib.util
import os
import sys
import types


class NotAvailable(RuntimeError):
    pass


def _raiser(name):
    def call(*args, **kwargs):
        raise NotAvailable("oracle stub %s was called" % name)
    return call


def stub_module(name, **attrs):
    """Register an empty module ``name`` (and its parents) whose listed attributes are given."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            mod = types.ModuleType(sub)
            mod.__path__ = []
            sys.modules[sub] = mod
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], mod)
    mod = sys.modules[name]
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


def raising(name):
    return _raiser(name)


def package_path(root, dotted):
    """Make ``dotted`` importable from the directory tree under ``root`` without running any __init__."""
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        mod = sys.modules.get(sub)
        path = os.path.join(root, *parts[:i])
        if mod is None:
            mod = types.ModuleType(sub)
            sys.modules[sub] = mod
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], mod)
        mod.__path__ = [path]


def load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def class_literal(path, class_name, attr):
    """A literal class attribute (e.g. mmdet3d's NuScenesDataset.NameMapping) read from source."""
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == attr for t in stmt.targets):
                    return ast.literal_eval(stmt.value)
    raise KeyError("%s.%s not in %s" % (class_name, attr, path))
