"""Standalone mode of an adapter: ``python envs/<Model>/demo.py --sample-token T --out pred.json``.

Runs load -> prepare -> forward -> convert for one sample, without the driver, and writes the
standard prediction as JSON. A demo.py calls ``main(Adapter)`` from its ``__main__`` block.
"""
import argparse
import json
import os
import sys
import time

import importlib.util

HERE = os.path.dirname(os.path.abspath(__file__))


def _index():
    """The sibling nuscenes_index module, loaded by path under a private name."""
    spec = importlib.util.spec_from_file_location("_onlinemap_harness_nuscenes_index",
                                                  os.path.join(HERE, "nuscenes_index.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(adapter_cls, argv=None):
    parser = argparse.ArgumentParser(description="Run one nuScenes sample through this model and write its prediction.")
    parser.add_argument("--config", default=None, help="model config (default: the model's default config)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file")
    parser.add_argument("--dataroot", required=True, help="nuScenes dataroot")
    parser.add_argument("--version", default=None, help="v1.0-trainval / v1.0-mini (default: detected)")
    parser.add_argument("--sample-token", required=True, help="the sample to run")
    parser.add_argument("--repo", default=None, help="the model's source checkout")
    parser.add_argument("--device", default="cuda:0", help="cpu or cuda:N")
    parser.add_argument("--out", required=True, help="where to write the prediction JSON")
    args = parser.parse_args(argv)

    index = _index()
    try:
        version = index.detect_version(args.dataroot, args.version)
        samples = {s["token"]: s for s in index.ordered_samples(args.dataroot, version)}
    except index.NotNuScenes as exc:
        sys.stderr.write("error: %s\n" % exc)
        return 3
    sample = samples.get(args.sample_token)
    if sample is None:
        sys.stderr.write("error: sample token %r is not in %s/%s\n" % (args.sample_token, args.dataroot, version))
        return 3
    settings = {"model": getattr(adapter_cls, "name", "?"), "config": args.config, "checkpoint": args.checkpoint,
                "dataroot": os.path.abspath(args.dataroot), "version": version, "device": args.device,
                "repo": args.repo, "options": {}}
    adapter = adapter_cls(settings)
    t0 = time.perf_counter()
    adapter.load()
    t1 = time.perf_counter()
    inputs = adapter.prepare(sample)
    raw = adapter.forward(inputs)
    pred = adapter.convert(raw, sample)
    t2 = time.perf_counter()
    with open(args.out, "w") as fh:
        json.dump(pred, fh, indent=1)
    sys.stderr.write("wrote %s (load %.2f s, sample %.1f ms)\n" % (args.out, t1 - t0, (t2 - t1) * 1000))
    return 0
