"""Samples of a nuScenes dataroot in driving order, from the JSON tables alone (no devkit).

Used by the driver to pick and check sample tokens before it starts a model process, and by the
adapters' standalone mode. Reads only scene.json and sample.json, so it is fast even on
v1.0-trainval and runs under any Python 3.7+ without nuscenes-devkit.
"""
import json
import os

VERSIONS = ("v1.0-trainval", "v1.0-mini", "v1.0-test")
REQUIRED_TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor",
                   "ego_pose", "log", "scene", "sample", "sample_data", "sample_annotation", "map")


class NotNuScenes(Exception):
    """The dataroot is missing or does not have the nuScenes layout."""


def detect_version(dataroot, version=None):
    """Return the version folder to use: ``version`` if given, else the first of VERSIONS present."""
    if not os.path.isdir(dataroot):
        raise NotNuScenes("dataroot %s does not exist" % dataroot)
    if version:
        if not os.path.isfile(os.path.join(dataroot, version, "sample.json")):
            raise NotNuScenes("%s has no %s/sample.json" % (dataroot, version))
        return version
    for candidate in VERSIONS:
        if os.path.isfile(os.path.join(dataroot, candidate, "sample.json")):
            return candidate
    raise NotNuScenes("%s is not a nuScenes dataroot: none of %s/sample.json found"
                      % (dataroot, ", ".join(VERSIONS)))


def missing_tables(dataroot, version):
    return [t for t in REQUIRED_TABLES if not os.path.isfile(os.path.join(dataroot, version, t + ".json"))]


def _table(dataroot, version, name):
    path = os.path.join(dataroot, version, name + ".json")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise NotNuScenes("cannot read %s: %s" % (path, exc))


def ordered_samples(dataroot, version):
    """List of dicts {token, scene_token, scene_name, index_in_scene, timestamp}, scene by scene."""
    scenes = _table(dataroot, version, "scene")
    samples = {s["token"]: s for s in _table(dataroot, version, "sample")}
    out = []
    for scene in sorted(scenes, key=lambda s: s["name"]):
        token = scene["first_sample_token"]
        index = 0
        while token:
            rec = samples.get(token)
            if rec is None:
                raise NotNuScenes("%s: scene %s links to sample %s that sample.json lacks"
                                  % (version, scene["name"], token))
            out.append({"token": token, "scene_token": scene["token"], "scene_name": scene["name"],
                        "index_in_scene": index, "timestamp": rec["timestamp"]})
            token = rec["next"]
            index += 1
            if index > 100000:
                raise NotNuScenes("%s: scene %s has a cycle in its sample chain" % (version, scene["name"]))
    return out
