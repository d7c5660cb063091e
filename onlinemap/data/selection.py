"""Which samples a run streams through the model, chosen and checked before any env starts.

Order: the evaluation split's scenes first (``mini_val`` for v1.0-mini, ``val`` for v1.0-trainval),
then the remaining scenes, each scene in driving order, so temporal models see consecutive frames
and results are comparable across runs and models. Explicit ``sample_tokens`` are run in the
order given; an unknown token is refused before launch.

Two sample sources, chosen by the pack's ``[data] needs``: nuScenes (``nuscenes_index``: tokens of
sample.json) and OpenLane-V2 (``openlane_v2`` in needs; ``openlane_index``: the frames of the
collection pickle, token = frame id, with ``identifier`` (split, segment, timestamp); a segment is
a scene). For OpenLane-V2 the "version" is the collection (``data_dict_subset_A_val``).
"""
from __future__ import annotations

from pathlib import Path

import os

from onlinemap import paths
from onlinemap.errors import DatasetError, UsageError
from onlinemap.harness import nuscenes_index, openlane_index

__all__ = ["resolve_dataset", "select_samples", "MINI_VAL_SCENES", "source_of", "default_dataroot_for",
           "OPENLANE_ROOT_ENV"]

OPENLANE_ROOT_ENV = "OPENLANE_V2_ROOT"


def source_of(needs) -> str:
    """The sample source a pack's ``[data] needs`` asks for: "openlane_v2" or "nuscenes"."""
    return "openlane_v2" if "openlane_v2" in tuple(needs or ()) else "nuscenes"


def default_dataroot_for(needs) -> Path:
    """No --dataroot: $NUSCENES_ROOT / the synthetic nuScenes, or $OPENLANE_V2_ROOT / the synthetic OpenLane-V2."""
    if source_of(needs) == "openlane_v2":
        env = os.environ.get(OPENLANE_ROOT_ENV)
        return Path(env).expanduser() if env else paths.data_dir() / "openlane-v2-synth"
    return paths.default_dataroot()

MINI_VAL_SCENES = ("scene-0103", "scene-0916")  # nuscenes-devkit utils/splits.py: mini_val


def resolve_dataset(dataroot: Path, version: str | None = None, needs=("nuscenes",)) -> tuple[Path, str]:
    """Check that ``dataroot`` is a root of the source ``needs`` asks for; return (absolute root, version)."""
    root = Path(dataroot).expanduser().absolute()
    if source_of(needs) == "openlane_v2":
        try:
            return root, openlane_index.detect_collection(str(root), version)
        except openlane_index.NotOpenLane as exc:
            raise DatasetError(str(exc), "pass --dataroot DIR pointing at the OpenLane-V2 folder that holds the "
                                         "collection pickle (or create synthetic data with "
                                         "`onlinemap data synth --openlane DIR`)") from None
    try:
        version = nuscenes_index.detect_version(str(root), version)
    except nuscenes_index.NotNuScenes as exc:
        raise DatasetError(str(exc), "pass --dataroot DIR pointing at a nuScenes root (or create synthetic data "
                                     "with `onlinemap data synth DIR`)") from None
    missing = nuscenes_index.missing_tables(str(root), version)
    if missing:
        raise DatasetError(f"{root}/{version} is incomplete: missing {', '.join(m + '.json' for m in missing)}",
                           "re-extract the nuScenes metadata archive into the dataroot")
    return root, version


def _eval_scene_names(version: str) -> tuple[str, ...]:
    if version == "v1.0-mini":
        return MINI_VAL_SCENES
    if version == "v1.0-trainval":
        from nuscenes.utils.splits import val  # the official validation scenes

        return tuple(val)
    return ()


def select_samples(dataroot: Path, version: str, *, count: int | None, warmup: int,
                   sample_tokens: list[str] | None = None, scenes: list[str] | None = None,
                   needs=("nuscenes",)) -> list[dict]:
    """The samples to stream: ``warmup`` first, then at least ``count`` (all when count is None)."""
    if warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {warmup}")
    if count is not None and count < 1:
        raise UsageError(f"--samples must be >= 1, got {count}")
    try:
        if source_of(needs) == "openlane_v2":
            ordered = openlane_index.ordered_samples(str(dataroot), version)
        else:
            ordered = nuscenes_index.ordered_samples(str(dataroot), version)
    except (nuscenes_index.NotNuScenes, openlane_index.NotOpenLane) as exc:
        raise DatasetError(str(exc), "check the dataroot's index files") from None
    if sample_tokens:
        by_token = {s["token"]: s for s in ordered}
        chosen = []
        for token in sample_tokens:
            if token not in by_token:
                raise DatasetError(f"sample token {token!r} is not in {dataroot}/{version}",
                                   "list valid tokens in sample.json, or drop --sample-token")
            chosen.append(by_token[token])
        # warm-up runs over the first samples again, so every named token is measured
        warm = [dict(s) for s in (chosen * (warmup // max(len(chosen), 1) + 1))[:warmup]]
        return warm + chosen
    if scenes:
        known = {s["scene_name"] for s in ordered}
        unknown = [s for s in scenes if s not in known]
        if unknown:
            raise DatasetError(f"scene {unknown[0]!r} is not in {dataroot}/{version}", "check scene.json for names")
        ordered = [s for s in ordered if s["scene_name"] in set(scenes)]
    else:
        first = set(_eval_scene_names(version))
        ordered = [s for s in ordered if s["scene_name"] in first] + [s for s in ordered if s["scene_name"] not in first]
    need = warmup + (count or 1)
    if len(ordered) < need:
        raise DatasetError(f"{dataroot}/{version} has {len(ordered)} samples, the run needs {need} "
                           f"({warmup} warm-up + {count or 1})",
                           f"use --samples {max(len(ordered) - warmup, 1)} or fewer, --warmup 0, or a larger dataset")
    return ordered if count is None else ordered[:need]
