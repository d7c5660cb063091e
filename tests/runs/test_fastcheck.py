"""The msgspec fast path for prediction lines is never more permissive than the schema.

"fast accepts => the schema accepts" is checked on mutations of every field of a prediction that
uses every part the fast path knows (detections with attribute and trajectories, map elements):
each value replaced by values of other types and by boundary numbers, each key removed, unknown
keys added, each list emptied and lengthened. What the fast path rejects falls back to the
schema, so rejecting too much only costs speed; accepting too much would let a bad run pass.
"""
from __future__ import annotations

import copy
import json

import pytest

from onlinemap.evaluation.predictions import validate_prediction
from onlinemap.runs.fastcheck import fast_token
from onlinemap.runs.summary import PredictionCheck

pytest.importorskip("msgspec")


def base() -> dict:
    det = {"label": "car", "score": 0.5, "center": [1.0, 2.0, 0.5], "size": [1.9, 4.6, 1.7], "yaw": 0.1,
           "velocity": [0.5, None], "frame": "global"}
    det2 = dict(det, label="pedestrian", attribute="pedestrian.moving", frame="ego",
                trajectories={"modes": [[[0.0, 1.0], [0.5, 2.0]]], "dt": 0.5, "scores": [1.0]})
    elem = {"label": "divider", "score": 1, "points": [[0.0, 0.0], [1.5, -2.0]], "frame": "ego"}
    return {"sample_token": "a" * 32, "model": "reference", "detections_3d": [det, det2], "map_elements": [elem]}


REPLACEMENTS = [None, True, False, 0, -1, 1, 0.0, -0.0001, 1.0001, 7.0001, -7.0001, 1e300, "x", "", [], [1.0],
                [1.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], {}, {"a": 1}, "car", "ego", "global", "z" * 65,
                "a b", "centerline", [[0.0, 0.0]], [None, None]]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _parent(doc, path):
    node = doc
    for p in path[:-1]:
        node = node[p]
    return node


def mutations():
    doc = base()
    for path in _paths(doc):
        if not path:
            continue
        for value in REPLACEMENTS:
            m = copy.deepcopy(doc)
            _parent(m, path)[path[-1]] = copy.deepcopy(value)
            yield m
        m = copy.deepcopy(doc)
        parent = _parent(m, path)
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
        yield m
        m = copy.deepcopy(doc)
        node = _parent(m, path + (None,))
        if isinstance(node, dict):
            node["unknown"] = 1
            yield m
        elif isinstance(node, list):
            node.append(copy.deepcopy(node[0]) if node else 1.0)
            yield m
            node.clear()
            yield m
    for key in ("topology", "plan", "extra", "unknown"):
        yield dict(copy.deepcopy(doc), **{key: {}})


def test_the_fast_path_accepts_a_valid_prediction():
    assert validate_prediction(base()) == []
    assert fast_token(json.dumps(base()).encode()) == "a" * 32


def test_fast_accepts_only_what_the_schema_accepts():
    accepted = rejected = 0
    for m in mutations():
        line = json.dumps(m).encode()
        if fast_token(line) is not None:
            accepted += 1
            assert validate_prediction(m) == [], m
        else:
            rejected += 1
    assert accepted > 50 and rejected > 300     # both sides of the fence were exercised


def test_the_check_gives_the_same_verdicts_from_lines_as_from_dicts():
    lines = [json.dumps(m).encode() for m in mutations()] + [b"not json", b"[1, 2]"]
    fast, slow = PredictionCheck(), PredictionCheck()
    for line in lines:
        fast.feed_line(line)
        try:
            slow.feed(json.loads(line))
        except ValueError:
            pass
    assert (fast.valid, fast.invalid, fast.seen) == (slow.valid, slow.invalid, slow.seen)
    assert fast.invalid > 0 and fast.first_error == slow.first_error
