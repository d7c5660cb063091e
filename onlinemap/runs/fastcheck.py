"""A fast path for checking prediction lines as they arrive: parse and check in one C pass (msgspec).

Why: the driver checks every line of ``predictions.jsonl`` while the model runs. ``json.loads``
plus the compiled schema check (fastjsonschema) cost about 0.45 ms of driver CPU for a 7.5 KB
prediction here (issue 16's driver budget is 0.1 ms per sample); msgspec decodes the bytes
straight into typed structs and checks the same constraints while it parses.

It is only a fast path, never the authority: the structs below restate the common part of
``schemas/prediction.schema.json`` (detections and map elements) and are at most as permissive
(every constraint of those parts is here; a field the schema allows but the structs do not know,
e.g. ``topology``, ``plan`` or ``extra``, is rejected). Whatever it rejects goes to
``json.loads`` + :func:`onlinemap.evaluation.predictions.validate_prediction`, which decides and
words the errors. ``tests/runs/test_fastcheck.py`` checks "fast accepts => schema accepts" on
mutations of every field. Without msgspec installed, :func:`fast_token` returns None always.
(No ``from __future__ import annotations``: msgspec reads these annotations at run time.)
"""
import functools
from typing import Annotated, List, Literal, Optional, Union

__all__ = ["fast_token"]


@functools.lru_cache(maxsize=1)
def _decoder():
    try:
        import msgspec
    except ImportError:
        return None
    Meta, UNSET, Unset = msgspec.Meta, msgspec.UNSET, msgspec.UnsetType
    Score = Annotated[float, Meta(ge=0, le=1)]
    Positive = Annotated[float, Meta(gt=0)]

    # Fixed-length arrays as array-like structs, and every struct untracked by the cyclic GC: the
    # same checks (exact length, element types), but a 7.3 KB prediction then allocates ~12 GC-tracked
    # objects (its lists) instead of ~300 (lists of tuples), so decoding no longer sets off GC
    # passes: ~120 us with lists, ~60 with tuples, ~45 now (issue 16's 0.1 ms driver budget).
    class Vec2(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
        x: float
        y: float

    class Vec3(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
        x: float
        y: float
        z: float

    class Size(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
        w: Positive
        l: Positive    # noqa: E741 - the schema's order: width, length, height
        h: Positive

    class Velocity(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
        vx: Optional[float]
        vy: Optional[float]

    class Trajectories(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        modes: Annotated[List[Annotated[List[Vec2], Meta(min_length=1)]], Meta(min_length=1)]
        dt: Annotated[float, Meta(gt=0)]
        scores: Union[Optional[List[float]], Unset] = UNSET

    class Detection(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        label: Literal["car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle",
                       "bicycle", "traffic_cone", "barrier"]
        score: Score
        center: Vec3
        size: Size
        yaw: Annotated[float, Meta(ge=-7, le=7)]
        velocity: Velocity
        frame: Literal["global", "ego"]
        attribute: Union[Optional[str], Unset] = UNSET
        trajectories: Union[Trajectories, Unset] = UNSET     # an object when present, never null

    class MapElement(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        label: Literal["divider", "ped_crossing", "boundary", "centerline"]
        score: Score
        points: Annotated[List[Vec2], Meta(min_length=2)]
        frame: Literal["ego"]

    class Prediction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        sample_token: Annotated[str, Meta(pattern="^[0-9a-zA-Z_-]{1,64}$")]
        model: Annotated[str, Meta(min_length=1)]
        detections_3d: Union[List[Detection], Unset] = UNSET
        map_elements: Union[List[MapElement], Unset] = UNSET

    return msgspec.json.Decoder(Prediction), (msgspec.ValidationError, msgspec.DecodeError)


def fast_token(line: bytes) -> Optional[str]:
    """The sample token of a prediction line that certainly follows the schema; None: decide the slow way."""
    dec = _decoder()
    if dec is None:
        return None
    decoder, errors = dec
    try:
        return decoder.decode(line).sample_token
    except errors:
        return None
