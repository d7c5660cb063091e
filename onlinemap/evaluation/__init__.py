"""Accuracy evaluation of stored runs: nuScenes detection (devkit), MapTR map AP, VAD planning.

Runs in the driver's environment and reads only result files. Submodules import nuscenes, shapely
and jsonschema inside their functions, so importing this package costs nothing.
"""
from __future__ import annotations

__all__ = ["evaluate_run"]


def __getattr__(name: str):
    if name == "evaluate_run":
        from onlinemap.evaluation.run import evaluate_run

        return evaluate_run
    raise AttributeError(name)
