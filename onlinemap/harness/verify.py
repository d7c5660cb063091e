"""Cross-backend check, run inside the model's env: PyTorch vs an exported artifact, same samples.

``<env python> .../harness/verify.py JOB.json``. For every sample the adapter's ``prepare`` runs
once; its export hook (the torch reference) and the backend run on the very same tensors. Per raw
output tensor: max abs and max relative difference over all samples, and pass/fail as
``|backend - torch| <= atol + rtol * |torch|`` everywhere (torch.allclose's rule, which mmdeploy's
tests use); a NaN or Inf on either side fails. Both sides' converted predictions are written as
JSONL so the driver can evaluate them. Standard library only, Python 3.7 syntax; torch because
the reference needs it.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import runpy  # noqa: E402

# the one bootstrap: loader.py by path (this folder stays off sys.path); it loads every other sibling
loader = runpy.run_path(os.path.join(HERE, "loader.py"))["load_sibling"]("loader")
flat = loader.load_sibling("flat")
backends = loader.load_sibling("backends")
export = loader.load_sibling("export")


class _Stat(object):
    def __init__(self, meta):
        self.meta = meta
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.violations = 0
        self.elements = 0
        self.nonfinite_torch = 0
        self.nonfinite_backend = 0
        self.worst = None   # (excess over atol + rtol*|ref|, index, torch value, backend value)

    def add(self, ref, got, rtol, atol):
        import torch

        ref = ref.detach().double().cpu()
        got = got.detach().double().cpu()
        if tuple(ref.shape) != tuple(got.shape):
            self.violations += max(ref.numel(), got.numel())
            self.worst = ("shape", list(ref.shape), list(got.shape))
            return
        self.elements += ref.numel()
        fin_ref, fin_got = torch.isfinite(ref), torch.isfinite(got)
        self.nonfinite_torch += int((~fin_ref).sum())
        self.nonfinite_backend += int((~fin_got).sum())
        both = fin_ref & fin_got
        diff = torch.where(both, (got - ref).abs(), torch.zeros_like(ref))
        rel = diff / ref.abs().clamp_min(1e-12)
        if ref.numel():
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.max_rel = max(self.max_rel, float(torch.where(both, rel, torch.zeros_like(rel)).max()))
            excess = diff - (atol + rtol * ref.abs())
            bad = (excess > 0) | ~both
            self.violations += int(bad.sum())
            i = int(torch.argmax(torch.where(both, excess, torch.full_like(excess, float("inf")))))
            e = float(excess.flatten()[i]) if bool(both.flatten()[i]) else float("inf")
            if self.worst is None or (isinstance(self.worst[0], float) and e > self.worst[0]):
                self.worst = (e, i, float(ref.flatten()[i]), float(got.flatten()[i]))

    def record(self):
        ok = self.violations == 0 and not self.nonfinite_torch and not self.nonfinite_backend
        worst = None
        if self.worst and self.worst[0] == "shape":
            worst = {"shape_torch": self.worst[1], "shape_backend": self.worst[2]}
        elif self.worst:
            worst = {"flat_index": self.worst[1], "torch": self.worst[2], "backend": self.worst[3]}
        return {"name": self.meta["name"], "path": self.meta["path_str"], "shape": self.meta["shape"],
                "max_abs": self.max_abs, "max_rel": self.max_rel, "violations": self.violations,
                "elements": self.elements, "nonfinite_torch": self.nonfinite_torch,
                "nonfinite_backend": self.nonfinite_backend, "worst": worst, "ok": ok}


def verify(job):
    import torch

    settings = job["settings"]
    device = settings.get("device") or "cpu"
    rtol, atol = float(job["rtol"]), float(job["atol"])
    adapter = loader.load_adapter_class(job["adapter"])(settings)
    hook = export.export_hook(adapter)
    adapter.load()
    runner = backends.ExportedForward(adapter, job["backend"], job["export_dir"], device)
    stats = [_Stat(o) for o in runner.meta["outputs"]]
    with open(job["predictions_torch"], "w") as p_torch, open(job["predictions_backend"], "w") as p_back:
        for sample in job["samples"]:
            inputs = adapter.prepare(sample)
            with torch.no_grad():
                ref_leaves = flat.flatten(hook(inputs))[0]
            got = backends.to_torch(runner.raw_outputs(inputs), device)
            if [p for p, _ in ref_leaves] != [o["path"] for o in runner.meta["outputs"]]:
                raise backends.BackendError("export_forward's outputs changed since the export: re-export")
            for stat, (_, ref), value in zip(stats, ref_leaves, got):
                stat.add(ref, value, rtol, atol)
            ref_raw = backends.finish(adapter, backends.structure(runner.meta, [t for _, t in ref_leaves]), inputs)
            got_raw = backends.finish(adapter, backends.structure(runner.meta, got), inputs)
            p_torch.write(json.dumps(adapter.convert(ref_raw, sample)) + "\n")
            p_back.write(json.dumps(adapter.convert(got_raw, sample)) + "\n")
    tensors = [s.record() for s in stats]
    return {"ok": all(t["ok"] for t in tensors), "backend": runner.describe(), "rtol": rtol, "atol": atol,
            "samples": len(job["samples"]), "tensors": tensors}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: verify.py JOB.json\n")
        return 2
    with open(argv[0]) as fh:
        job = json.load(fh)
    try:
        result = verify(job)
        code = 0
    except (backends.BackendError, export.ExportUnsupported) as exc:
        result, code = {"ok": False, "error": str(exc)}, 1
    with open(job["result"], "w") as fh:
        json.dump(result, fh, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
