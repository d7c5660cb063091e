"""Reading what the lane's worker run left: the raw outputs tap_adapter.py saved (one ``.pt`` per sample, on
either stack) and the adapter's predictions.jsonl.

Why. torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the tapped objects
(mmdet3d box classes); torch 1.9 (the paper stack) has no ``weights_only`` argument at all.
"""
import glob
import inspect
import json
import os

import torch


def load_taps(tap_dir):
    kwargs = {"weights_only": False} if "weights_only" in inspect.signature(torch.load).parameters else {}
    return [torch.load(p, **kwargs) for p in sorted(glob.glob(os.path.join(tap_dir, "*.pt")))]


def load_predictions(path):
    """predictions.jsonl as {sample_token: prediction}."""
    preds = {}
    with open(path) as fh:
        for line in fh:
            if line.strip():
                p = json.loads(line)
                preds[p["sample_token"]] = p
    return preds
