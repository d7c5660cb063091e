"""What the tap reads off a temporal adapter around each sample (StreamPETR memory, VAD prev_bev).

Returns plain data (tensors cloned to the CPU, or None) so the checks can tell a propagated state
from a reset one. A model without temporal state gives None.
"""


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
    if isinstance(prev, dict) and prev.get("prev_bev") is not None:
        out["prev_bev"] = prev["prev_bev"].detach().cpu().clone()
        out["scene_token"] = prev.get("scene_token")
    return out or None
