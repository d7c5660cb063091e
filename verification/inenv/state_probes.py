"""What the tap reads off a temporal adapter around each sample (StreamPETR memory, VAD prev_bev).

Returns plain data (tensors cloned to the CPU, or None) so the checks can tell a propagated state
from a reset one. A model without temporal state gives None.
"""


def install(adapter):
    """After load(): record the ``prev_bev`` each BEVFormer-style forward is fed (VAD, MapTR-BEVFormer).

    ``forward_test`` passes ``self.prev_frame_info['prev_bev']`` to ``simple_test`` (reset to None on a new
    scene there, and by the adapter on a gap); the wrapper keeps a copy of what it was given.
    """
    model = getattr(adapter, "model", None)
    inner = getattr(model, "module", model)
    if inner is None or not isinstance(getattr(inner, "prev_frame_info", None), dict):
        return
    original = inner.simple_test

    def simple_test(*args, **kwargs):
        fed = kwargs.get("prev_bev")
        inner._onlinemap_fed_prev_bev = None if fed is None else fed.detach().cpu().clone()
        inner._onlinemap_fed_seen = True
        return original(*args, **kwargs)

    inner.simple_test = simple_test


def probe(adapter, when):
    model = getattr(adapter, "model", None)
    if model is None:
        return None
    inner = getattr(model, "module", model)
    head = getattr(inner, "pts_bbox_head", None)
    out = {}
    memory = getattr(head, "memory_embedding", None)
    if memory is not None and hasattr(memory, "detach"):
        out["memory_embedding"] = memory.detach().cpu().clone()
        out["memory_len"] = int(getattr(head, "memory_len", 0))
        out["topk_proposals"] = int(getattr(head, "topk_proposals", 0))
        ts = getattr(head, "memory_timestamp", None)
        if ts is not None and hasattr(ts, "detach"):
            out["memory_timestamp"] = ts.detach().cpu().clone()
    prev = getattr(inner, "prev_frame_info", None)
    if isinstance(prev, dict):
        if prev.get("prev_bev") is not None:
            out["prev_bev"] = prev["prev_bev"].detach().cpu().clone()
        out["scene_token"] = prev.get("scene_token")
        if when == "after" and getattr(inner, "_onlinemap_fed_seen", False):
            out["fed_prev_bev"] = inner._onlinemap_fed_prev_bev
            out["fed_seen"] = True
    return out or None
