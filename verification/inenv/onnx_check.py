"""The lane's ONNX stage in the model's venv: export the real model, run it on ONNX Runtime CPU, compare with PyTorch.

``<venv python> onnx_check.py JOB.json``. The real adapter (``envs/<M>/demo.py``, unchanged) is loaded and
``load()``-ed as the worker does; its own ``prepare()`` gives the inputs of the synthetic samples. The
tensor part of the forward (onnx_graphs.py) becomes the adapter's export hook and the project's export
machinery wraps it (``onlinemap/harness/export.py`` ``make_wrapper``: flat tensors in and out,
``flat.py`` paths, non-tensors baked in). Each graph is exported with the TorchScript exporter
(``torch.onnx.export(dynamo=False)``, opset 17, what ``onlinemap export`` uses), falling back to
``dynamo=True`` (torch.export + onnxscript) when it fails; then every output tensor from ONNX Runtime
is held to PyTorch's with ``harness/verify.py``'s rule (``|ort - torch| <= atol + rtol*|torch|``, NaN/Inf
fail). Temporal models get a first-frame and a later-frame graph (state as explicit inputs/outputs);
the later frame is fed the first frame's state from each side, so drift through the state shows.

Writes ``result.json``: status ``passed`` | ``failed`` (exported, but ONNX Runtime refused it or differed)
| ``not_exportable`` (every exporter failed), the stage and a one-line reason, max abs / max rel, times,
exporter / opset / versions, per graph and per tensor. Never raises: any error is the outcome.
"""
import copy
import json
import os
import runpy
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "..", "..", "onlinemap", "harness")


# the harness's one bootstrap (loader.py by path), then its loader for everything else
loader = runpy.run_path(os.path.join(HARNESS, "loader.py"))["load_sibling"]("loader")
harness_export = loader.load_sibling("export")
harness_verify = loader.load_sibling("verify")
flat = harness_export.flat
graphs = loader.load_file(os.path.join(HERE, "onnx_graphs.py"), "_onlinemap_verify_onnx_graphs")


class Outcome(Exception):
    def __init__(self, status, stage, reason):
        super(Outcome, self).__init__(reason)
        self.status, self.stage, self.reason = status, stage, reason


def one_line(exc):
    """The telling line of an error: the innermost cause (the exporters wrap the op's own error twice),
    plus the first line naming an op or a missing symbolic, ANSI colours stripped."""
    import re

    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    texts = [re.sub(r"\x1b\[[0-9;]*m", "", "%s: %s" % (type(e).__name__, str(e).strip())) for e in chain]
    lines = [l.strip() for text in reversed(texts) for l in text.splitlines() if l.strip()]
    line = lines[0] if lines else type(chain[0]).__name__
    telling = [l for l in lines if "aten" in l or "Unsupported" in l or "not supported" in l or "symbolic" in l
               or "No ONNX function" in l]
    if telling and telling[0] != line:
        line = telling[0]
    return line[:400]


# ops the ONNX standard has no operator for, but ONNX Runtime has as a contrib op (onnxruntime's
# docs/ContribOperators.md): used only after both exporters failed on exactly that op, and recorded as such
CONTRIB_SYMBOLICS = {"aten::linalg_inv": "com.microsoft::Inverse"}
PROGRESS_FILE = "progress.json"
VERSIONS = {}   # torch / onnx / onnxruntime / onnxscript, for progress.json
WORKED = []   # the (exporter, dynamo, contrib) that exported this model's first graph


def _register_contrib(torch, aten, contrib, opset):
    def symbolic(g, self):
        out = g.op(contrib, self)
        out.setType(self.type())
        return out

    torch.onnx.register_custom_op_symbolic(aten, symbolic, opset)


def export_graph(torch, wrapper, tensors, path, in_names, out_names, opset, log):
    """TorchScript exporter, then dynamo, then (when both failed on an op ONNX Runtime has as a contrib op)
    the TorchScript exporter with that op mapped to it; returns (exporter dict or None, attempts)."""
    attempts = []
    tries = [("torch.onnx.export(dynamo=False)", False, None), ("torch.onnx.export(dynamo=True)", True, None)]
    if WORKED:   # a later graph of the same model: what exported the first one goes first
        tries = [WORKED[0]] + [x for x in tries if x != WORKED[0]]
    while tries:
        name, dynamo, contrib = tries.pop(0)
        t0 = time.perf_counter()
        with open(os.path.join(os.path.dirname(path), PROGRESS_FILE), "w") as fh:   # what a timeout cut short
            json.dump(dict(VERSIONS, graph=os.path.basename(path)[:-5], running=name, attempts=attempts), fh)
        try:
            kwargs = dict(input_names=in_names, output_names=out_names, opset_version=opset, dynamo=dynamo)
            if not dynamo:
                kwargs["do_constant_folding"] = True
            else:
                kwargs["opset_version"] = max(opset, 18)   # the dynamo exporter's lowest supported opset
            if contrib:
                _register_contrib(torch, contrib[0], contrib[1], opset)
            with torch.no_grad():
                torch.onnx.export(wrapper, tensors, path, **kwargs)
            attempts.append({"exporter": name, "ok": True, "seconds": round(time.perf_counter() - t0, 1)})
            WORKED[:] = [(name, dynamo, contrib)]
            exporter = {"exporter": name, "opset": kwargs["opset_version"]}
            if contrib:
                exporter["contrib_ops"] = {contrib[0]: contrib[1]}
            return exporter, attempts
        except Exception as exc:  # an exporter error is the outcome to record, with its op
            log.write("=== %s failed\n%s\n" % (name, traceback.format_exc()))
            attempts.append({"exporter": name, "ok": False, "seconds": round(time.perf_counter() - t0, 1),
                             "error": one_line(exc)})
        if not tries and not any(a.get("contrib") for a in attempts):
            errors = " ".join(a.get("error", "") for a in attempts)
            for aten, op in sorted(CONTRIB_SYMBOLICS.items()):
                if aten in errors or aten.replace("::", ".") in errors:
                    tries.append(("torch.onnx.export(dynamo=False) + %s for %s" % (op, aten), False, (aten, op)))
                    attempts.append({"contrib": op, "for": aten, "why": "both exporters stopped at %s" % aten})
                    break
    return None, attempts


def run_graph(torch, ort, adapter, fn, label, inputs, state, out_dir, rtol, atol, opset, log):
    """Export one graph (inputs + state), run it on ONNX Runtime on the same tensors, compare every output."""
    template = {"inputs": inputs, "state": state} if state is not None else {"inputs": inputs}
    adapter.export_forward = lambda x: fn(adapter, x["inputs"], x.get("state"))
    with torch.no_grad():
        ref = adapter.export_forward(copy.copy(template))
    ref_leaves, ref_baked = flat.flatten(ref)
    if ref_baked:
        raise Outcome("not_exportable", "graph", "%s graph returns non-tensors at %s" % (
            label, ", ".join(flat.path_str(p) for p, _ in ref_baked)))
    leaves, baked = flat.flatten(template)
    tensors = tuple(t for _, t in leaves)
    wrapper = harness_export.make_wrapper(adapter, template)
    in_names = ["input_%d" % i for i in range(len(leaves))]
    out_names = ["output_%d" % i for i in range(len(ref_leaves))]
    path = os.path.join(out_dir, "%s.onnx" % label)
    entry = {"graph": label, "inputs": len(leaves), "baked": len(baked), "outputs": len(ref_leaves),
             "state_inputs": [flat.path_str(p) for p, _ in leaves if p and p[0] == "state"],
             "state_outputs": [flat.path_str(p) for p, _ in ref_leaves if p and p[0] == "state"]}
    t0 = time.perf_counter()
    exporter, attempts = export_graph(torch, wrapper, tensors, path, in_names, out_names, opset, log)
    entry["export_attempts"] = attempts
    entry["export_s"] = round(time.perf_counter() - t0, 1)
    if exporter is None:
        entry["status"] = "not_exportable"
        return entry, None
    entry.update(exporter)
    entry["onnx_mb"] = round(os.path.getsize(path) / 1e6, 1)
    t0 = time.perf_counter()
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        wanted = set(i.name for i in session.get_inputs())
        feed = dict((n, t.detach().cpu().numpy()) for n, t in zip(in_names, tensors) if n in wanted)
        got = session.run(None, feed)
    except Exception as exc:
        log.write("=== onnxruntime failed on %s\n%s\n" % (label, traceback.format_exc()))
        entry.update(status="failed", stage="onnxruntime", reason=one_line(exc))
        return entry, None
    entry["onnxruntime_s"] = round(time.perf_counter() - t0, 1)
    entry["dropped_inputs"] = len(leaves) - len(wanted)
    stats = []
    for (p, t), value in zip(ref_leaves, got):
        stat = harness_verify._Stat({"name": "output_%d" % len(stats), "path_str": flat.path_str(p),
                                     "shape": list(t.shape)})
        stat.add(t, torch.from_numpy(value), rtol, atol)
        record = stat.record()
        if not record["ok"] and tuple(value.shape) == tuple(t.shape) and t.numel():
            # same values in another order? (a top-k among near-tied scores picks the rows in another order)
            a = t.detach().double().flatten().sort().values
            b = torch.from_numpy(value).double().flatten().sort().values
            record["sorted_max_abs"] = float((a - b).abs().max())
            record["sorted_within_tolerance"] = bool(((a - b).abs() <= atol + rtol * a.abs()).all())
        stats.append(record)
    entry["tensors"] = stats
    entry["max_abs"] = max([s["max_abs"] for s in stats] or [0.0])
    entry["max_rel"] = max([s["max_rel"] for s in stats] or [0.0])
    bad = [s for s in stats if not s["ok"]]
    entry["status"] = "passed" if not bad else "failed"
    if bad:
        worst = max(bad, key=lambda s: s["max_abs"])
        reordered = [s["path"] for s in bad if s.get("sorted_within_tolerance")]
        entry.update(stage="compare", reason="%d of %d outputs beyond atol %g + rtol %g (worst %s: max abs %.3g, "
                     "nonfinite %d/%d)%s" % (len(bad), len(stats), atol, rtol, worst["path"], worst["max_abs"],
                                             worst["nonfinite_torch"], worst["nonfinite_backend"],
                                             "; the same values in another order: %s" % ", ".join(reordered)
                                             if reordered else ""))
    ort_state = None
    if any(p and p[0] == "state" for p, _ in ref_leaves):
        ort_state = flat.from_paths([(p[1:], torch.from_numpy(v)) for (p, _), v in zip(ref_leaves, got)
                                     if p and p[0] == "state"])
    return entry, ort_state


def graph_function(name):
    """A graph of onnx_graphs.py by name, or ``/path/to/file.py:function`` (the tests' small models)."""
    if ":" in name:
        path, func = name.rsplit(":", 1)
        return getattr(loader.load_file(path, "_onlinemap_verify_graph_file"), func)
    return graphs.GRAPHS[name]


def check(job, result):
    """Fills ``result`` as it goes, so an Outcome or an error keeps what was already found."""
    import torch

    result.update(status="failed", stage="load", reason="", torch=torch.__version__)
    try:
        import onnx
        import onnxruntime as ort
        result.update(onnx=onnx.__version__, onnxruntime=ort.__version__)
        try:
            import onnxscript
            result["onnxscript"] = onnxscript.__version__
        except ImportError:
            result["onnxscript"] = None
    except ImportError as exc:
        raise Outcome("failed", "load", "onnx/onnxruntime missing from the lane venv: %s" % exc)
    VERSIONS.update((k, result.get(k)) for k in ("torch", "onnx", "onnxruntime", "onnxscript"))
    fn = graph_function(job["graph"])
    adapter = loader.load_adapter_class(job["adapter"])(job["settings"])
    adapter.load()
    rtol, atol, opset = float(job["rtol"]), float(job["atol"]), int(job.get("opset") or harness_export.DEFAULT_OPSET)
    result.update(rtol=rtol, atol=atol, graphs=[])
    log = open(os.path.join(job["out_dir"], "onnx-log.txt"), "w", buffering=1)   # line-buffered: readable while it runs
    samples = job["samples"]
    result["stage"] = "prepare"
    first_inputs = adapter.prepare(samples[0])
    result["stage"] = "export"
    entry, ort_state = run_graph(torch, ort, adapter, fn, "first-frame", first_inputs, None, job["out_dir"],
                                 rtol, atol, opset, log)
    result["graphs"].append(entry)
    if job.get("temporal") and entry.get("status") in ("passed", "failed") and entry.get("tensors") and len(samples) > 1:
        # the later-frame graph, fed the first frame's state as PyTorch computed it ...
        with torch.no_grad():
            torch_first = fn(adapter, first_inputs, None)
        state = dict(torch_first["state"])
        if job["graph"] == "vad":
            state["metas"] = copy.deepcopy(first_inputs["data"]["img_metas"][0])
        later_inputs = adapter.prepare(samples[1])
        later, _ = run_graph(torch, ort, adapter, fn, "later-frame", later_inputs, state, job["out_dir"],
                             rtol, atol, opset, log)
        # ... and the same graph fed ONNX Runtime's own first-frame state (the chain a deployment runs)
        if later.get("tensors") and ort_state is not None:
            later["chained_from_onnxruntime_state"] = chained(torch, ort, adapter, fn, later_inputs, state, ort_state,
                                                              job["out_dir"], rtol, atol)
        result["graphs"].append(later)
    log.close()
    statuses = [g.get("status") for g in result["graphs"]]
    if "not_exportable" in statuses:
        g = result["graphs"][statuses.index("not_exportable")]
        failed = [a for a in g["export_attempts"] if a.get("ok") is False]
        raise Outcome("not_exportable", "export", "%s graph: %s" % (
            g["graph"], "; ".join("%s: %s" % (a["exporter"], a["error"]) for a in failed)))
    if "failed" in statuses:
        g = result["graphs"][statuses.index("failed")]
        result.update(status="failed", stage=g.get("stage"), reason="%s graph: %s" % (g["graph"], g.get("reason")))
    else:
        result.update(status="passed", stage="compare", reason="")
    result["max_abs"] = max(g.get("max_abs", 0.0) for g in result["graphs"])
    result["max_rel"] = max(g.get("max_rel", 0.0) for g in result["graphs"])
    exporters = sorted(set(g.get("exporter") for g in result["graphs"] if g.get("exporter")))
    result["exporter"] = ", ".join(exporters)
    result["opset"] = max(g.get("opset") or 0 for g in result["graphs"]) or None


def chained(torch, ort, adapter, fn, inputs, torch_state, ort_state, out_dir, rtol, atol):
    """The later-frame graph on ONNX Runtime's own first-frame state vs PyTorch on its own: the drift a full chain sees."""
    template = {"inputs": inputs, "state": torch_state}
    leaves, _ = flat.flatten(template)
    fed = dict(torch_state)
    fed.update(ort_state)
    ort_leaves, _ = flat.flatten({"inputs": inputs, "state": fed})
    session = ort.InferenceSession(os.path.join(out_dir, "later-frame.onnx"), providers=["CPUExecutionProvider"])
    wanted = set(i.name for i in session.get_inputs())
    feed = dict(("input_%d" % i, t.detach().cpu().numpy()) for i, (_, t) in enumerate(ort_leaves)
                if "input_%d" % i in wanted)
    got = session.run(None, feed)
    with torch.no_grad():
        ref = flat.flatten(fn(adapter, inputs, torch_state))[0]
    worst_abs = worst_rel = 0.0
    bad = 0
    for (p, t), value in zip(ref, got):
        stat = harness_verify._Stat({"name": "", "path_str": flat.path_str(p), "shape": list(t.shape)})
        stat.add(t, torch.from_numpy(value), rtol, atol)
        rec = stat.record()
        worst_abs, worst_rel = max(worst_abs, rec["max_abs"]), max(worst_rel, rec["max_rel"])
        bad += 0 if rec["ok"] else 1
    return {"max_abs": worst_abs, "max_rel": worst_rel, "outputs_beyond_tolerance": bad}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as fh:
        job = json.load(fh)
    t0 = time.perf_counter()
    result = {}
    try:
        check(job, result)
    except Outcome as exc:
        result.update(status=exc.status, stage=exc.stage, reason=exc.reason)
    except Exception as exc:  # the model's own code failed (load, prepare, a graph's torch run): an outcome too
        traceback.print_exc()
        result.update(status="failed", stage=result.get("stage") or "load", reason=one_line(exc))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    with open(os.path.join(job["out_dir"], "result.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
