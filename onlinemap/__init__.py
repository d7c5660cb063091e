"""onlinemap: run, benchmark and compare nuScenes online-mapping models, each in its own locked env.

``import onlinemap as om`` costs nothing: the API functions are loaded on first use (PEP 562
module ``__getattr__``), so the CLI, cron and notebooks start fast and nothing probes hardware
at import time.
"""
__version__ = "0.1.0"

__all__ = ["models", "test", "bench", "results", "evaluate", "compare", "report", "viz", "__version__"]

_API = {"models", "test", "bench", "results", "model_status", "evaluate", "compare", "report", "viz"}


def __getattr__(name):
    if name in _API:
        from onlinemap import api

        return getattr(api, name)
    raise AttributeError(f"module 'onlinemap' has no attribute {name!r}")
