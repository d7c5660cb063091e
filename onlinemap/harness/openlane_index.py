"""Frames of an OpenLane-V2 collection in driving order, from the collection pickle alone (no devkit, no numpy).

OpenLane-V2 (subset A, devkit v1.x layout) has no nuScenes tables: ``<dataroot>/<split>/<segment>/
{image,info}/...`` and, made by the devkit's ``preprocess.py``, one pickle per collection
(``data_dict_subset_A_val.pkl``): ``{(split, segment_id, timestamp): frame meta}``. The model's
dataset iterates that pickle's keys (TopoMLP: ``Collection(...).keys``), so they are the samples.

Used by the driver (sample selection before launch), the adapters' standalone mode and readiness.
The frame meta holds numpy arrays; they are read here as inert placeholders, so this module needs
only the standard library (Python 3.7+). Sample fields: ``token`` (the frame id, as TopoMLP's
adapter makes it from the identifier), ``identifier`` ([split, segment_id, timestamp]),
``scene_token``/``scene_name`` (the segment), ``index_in_scene`` and ``timestamp`` (the frame's
timestamp in ns, OpenLane-V2's unit). Segments are sorted by id, frames by timestamp.
"""
import os
import pickle
import re

DEFAULT_COLLECTION = "data_dict_subset_A_val"
COLLECTIONS = ("data_dict_subset_A_val", "data_dict_subset_A_train", "data_dict_subset_A_test")
_TOKEN_BAD = re.compile(r"[^0-9a-zA-Z_-]")


class NotOpenLane(Exception):
    """The dataroot is missing or has no readable OpenLane-V2 collection pickle."""


def frame_token(identifier):
    """``(split, segment_id, timestamp)`` -> the sample token (envs/TopoMLP/demo.py ``frame_id``)."""
    return "_".join(_TOKEN_BAD.sub("-", str(part)) for part in identifier)[:64]


def collection_path(dataroot, collection, meta_root=None):
    return os.path.join(meta_root or dataroot, collection + ".pkl")


def detect_collection(dataroot, collection=None, meta_root=None):
    """Return the collection to use: ``collection`` if given, else the first of COLLECTIONS present."""
    if not os.path.isdir(dataroot):
        raise NotOpenLane("dataroot %s does not exist" % dataroot)
    if collection:
        if not os.path.isfile(collection_path(dataroot, collection, meta_root)):
            raise NotOpenLane("%s has no %s" % (meta_root or dataroot, collection + ".pkl"))
        return collection
    for candidate in COLLECTIONS:
        if os.path.isfile(collection_path(dataroot, candidate, meta_root)):
            return candidate
    raise NotOpenLane("%s is not an OpenLane-V2 root: none of %s found (made by the devkit's preprocess.py)"
                      % (meta_root or dataroot, ", ".join(c + ".pkl" for c in COLLECTIONS)))


class _Inert(object):
    """Stands for any non-builtin object in the pickle (numpy arrays and dtypes): accepts and ignores state."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()


def _inert_factory(*args, **kwargs):
    return _Inert()


class _KeysUnpickler(pickle.Unpickler):
    """Loads the collection with every class outside the builtins replaced by an inert placeholder."""

    def find_class(self, module, name):
        if module in ("builtins", "__builtin__", "copyreg", "collections"):
            return super(_KeysUnpickler, self).find_class(module, name)
        return _inert_factory if name.startswith("_reconstruct") or name == "scalar" else _Inert


def read_identifiers(path):
    """The collection's keys, in the pickle's order."""
    try:
        with open(path, "rb") as fh:
            meta = _KeysUnpickler(fh).load()
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError, TypeError, IndexError) as exc:
        raise NotOpenLane("cannot read %s: %s" % (path, exc))
    if not isinstance(meta, dict):
        raise NotOpenLane("%s is not an OpenLane-V2 collection (a dict of frames)" % path)
    keys = []
    for key in meta:
        if not (isinstance(key, tuple) and len(key) == 3):
            raise NotOpenLane("%s: key %r is not (split, segment_id, timestamp)" % (path, key))
        keys.append(tuple(str(part) for part in key))
    return keys


def _timestamp(value):
    try:
        return int(value)
    except ValueError:
        return value


def ordered_samples(dataroot, collection, meta_root=None):
    """List of sample dicts, segment by segment (sorted), frames by timestamp."""
    keys = read_identifiers(collection_path(dataroot, collection, meta_root))
    by_segment = {}
    for split, segment, ts in keys:
        by_segment.setdefault(segment, []).append((split, segment, ts))
    out = []
    for segment in sorted(by_segment):
        frames = sorted(by_segment[segment], key=lambda k: (_timestamp(k[2]) if k[2].isdigit() else 0, k[2]))
        for index, identifier in enumerate(frames):
            out.append({"token": frame_token(identifier), "identifier": list(identifier), "scene_token": segment,
                        "scene_name": segment, "index_in_scene": index, "timestamp": _timestamp(identifier[2])})
    tokens = [s["token"] for s in out]
    if len(set(tokens)) != len(tokens):
        raise NotOpenLane("%s: two frames map to the same token" % collection)
    return out
