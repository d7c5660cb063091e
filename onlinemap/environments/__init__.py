"""Model environments: where each model's env lives, whether it is ready, how to launch in it."""
from onlinemap.environments.base import EnvHandle, env_prefix, lock_hash, read_env_info, resolve_environment

__all__ = ["EnvHandle", "env_prefix", "lock_hash", "read_env_info", "resolve_environment"]
