"""Backends as a measured axis, driver side: exports on disk, and launching export / verify in a model's env.

The in-env halves are ``onlinemap/harness/export.py``, ``backends.py`` and ``verify.py``; this
package finds the env, picks the samples, writes their job files and reads their results. An
export lives in ``ONLINEMAP_HOME/exports/<model>-<hash>-<format>/`` where the hash covers what
makes the artifact valid (adapter source, env lock, checkpoint, options, opset), so a changed
adapter or env is never benchmarked through a stale graph (docs/backends.md).
"""
from onlinemap.backends.exports import (BACKEND_FORMAT, BACKENDS, export_dir_for, export_model, find_export,
                                        check_backend)
from onlinemap.backends.verify import Tolerances, load_tolerances, verify_model

__all__ = ["BACKENDS", "BACKEND_FORMAT", "export_model", "export_dir_for", "find_export", "check_backend",
           "verify_model", "Tolerances", "load_tolerances"]
