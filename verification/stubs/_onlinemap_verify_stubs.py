"""Stand-ins for the compiled ops that cannot be built on a CPU-only machine, which RECORD every call.

Why. The upstream repos import their CUDA extensions at module level (``mmcv._ext``, mmdet3d 0.17's
``*_ext``/``iou3d_cuda``, ``bev_pool_ext``, ``flash_attn``, MapTR's ``GeometricKernelAttention``),
even on code paths that never call them on the CPU. These stubs let those modules import; calling
anything in them appends one JSON line to ``$ONLINEMAP_VERIFY_STUB_LOG`` and raises, so a run that
reached a compiled op fails and the lane's record names the op.

How it is installed. The lane's venv has a ``.pth`` file that puts this folder on ``sys.path`` and
imports this module; it appends a finder at the END of ``sys.meta_path``, so a real, importable
module of the same name always wins. The stubbed names come from ``$ONLINEMAP_VERIFY_STUBS``
(comma-separated shell-style patterns: ``flash_attn*``, ``mmdet3d.ops.*_ext``) — the lane sets it per model.
Imports of stubs are logged too (``"kind": "import"``), calls as ``"kind": "call"``.
"""
import fnmatch
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time
import types

LOG_ENV = "ONLINEMAP_VERIFY_STUB_LOG"
NAMES_ENV = "ONLINEMAP_VERIFY_STUBS"


class StubCalled(RuntimeError):
    """A compiled op was called on a path the lane runs: the verification fails at that op."""


def _log(record):
    path = os.environ.get(LOG_ENV)
    record = dict(record, pid=os.getpid(), t=time.time())
    if not path:
        sys.stderr.write("onlinemap verify stub: %s\n" % json.dumps(record))
        return
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


class _StubAttr(object):
    """Any attribute of a stub module: callable (records, then raises), subscriptable, nestable."""

    def __init__(self, qualname):
        self._qualname = qualname

    def __call__(self, *args, **kwargs):
        _log({"kind": "call", "name": self._qualname})
        raise StubCalled("%s is a compiled op, stubbed on this CPU-only verification env: this path needs it"
                         % self._qualname)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubAttr(self._qualname + "." + name)

    def __mro_entries__(self, bases):
        # ``class X(stub.SomeOpFunction)``: subclass a plain object; calling X still fails when it reaches us
        return (_StubBase,)

    def __repr__(self):
        return "<verification stub %s>" % self._qualname


class _StubBase(object):
    def __init__(self, *args, **kwargs):
        _log({"kind": "call", "name": type(self).__module__ + "." + type(self).__name__})
        raise StubCalled("%s.%s subclasses a stubbed compiled op" % (type(self).__module__, type(self).__name__))

    @classmethod
    def apply(cls, *args, **kwargs):
        _log({"kind": "call", "name": cls.__module__ + "." + cls.__name__ + ".apply"})
        raise StubCalled("%s.%s.apply reached a stubbed compiled op" % (cls.__module__, cls.__name__))


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubAttr(self.__name__ + "." + name)


def _patterns():
    return [p.strip() for p in os.environ.get(NAMES_ENV, "").split(",") if p.strip()]


def _matches(fullname):
    return any(fnmatch.fnmatchcase(fullname, pattern) for pattern in _patterns())


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []  # a package: ``from stub import sub`` and ``import stub.sub`` work
        return module

    def exec_module(self, module):
        module.__file__ = "<onlinemap verification stub>"
        _log({"kind": "import", "name": module.__name__})


class StubFinder(importlib.abc.MetaPathFinder):
    """Serves the names in $ONLINEMAP_VERIFY_STUBS that nothing else on sys.meta_path could import."""

    def find_spec(self, fullname, path=None, target=None):
        if not _matches(fullname):
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)


def install():
    if not any(isinstance(f, StubFinder) for f in sys.meta_path):
        sys.meta_path.append(StubFinder())


install()
