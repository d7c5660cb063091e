"""Reading the raw outputs tap_adapter.py saved (one ``.pt`` per sample), on either stack.

Why. torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the tapped objects
(mmdet3d box classes); torch 1.9 (the paper stack) has no ``weights_only`` argument at all.
"""
import glob
import inspect
import os

import torch


def load_taps(tap_dir):
    kwargs = {"weights_only": False} if "weights_only" in inspect.signature(torch.load).parameters else {}
    return [torch.load(p, **kwargs) for p in sorted(glob.glob(os.path.join(tap_dir, "*.pt")))]
