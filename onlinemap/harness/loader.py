"""Load a file as a module under a private name, without touching ``sys.path`` order for others.

The harness and the adapters are loaded this way so that a model repo's own top-level modules
(``tools``, ``projects``, ``utils``) keep their names.
"""
import importlib.util
import os
import sys


def load_file(path, name):
    """Import ``path`` as module ``name`` and return it (registered in sys.modules)."""
    path = os.path.abspath(path)
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == path:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load %s" % path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_sibling(name):
    """Load another harness module by file name (``events`` -> harness/events.py)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return load_file(os.path.join(here, name + ".py"), "_onlinemap_harness_" + name)


def load_adapter_class(demo_path):
    """Load ``envs/<Model>/demo.py`` and return its ``Adapter`` class."""
    module = load_file(demo_path, "_onlinemap_adapter_" + os.path.basename(os.path.dirname(os.path.abspath(demo_path))))
    adapter = getattr(module, "Adapter", None)
    if adapter is None:
        raise ImportError("%s defines no Adapter class" % demo_path)
    for method in ("load", "prepare", "forward", "convert"):
        if not callable(getattr(adapter, method, None)):
            raise ImportError("%s: Adapter lacks the %s() method of the harness protocol" % (demo_path, method))
    return adapter
