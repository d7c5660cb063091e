"""Standalone mode of an adapter: ``python envs/<Model>/demo.py --sample-token T --out pred.json``.

Runs load -> prepare -> forward -> convert for one sample, without the driver, and writes the
standard prediction as JSON. A demo.py calls ``main(Adapter)`` from its ``__main__`` block.

The sample comes from the dataroot's own index: nuScenes tables (``nuscenes_index``) or, when the
dataroot is an OpenLane-V2 folder with a collection pickle, that collection's frames
(``openlane_index``: ``--sample-token`` is the frame id, or give ``--version`` = the collection).
"""
import argparse
import json
import os
import sys
import time

import runpy

HERE = os.path.dirname(os.path.abspath(__file__))
# the one bootstrap: loader.py by path (this folder stays off sys.path); it loads every other sibling
loader = runpy.run_path(os.path.join(HERE, "loader.py"))["load_sibling"]("loader")


def _index():
    return loader.load_sibling("nuscenes_index")


def _find_samples(dataroot, version):
    """(version, {token: sample}, options) from nuScenes, else from an OpenLane-V2 collection; errors as ValueError."""
    nusc = _index()
    try:
        version = nusc.detect_version(dataroot, version)
        return version, {s["token"]: s for s in nusc.ordered_samples(dataroot, version)}, {}
    except nusc.NotNuScenes as exc:
        not_nusc = exc
    olv2 = loader.load_sibling("openlane_index")
    try:
        collection = olv2.detect_collection(dataroot, version)
    except olv2.NotOpenLane as exc:
        raise ValueError("%s; nor OpenLane-V2: %s" % (not_nusc, exc))
    try:
        samples = olv2.ordered_samples(dataroot, collection)
    except olv2.NotOpenLane as exc:
        raise ValueError(str(exc))
    return collection, {s["token"]: s for s in samples}, {"collection": collection}


def main(adapter_cls, argv=None):
    parser = argparse.ArgumentParser(description="Run one sample (nuScenes, or an OpenLane-V2 frame) through this "
                                                 "model and write its prediction.")
    parser.add_argument("--config", default=None, help="model config (default: the model's default config)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file")
    parser.add_argument("--dataroot", required=True, help="nuScenes dataroot, or OpenLane-V2 folder")
    parser.add_argument("--version", default=None, help="v1.0-trainval / v1.0-mini, or an OpenLane-V2 collection "
                                                        "such as data_dict_subset_A_val (default: detected)")
    parser.add_argument("--sample-token", required=True, help="the sample to run")
    parser.add_argument("--repo", default=None, help="the model's source checkout")
    parser.add_argument("--device", default="cuda:0", help="cpu or cuda:N")
    parser.add_argument("--out", required=True, help="where to write the prediction JSON")
    args = parser.parse_args(argv)

    try:
        version, samples, options = _find_samples(args.dataroot, args.version)
    except ValueError as exc:
        sys.stderr.write("error: %s\n" % exc)
        return 3
    sample = samples.get(args.sample_token)
    if sample is None:
        sys.stderr.write("error: sample token %r is not in %s/%s\n" % (args.sample_token, args.dataroot, version))
        return 3
    settings = {"model": getattr(adapter_cls, "name", "?"), "config": args.config, "checkpoint": args.checkpoint,
                "dataroot": os.path.abspath(args.dataroot), "version": version, "device": args.device,
                "repo": args.repo, "options": options}
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
