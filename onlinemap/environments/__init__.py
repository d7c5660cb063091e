"""Model environments: where each model's env lives, whether it is ready, how to create and launch it.

``resolve_environment``/``EnvHandle`` (base.py) are what the runner uses; ``check_gpu_arch`` (guard.py)
refuses GPUs a locked stack cannot run on; ``create_env``/``lock_env``/``list_envs``/``remove_envs``
back ``onlinemap env``. The creation machinery is imported on first use (module ``__getattr__``), so
importing this package stays cheap.
"""
from onlinemap.environments.base import EnvHandle, env_prefix, lock_hash, read_env_info, resolve_environment
from onlinemap.environments.guard import check_gpu_arch

__all__ = ["EnvHandle", "env_prefix", "lock_hash", "read_env_info", "resolve_environment", "check_gpu_arch",
           "create_env", "lock_env", "list_envs", "remove_envs", "find_manager"]

_LAZY = {"create_env": "onlinemap.environments.create", "lock_env": "onlinemap.environments.lock",
         "list_envs": "onlinemap.environments.manage", "remove_envs": "onlinemap.environments.manage",
         "find_manager": "onlinemap.environments.managers"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
