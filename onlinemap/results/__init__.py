"""Result files: one directory per run under ONLINEMAP_HOME/results, read by CLI, notebook and cron.

This subpackage shares its name with the API function ``om.results()``. Importing it (any run
does) makes Python set ``onlinemap.results`` to this module, which would shadow the lazy API
function. So the module is callable: ``om.results(...)`` forwards to ``onlinemap.api.results``
whichever of the two ``onlinemap.results`` happens to be.
"""
import sys as _sys
import types as _types


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        from onlinemap import api

        return api.results(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
