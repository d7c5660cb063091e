"""Export an adapter's forward to ONNX or PT2 (torch.export), run inside the model's env.

``<env python> .../harness/export.py JOB.json``. The job names the adapter, its settings, one
real sample, the format and the output folder. The adapter's own ``load()`` and ``prepare()``
give the inputs; its export hook ``export_forward(inputs) -> {name: tensor}`` (the tensor part of
``forward``) is wrapped in a module that takes the flattened input tensors and returns the
flattened outputs (flat.py); non-tensor inputs are baked in at trace time and listed. Writes
``model.onnx`` or ``model.pt2`` plus ``metadata.json`` into the folder, then ``result.json``
(``ok`` or the one-line reason). Standard library only, Python 3.7 syntax, torch imported here
only because exporting needs it.
"""
import hashlib
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import runpy  # noqa: E402

# the one bootstrap: loader.py by path (this folder stays off sys.path); it loads every other sibling
loader = runpy.run_path(os.path.join(HERE, "loader.py"))["load_sibling"]("loader")
flat = loader.load_sibling("flat")

FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2"}
DEFAULT_OPSET = 17
METADATA_FILE = "metadata.json"
RESULT_FILE = "result.json"


class ExportUnsupported(Exception):
    """The adapter cannot be exported; the message is the one line the user sees."""


def export_hook(adapter):
    """The adapter's ``export_forward``, or ExportUnsupported saying why there is none."""
    reason = getattr(adapter, "export_unsupported", None)
    if reason:
        raise ExportUnsupported("%s cannot be exported: %s" % (getattr(adapter, "name", "adapter"), reason))
    hook = getattr(adapter, "export_forward", None)
    if not callable(hook):
        raise ExportUnsupported("%s offers no export hook (export_forward(inputs) -> {name: tensor}) in its demo.py"
                                % getattr(adapter, "name", "adapter"))
    return hook


def make_wrapper(adapter, template):
    """An nn.Module: flat input tensors -> tuple of flat output tensors, over the adapter's own modules."""
    import torch

    hook = export_hook(adapter)

    class FlatWrapper(torch.nn.Module):
        def __init__(self):
            super(FlatWrapper, self).__init__()
            for name, value in vars(adapter).items():
                if isinstance(value, torch.nn.Module):
                    self.add_module(name, value)   # parameters become graph weights, not untracked constants

        def forward(self, *tensors):
            outputs = hook(flat.rebuild(template, iter(tensors)))
            leaves, baked = flat.flatten(outputs)
            if baked:
                raise ExportUnsupported("export_forward returned non-tensor outputs at %s"
                                        % ", ".join(flat.path_str(p) for p, _ in baked))
            return tuple(t for _, t in leaves)

    return FlatWrapper().eval()


def _tensor_meta(name, path, tensor):
    return {"name": name, "path": path, "path_str": flat.path_str(path), "shape": list(tensor.shape),
            "dtype": str(tensor.dtype).replace("torch.", ""), "dynamic_axes": {}}


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export(job):
    """Do the export the job describes; returns the metadata dict (raises ExportUnsupported)."""
    fmt = job["format"]
    if fmt not in FORMATS:
        raise ExportUnsupported("unknown export format %r (use onnx or pt2)" % fmt)
    adapter = loader.load_adapter_class(job["adapter"])(job["settings"])
    export_hook(adapter)   # refuse before importing torch: an adapter without the hook may not need it
    import torch

    adapter.load()
    sample = job["sample"]
    inputs = adapter.prepare(sample)
    leaves, baked = flat.flatten(inputs)
    if not leaves:
        raise ExportUnsupported("prepare() returned no tensors to export over")
    tensors = tuple(t for _, t in leaves)
    wrapper = make_wrapper(adapter, inputs)
    with torch.no_grad():
        ref_out = flat.flatten(export_hook(adapter)(inputs))[0]
    in_names = ["input_%d" % i for i in range(len(leaves))]
    out_names = ["output_%d" % i for i in range(len(ref_out))]
    out_dir = job["out_dir"]
    artifact = os.path.join(out_dir, FORMATS[fmt])
    exporter = {"format": fmt, "torch": torch.__version__}
    t0 = time.perf_counter()
    with torch.no_grad():
        if fmt == "onnx":
            opset = int(job.get("opset") or DEFAULT_OPSET)
            torch.onnx.export(wrapper, tensors, artifact, input_names=in_names, output_names=out_names,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
            exporter.update(opset=opset, exporter="torch.onnx.export (TorchScript)")
            try:
                import onnx
                exporter["onnx"] = onnx.__version__
            except ImportError:
                exporter["onnx"] = None
        else:
            program = torch.export.export(wrapper, tensors, strict=False)
            torch.export.save(program, artifact)
            exporter.update(opset=None, exporter="torch.export.export + torch.export.save")
    exporter["export_s"] = round(time.perf_counter() - t0, 3)
    meta = {
        "schema_version": 1, "model": job["settings"].get("model"), "format": fmt, "artifact": FORMATS[fmt],
        "artifact_sha256": _sha256(artifact), "exporter": exporter,
        "inputs": [_tensor_meta(n, p, t) for n, (p, t) in zip(in_names, leaves)],
        "baked": [{"path": p, "path_str": flat.path_str(p), "type": type(v).__name__, "value": flat.describe(v)}
                  for p, v in baked],
        "outputs": [_tensor_meta(n, p, t) for n, (p, t) in zip(out_names, ref_out)],
        "traced_on": {"sample_token": sample.get("token"), "scene_token": sample.get("scene_token"),
                      "dataroot": job["settings"].get("dataroot"), "version": job["settings"].get("version")},
        "env": {"python": platform.python_version(), "executable": sys.executable,
                "lock_hash": job.get("lock_hash")},
        "checkpoint": {"path": job["settings"].get("checkpoint"), "sha256": job.get("checkpoint_sha256")},
        "adapter": {"path": job["adapter"], "sha256": _sha256(job["adapter"])},
        "options": job["settings"].get("options") or {}, "device": job["settings"].get("device"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(os.path.join(out_dir, METADATA_FILE), "w") as fh:
        json.dump(meta, fh, indent=1)
    return meta


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: export.py JOB.json\n")
        return 2
    with open(argv[0]) as fh:
        job = json.load(fh)
    result_path = os.path.join(job["out_dir"], RESULT_FILE)
    try:
        meta = export(job)
        result = {"ok": True, "artifact": meta["artifact"], "inputs": len(meta["inputs"]),
                  "outputs": len(meta["outputs"]), "baked": len(meta["baked"])}
        code = 0
    except ExportUnsupported as exc:
        result, code = {"ok": False, "unsupported": True, "message": str(exc)}, 1
    except Exception as exc:  # an exporter error names the op that stopped it: keep it for the record
        import traceback
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:400]
        result, code = {"ok": False, "unsupported": False, "message": "%s: %s" % (type(exc).__name__, first)}, 1
    with open(result_path, "w") as fh:
        json.dump(result, fh)
    return code


if __name__ == "__main__":
    sys.exit(main())
