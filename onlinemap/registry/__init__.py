"""The model registry: one ``envs/<Model>/`` folder per model, described by its ``model.toml``."""
from onlinemap.registry.discover import find_model, iter_model_dirs, load_models
from onlinemap.registry.spec import ModelSpec, load_model_spec

__all__ = ["ModelSpec", "load_model_spec", "find_model", "iter_model_dirs", "load_models"]
