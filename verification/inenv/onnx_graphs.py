"""The tensor part of each real model's forward, as an export hook: ``graph(adapter, inputs, state) -> {name: tensor}``.

Why. The packs' adapters have no ``export_forward`` (docs/backends.md "The export hook"): their forward
returns the upstream detector's decoded results (top-k boxes, Python lists). The lane exports what
precedes the decoding instead: backbone + neck + head, called the way each repo's ``simple_test`` calls
them on the adapter's own ``prepare()`` output, returning every tensor the head returns (the raw
outputs ``get_bboxes`` decodes). Non-tensor inputs (``img_metas``: camera matrices, CAN bus, shapes)
are read at trace time and so are baked into the graph (export.py lists them).

Temporal models take their state explicitly (issue 17's design): ``state is None`` is the
*first-frame* graph (StreamPETR: memory reset, ``prev_exists = 0``; VAD: ``prev_bev = None``, CAN bus
deltas zeroed, as ``forward_test`` does on a new scene); a dict of tensors is the *later-frame* graph
(StreamPETR's five memory tensors, VAD's ``prev_bev``), and the next state comes back under
``outputs["state"]``. Runs in the verification venv (Python 3.11, the model's torch).
"""
import copy

STREAMPETR_MEMORY = ("embedding", "reference_point", "timestamp", "egopose", "velo")


def _model(adapter):
    model = adapter.model
    return getattr(model, "module", model)


def _head_tensors(outs):
    import torch

    return dict((k, v) for k, v in outs.items() if torch.is_tensor(v))


def petr(adapter, inputs, state=None):
    """Petr3D.simple_test up to get_bboxes: extract_feat + pts_bbox_head."""
    model = _model(adapter)
    img = inputs["img"][0].clone()          # extract_img_feat squeezes its input in place
    metas = inputs["img_metas"][0]
    feats = model.extract_feat(img=img, img_metas=metas)
    return _head_tensors(model.pts_bbox_head(feats, metas))


def streampetr(adapter, inputs, state=None):
    """Petr3D (StreamPETR).forward_test/simple_test up to get_bboxes, memory as explicit state."""
    model = _model(adapter)
    head = model.pts_bbox_head
    raw = inputs["data"]
    metas = raw["img_metas"][0]
    data = {}
    for key, value in raw.items():
        if key == "img_metas":
            continue
        data[key] = value[0].clone() if key == "img" else value[0][0].unsqueeze(0)
    data["img_feats"] = model.extract_img_feat(data["img"], 1)
    location = model.prepare_location(metas, **data)
    topk = model.forward_roi_head(location, **data)["topk_indexes"]
    if state is None:
        head.reset_memory()
        data["prev_exists"] = data["img"].new_zeros(1)
    else:
        for name in STREAMPETR_MEMORY:
            setattr(head, "memory_" + name, state[name])
        data["prev_exists"] = data["img"].new_ones(1)
    out = _head_tensors(head(location, metas, topk, **data))
    out["state"] = dict((name, getattr(head, "memory_" + name)) for name in STREAMPETR_MEMORY)
    return out


def _bevformer_metas(inputs, previous_metas):
    """img_metas as forward_test leaves them: CAN bus deltas to the previous frame, zeros on a first frame."""
    metas = copy.deepcopy(inputs["data"]["img_metas"][0])
    can = metas[0]["can_bus"]
    if previous_metas is None:
        can[-1] = 0
        can[:3] = 0
    else:
        prev = previous_metas[0]["can_bus"]
        can[:3] -= prev[:3]
        can[-1] -= prev[-1]
    return metas


def maptr(adapter, inputs, state=None):
    """MapTR.simple_test up to get_bboxes (video_test_mode is off in the lane's config: no prev_bev)."""
    model = _model(adapter)
    metas = _bevformer_metas(inputs, None)
    img = inputs["data"]["img"][0].clone()
    feats = model.extract_feat(img=img, img_metas=metas)
    return _head_tensors(model.pts_bbox_head(feats, None, metas, prev_bev=None))


def vad(adapter, inputs, state=None):
    """VAD.simple_test up to get_bboxes; ``state``: {"prev_bev": tensor, "metas": the previous frame's img_metas}."""
    model = _model(adapter)
    data = inputs["data"]
    metas = _bevformer_metas(inputs, None if state is None else state["metas"])
    img = data["img"][0].clone()
    feats = model.extract_feat(img=img, img_metas=metas)
    outs = model.pts_bbox_head(feats, metas, prev_bev=None if state is None else state["prev_bev"],
                               ego_his_trajs=data["ego_his_trajs"][0], ego_lcf_feat=data["ego_lcf_feat"][0])
    out = _head_tensors(outs)
    bev = out.pop("bev_embed")
    out["state"] = {"prev_bev": bev}
    return out


def topomlp(adapter, inputs, state=None):
    """TopoMLP.forward_test up to its decoding: the repo's own ``simple_forward`` (backbone + neck + lane,
    traffic-element and lane-lane / lane-TE topology heads), every tensor it returns; not temporal.

    forward_test then keeps the lanes with sigmoid(score) > 0 (a data-dependent index) and decodes with
    get_bboxes / get_topology: both stay outside the graph. ``lc_img_metas``/``te_img_metas`` are its non-tensors."""
    model = _model(adapter)
    img = inputs["img"].clone()
    return _head_tensors(model.simple_forward(img, inputs["img_metas"]))


GRAPHS = {"petr": petr, "streampetr": streampetr, "maptr": maptr, "vad": vad, "topomlp": topomlp}
