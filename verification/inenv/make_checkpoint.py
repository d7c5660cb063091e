"""Build a random-initialised checkpoint from a model's real config (run in the verification venv).

Usage: make_checkpoint.py REPO CONFIG OUT.pth [SEED]. The model is built as the repo's
tools/test.py builds it (config -> plugin import -> ``build_model``), with torch's default
initialisation under a fixed seed (no ``init_weights``: that would fetch pretrained backbones), and
saved as ``{"state_dict", "meta"}`` the way mmcv's ``save_checkpoint`` writes one. Prints one JSON
line: tensor count and parameter count.
"""
import importlib
import json
import os
import sys


def main(repo, config, out, seed=0):
    import torch
    from mmcv import Config

    repo = os.path.abspath(repo)
    sys.path.insert(0, repo)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "envs", "_shared"))
    import onlinemap_adapterlib as lib

    cfg = Config.fromfile(config)
    if cfg.get("custom_imports", None):
        from mmcv.utils import import_modules_from_strings
        import_modules_from_strings(**cfg["custom_imports"])
    module = lib.plugin_module_name(cfg, config, repo)
    if module:
        importlib.import_module(module)
    from mmdet3d.models import build_model

    torch.manual_seed(int(seed))
    cfg.model.pretrained = None
    dropped = _drop_pretrained(cfg.model)
    model = build_model(cfg.model, train_cfg=cfg.get("train_cfg"), test_cfg=cfg.get("test_cfg"))
    # the model's own initialisation (heads' prior-probability biases, xavier/normal layers): with
    # torch's defaults alone the decoders saturate and every query lands on the range's corner
    model.init_weights()
    state = model.state_dict()
    torch.save({"state_dict": state, "meta": {"onlinemap_verification": "random init", "seed": int(seed),
                                              "config": os.path.relpath(config, repo)}}, out)
    print(json.dumps({"tensors": len(state), "parameters": int(sum(p.numel() for p in model.parameters())),
                      "pretrained_init_dropped": dropped}))


def _drop_pretrained(node, path="model"):
    """Remove ``init_cfg`` entries that would load pretrained weights (none can be fetched here)."""
    dropped = []
    if isinstance(node, dict):
        init = node.get("init_cfg")
        if isinstance(init, dict) and init.get("type") == "Pretrained":
            node["init_cfg"] = None
            dropped.append(path)
        for key in list(node.keys()):
            dropped += _drop_pretrained(node[key], path + "." + str(key))
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            dropped += _drop_pretrained(item, "%s[%d]" % (path, i))
    return dropped


if __name__ == "__main__":
    main(*sys.argv[1:])
