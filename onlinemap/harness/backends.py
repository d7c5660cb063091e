"""Run an exported artifact in place of an adapter's torch forward (inside the model's env).

Backends: ``torch`` (the adapter's own forward, no artifact), ``onnxruntime`` (model.onnx),
``pt2`` (model.pt2 through torch.export.load) and ``tensorrt`` (refused: see docs/backends.md).
``exported_forward(adapter, spec, device)`` returns a callable with the adapter's forward
signature: it flattens the live inputs exactly as at export time (flat.py), checks them against
metadata.json, runs the artifact and gives the outputs back to the adapter's ``finish_raw`` so
``convert`` sees what the torch forward would have produced. Standard library only, Python 3.7
syntax; onnxruntime/torch are imported only when their backend is used.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

import runpy  # noqa: E402

# the one bootstrap: loader.py by path (this folder stays off sys.path); it loads every other sibling
loader = runpy.run_path(os.path.join(HERE, "loader.py"))["load_sibling"]("loader")
flat = loader.load_sibling("flat")

BACKENDS = ("torch", "onnxruntime", "pt2", "tensorrt")
ARTIFACT_FORMAT = {"onnxruntime": "onnx", "tensorrt": "onnx", "pt2": "pt2"}


class BackendError(Exception):
    """A backend cannot run here, or the live inputs do not fit the export; one readable line."""


def read_metadata(export_dir):
    with open(os.path.join(export_dir, "metadata.json")) as fh:
        return json.load(fh)


class OnnxRuntimeRunner(object):
    def __init__(self, export_dir, meta, device):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("the onnxruntime backend needs the onnxruntime package in this env "
                               "(pip install onnxruntime, or onnxruntime-gpu on a GPU machine)")
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise BackendError("device %s asked for, but this onnxruntime has no CUDAExecutionProvider "
                                   "(providers: %s): install onnxruntime-gpu or use --device cpu"
                                   % (device, ", ".join(available)))
            index = int(str(device).split(":")[1]) if ":" in str(device) else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(os.path.join(export_dir, meta["artifact"]), providers=providers)
        self.names = [i["name"] for i in meta["inputs"]]
        self.version = ort.__version__
        self.providers = self.session.get_providers()

    def run(self, tensors):
        feed = dict((name, t.detach().cpu().numpy()) for name, t in zip(self.names, tensors))
        return self.session.run(None, feed)


class Pt2Runner(object):
    def __init__(self, export_dir, meta, device):
        import torch

        self.torch = torch
        self.module = torch.export.load(os.path.join(export_dir, meta["artifact"])).module()
        if str(device).startswith("cuda"):
            self.module = self.module.to(device)
        self.version = torch.__version__
        self.providers = [str(device)]

    def run(self, tensors):
        with self.torch.no_grad():
            return list(self.module(*tensors))


def _tensorrt_runner(export_dir, meta, device):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise BackendError("the tensorrt backend needs the tensorrt Python package in this env and a CUDA GPU; "
                           "neither check passed here (use --backend onnxruntime)")
    if not str(device).startswith("cuda"):
        raise BackendError("the tensorrt backend runs on a CUDA GPU only: give --device cuda:N")
    raise BackendError("the tensorrt backend's engine build is not implemented yet (docs/backends.md); "
                       "use --backend onnxruntime with onnxruntime-gpu")


RUNNERS = {"onnxruntime": OnnxRuntimeRunner, "pt2": Pt2Runner, "tensorrt": _tensorrt_runner}


def open_runner(name, export_dir, meta, device):
    if name not in RUNNERS:
        raise BackendError("unknown backend %r (use one of %s)" % (name, ", ".join(BACKENDS)))
    return RUNNERS[name](export_dir, meta, device)


def flat_inputs(meta, inputs):
    """The live inputs as the export's ordered tensors; BackendError if they do not fit metadata.json."""
    leaves, _ = flat.flatten(inputs)
    got = [p for p, _ in leaves]
    want = [i["path"] for i in meta["inputs"]]
    if got != want:
        raise BackendError("prepare() now yields tensors at %s, the export was traced with %s: re-export"
                           % ([flat.path_str(p) for p in got], [i["path_str"] for i in meta["inputs"]]))
    for (path, tensor), spec in zip(leaves, meta["inputs"]):
        if list(tensor.shape) != spec["shape"]:
            raise BackendError("input %s has shape %s, the export has the static shape %s: re-export for it"
                               % (spec["path_str"], list(tensor.shape), spec["shape"]))
    return [t for _, t in leaves]


def to_torch(values, device):
    """Backend outputs (numpy arrays or tensors) as torch tensors on ``device``."""
    import torch

    out = []
    for v in values:
        t = v if flat.is_tensor(v) else torch.from_numpy(v)
        out.append(t.to(device))
    return out


def structure(meta, values):
    """Flat outputs back into the structure export_forward returned."""
    return flat.from_paths([(o["path"], v) for o, v in zip(meta["outputs"], values)])


def finish(adapter, outputs, inputs):
    hook = getattr(adapter, "finish_raw", None)
    return hook(outputs, inputs) if callable(hook) else outputs


class ExportedForward(object):
    """Callable like ``adapter.forward``: live inputs -> raw, through the exported artifact."""

    def __init__(self, adapter, backend, export_dir, device):
        self.adapter = adapter
        self.backend = backend
        self.export_dir = export_dir
        self.device = device
        self.meta = read_metadata(export_dir)
        self.runner = open_runner(backend, export_dir, self.meta, device)

    def raw_outputs(self, inputs):
        return self.runner.run(flat_inputs(self.meta, inputs))

    def __call__(self, inputs):
        values = to_torch(self.raw_outputs(inputs), self.device)
        return finish(self.adapter, structure(self.meta, values), inputs)

    def describe(self):
        return {"name": self.backend, "export_dir": self.export_dir, "format": self.meta.get("format"),
                "artifact_sha256": self.meta.get("artifact_sha256"), "runtime_version": self.runner.version,
                "providers": list(self.runner.providers)}
