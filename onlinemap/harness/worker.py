"""The model process: load the adapter once, stream the samples, write events, samples, predictions.

Run by the driver as ``<env python> .../harness/worker.py JOB.json`` (through ``micromamba run`` /
``conda run`` for conda envs). Standard library only, Python 3.7 syntax; torch is imported only if
the env has it. The job file (JSON) names the adapter, its settings, the samples (warm-up ones
first), the stop rule and the three output files (see events.py).

Timed regions per sample: ``data_ms`` (adapter.prepare: reading and preprocessing, host->device
copy), ``forward_ms`` (adapter.forward, bracketed by CUDA synchronisation), ``convert_ms``
(adapter.convert to the standard schema). Model import and load, and the first call, are recorded
apart. Torch memory peaks are reset right before the first measured sample.
"""
import json
import os
import platform
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
# asv's trick: never let this folder shadow a model repo's modules.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import runpy  # noqa: E402

# the one bootstrap: loader.py by path (this folder stays off sys.path); it loads every other sibling
loader = runpy.run_path(os.path.join(HERE, "loader.py"))["load_sibling"]("loader")
events = loader.load_sibling("events")
timing = loader.load_sibling("timing")
stability = loader.load_sibling("stability")
writer = loader.load_sibling("writer")

MB = 1024.0 * 1024.0


def _say(text):
    """Write a line to stderr, ignoring a dead reader: the driver's pipe is gone when it was killed."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _watch_parent(parent_pid, stop):
    """Exit if the driver disappears (killed with SIGKILL): never hold the GPU as an orphan.

    Polls the driver's pid, which is not our parent when a launcher (``conda run``, bash) sits in
    between. Nothing may stop it exiting: the goodbye line goes to a pipe whose reader is dead, and
    a failed write there must not end this thread instead of the process.
    """
    while not stop.wait(0.5):
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            _say("onlinemap worker: driver process %d is gone, stopping\n" % parent_pid)
            os._exit(events.EXIT_ORPHANED)
        except OSError:  # PermissionError: a pid we may not signal is alive (or reused)
            pass


PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Linux: have the kernel SIGKILL us when our parent exits (prctl PR_SET_PDEATHSIG).

    Covers the host kind, whose parent is the driver itself, with no polling delay; behind a
    launcher the parent is the launcher, and the watcher thread covers the driver. Harmless
    where prctl does not exist. Returns True when it was set.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError, ValueError):
        return False


def _dist_version(name):
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7
        try:
            import importlib_metadata as metadata
        except ImportError:
            return None
    try:
        return metadata.version(name)
    except Exception:
        return None


def _env_record(device):
    rec = {"event": events.ENV, "python": platform.python_version(), "executable": sys.executable,
           "prefix": sys.prefix, "platform": platform.platform(), "device": device, "packages": {}}
    for dist in ("torch", "torchvision", "mmcv-full", "mmcv", "mmdet", "mmdet3d", "mmsegmentation", "numpy",
                 "flash-attn", "nuscenes-devkit"):
        version = _dist_version(dist)
        if version:
            rec["packages"][dist] = version
    torch = sys.modules.get("torch")
    if torch is not None:
        rec["torch"] = torch.__version__
        rec["torch_cuda"] = getattr(torch.version, "cuda", None)
        try:
            rec["cudnn"] = torch.backends.cudnn.version()
        except Exception:
            rec["cudnn"] = None
        rec["cuda_available"] = bool(torch.cuda.is_available())
        if str(device).startswith("cuda") and torch.cuda.is_available():
            dev = torch.device(device)
            props = torch.cuda.get_device_properties(dev)
            rec["gpu"] = {"name": props.name, "compute_capability": "%d.%d" % (props.major, props.minor),
                          "total_memory_mb": round(props.total_memory / MB, 1),
                          "uuid": str(getattr(props, "uuid", "") or "") or None,
                          "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    return rec


def _torch_cuda(device):
    torch = sys.modules.get("torch")
    if torch is None:
        return None, "torch not imported by the model"
    if not str(device).startswith("cuda"):
        return None, "device is cpu"
    if not torch.cuda.is_available():
        return None, "cuda not available in the model env"
    return torch, None


def _own_rss_peak_mb():
    """This process's peak RSS over its life so far, exact: the kernel's high-water mark (``ru_maxrss``).

    The driver's host series samples the tree a few times a second and can miss a short peak; this
    one cannot (it covers the worker alone: children and the result writer are not in it)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError, ValueError):
        return None
    return round(peak / (MB if sys.platform == "darwin" else 1024.0), 2)   # bytes on macOS, KiB on Linux


def _memory_record(device, peaks_reset):
    torch, reason = _torch_cuda(device)
    rec = {"event": events.MEMORY, "worker_rss_peak_mb": _own_rss_peak_mb()}
    if torch is None or not peaks_reset:
        reason = reason or "no measured sample"
        rec.update(torch_max_allocated_mb=None, torch_max_reserved_mb=None, reason=reason)
        return rec
    dev = torch.device(device)
    rec.update(torch_max_allocated_mb=round(torch.cuda.max_memory_allocated(dev) / MB, 2),
               torch_max_reserved_mb=round(torch.cuda.max_memory_reserved(dev) / MB, 2), reason=None)
    return rec


class StopRule(object):
    """When the sample loop stops, and why (the ``stop_reason`` of the finished event).

    ``count``: exactly that many measured samples ("count"). Otherwise at least ``min_samples``
    and ``min_duration_s`` (MLPerf's minimum-duration idea); then, without ``ci_target_pct``,
    stop ("min_samples_and_duration"); with it, go on until the p50's 95 % interval is within
    +-ci_target_pct % of the median ("ci_target") or ``max_duration_s`` of measuring has passed
    ("max_duration"). The interval is recomputed every 5 % more samples (sorting is O(n log n)),
    between samples, never inside a timed region. A run that runs out of samples first ends
    "exhausted" (set by the caller).
    """

    def __init__(self, job):
        self.count = job.get("count")
        self.min_samples = int(job.get("min_samples") or 1)
        self.min_duration_s = float(job.get("min_duration_s") or 0)
        target = job.get("ci_target_pct")
        self.target = None if target is None else float(target)
        limit = job.get("max_duration_s")
        self.max_duration_s = None if limit is None else float(limit)
        self.values = []
        self.next_check = 0
        self.last_rel_pct = None

    def add(self, forward_ms):
        if self.target is not None:
            self.values.append(forward_ms)

    def reason(self, measured, measured_since):
        """The stop reason once the run should stop, else None."""
        if self.count is not None:
            return "count" if measured >= self.count else None
        if measured < self.min_samples or measured_since is None:
            return None
        elapsed = time.perf_counter() - measured_since
        if elapsed < self.min_duration_s:
            return None
        if self.target is None:
            return "min_samples_and_duration"
        if measured >= self.next_check:
            self.next_check = measured + max(1, measured // 20)
            rel = stability.p50_relative_halfwidth(sorted(self.values))
            self.last_rel_pct = None if rel is None else round(100.0 * rel, 4)
            if rel is not None and 100.0 * rel <= self.target:
                return "ci_target"
        if self.max_duration_s is not None and elapsed >= self.max_duration_s:
            return "max_duration"
        return None


def _close_quietly(out):
    try:
        out.close()
    except writer.WriteFailed:
        pass


def _write_failed(report, job, out, ev, fail):
    """The writer process could not write a sample (NaN, disk full): the run fails at the write stage."""
    _close_quietly(out)
    index = report.get("index")
    samples = job["samples"]
    token = samples[index]["token"] if isinstance(index, int) and 0 <= index < len(samples) else None
    exc = _Reported(report.get("type") or "OSError", report.get("message") or "")
    return fail(events.STAGE_WRITE, exc, index=index, sample_token=token)


def _Reported(type_name, message):
    """An exception named as the writer process reported it (its type name is what the record shows)."""
    return type(str(type_name), (Exception,), {})(message)


def run(job):
    ev = events.JsonlWriter(job["events"])
    try:
        # the result writer process (JSON is encoded there, off the sample loop); started first so
        # that its interpreter start-up overlaps the model's import and load
        out = writer.Client(job["predictions"], job["samples_out"])
    except OSError as exc:
        out = None
        writer_error = exc
    ev.write({"event": events.STARTED, "pid": os.getpid(), "python": sys.version.split()[0],
              "protocol": events.PROTOCOL_VERSION, "writer_pid": out.proc.pid if out is not None else None,
              "t": time.time()})
    settings = job["settings"]
    device = settings.get("device") or "cpu"
    stop = threading.Event()
    if job.get("parent_pid"):
        parent_pid = int(job["parent_pid"])
        _die_with_parent()  # a parent that died before this line is caught by the watcher
        threading.Thread(target=_watch_parent, args=(parent_pid, stop), daemon=True).start()

    def fail(stage, exc, **extra):
        tb = traceback.format_exc() if sys.exc_info()[0] is not None else None
        rec = {"event": events.ERROR, "stage": stage, "type": type(exc).__name__, "message": str(exc)[:2000],
               "traceback": tb[-8000:] if tb else None, "t": time.time()}
        rec.update(extra)
        ev.write(rec)
        _say(tb if tb else "onlinemap worker: %s failed: %s\n" % (stage, exc))
        return events.EXIT_ERROR

    if out is None:
        return fail(events.STAGE_WRITE, writer_error)
    t0 = time.perf_counter()
    if str(device).startswith("cuda"):
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None and not torch.cuda.is_available():
            return fail(events.STAGE_LOAD, RuntimeError(
                "device %s requested but torch.cuda.is_available() is False in this env (torch %s)"
                % (device, torch.__version__)))
    try:
        adapter_cls = loader.load_adapter_class(job["adapter"])
        adapter = adapter_cls(settings)
    except Exception as exc:
        return fail(events.STAGE_IMPORT, exc)
    t1 = time.perf_counter()
    try:
        adapter.load()
    except Exception as exc:
        return fail(events.STAGE_LOAD, exc)
    forward, backend = adapter.forward, {"name": "torch"}
    if (job.get("backend") or {}).get("name", "torch") != "torch":   # an exported artifact (backends.py)
        try:
            forward = loader.load_sibling("backends").ExportedForward(adapter, job["backend"]["name"],
                                                           job["backend"]["export_dir"], device)
            backend = forward.describe()
        except Exception as exc:
            return fail(events.STAGE_LOAD, exc)
    t2 = time.perf_counter()
    clock = timing.Clock(device, job.get("timer") or "wall")
    clock.sync()
    torch, _ = _torch_cuda(device)
    model_alloc = round(torch.cuda.memory_allocated(torch.device(device)) / MB, 2) if torch is not None else None
    ev.write(_env_record(device))
    ev.write({"event": events.LOADED, "import_s": round(t1 - t0, 4), "load_s": round(t2 - t1, 4),
              "model_alloc_mb": model_alloc, "backend": backend, "t": time.time()})
    try:
        out.touch()            # both result files exist once the model is loaded, as readers expect
    except OSError as exc:
        return fail(events.STAGE_WRITE, exc)
    warmup = int(job.get("warmup") or 0)
    measured = 0
    measured_since = None
    peaks_reset = False
    started = time.perf_counter()
    stop_reason = "exhausted"
    rule = StopRule(job)
    # paced mode: sample i starts at t0 + i / rate (a camera at 12 Hz, keyframes at 2 Hz) instead
    # of back-to-back; a sample that could not start on time starts at once and counts as late
    rate = job.get("rate_hz")
    period = 1.0 / float(rate) if rate else None
    paced_late = 0
    index = -1
    for index, sample in enumerate(job["samples"]):
        is_warmup = index < warmup
        if period is not None:
            due = started + index * period
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif index and not is_warmup and wait < -0.001:
                paced_late += 1
        if not is_warmup and not peaks_reset:
            if torch is not None:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(torch.device(device))
            peaks_reset = True
            measured_since = time.perf_counter()
        try:
            a = time.perf_counter()
            inputs = adapter.prepare(sample)
            clock.sync()
            b = time.perf_counter()
            raw, forward_ms, cuda_ms = clock.timed_forward(forward, inputs)
            c = time.perf_counter()
            pred = adapter.convert(raw, sample)
            d = time.perf_counter()
        except Exception as exc:
            try:
                out.row({"index": index, "sample_token": sample["token"], "scene_token": sample.get("scene_token"),
                         "warmup": is_warmup, "ok": False, "error": "%s: %s" % (type(exc).__name__, exc),
                         "t": time.time()})
                out.close()
            except writer.WriteFailed:
                pass
            ev.write(_memory_record(device, peaks_reset))
            return fail(events.STAGE_SAMPLE, exc, index=index, sample_token=sample["token"])
        # the prediction goes first: a sample line promises that its prediction is on disk
        try:
            w0 = time.perf_counter()
            out.prediction(pred)
            write_ms = (time.perf_counter() - w0) * 1000.0
            # raw times: the writer process rounds them and builds the line (writer.measured_row)
            out.measured((index, sample["token"], sample.get("scene_token"), is_warmup, a, b, c, d,
                          forward_ms, cuda_ms, write_ms, time.time()))
        except writer.WriteFailed as exc:
            return _write_failed(exc.report, job, out, ev, fail)
        except (OSError, TypeError, ValueError) as exc:
            # a prediction that is not JSON-serialisable, encoded here (marshal could not take it)
            _close_quietly(out)
            return fail(events.STAGE_WRITE, exc, index=index, sample_token=sample["token"])
        # let go of this sample's objects before the next one is prepared: on a GPU its inputs and
        # outputs would otherwise sit in memory through the next forward (in the torch peak, where
        # mmdet3d's benchmark loop never has them)
        inputs = raw = pred = None
        if not is_warmup:
            measured += 1
            rule.add(forward_ms)
            reason = rule.reason(measured, measured_since)
            if reason is not None:
                stop_reason = reason
                break
    try:
        out.close()            # every sample on disk before the finished event
    except writer.WriteFailed as exc:
        return _write_failed(exc.report, job, out, ev, fail)
    ev.write(_memory_record(device, peaks_reset))
    close = getattr(adapter, "close", None)
    if callable(close):
        close()
    ev.write({"event": events.FINISHED, "measured": measured, "warmup": min(warmup, index + 1),
              "wall_s": round(time.perf_counter() - started, 4), "stop_reason": stop_reason,
              "p50_ci_rel_pct": rule.last_rel_pct, "paced_hz": rate, "paced_late": paced_late if rate else None,
              "t": time.time()})
    stop.set()
    return events.EXIT_OK


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: worker.py JOB.json\n")
        return events.EXIT_BAD_JOB
    try:
        with open(argv[0]) as fh:
            job = json.load(fh)
        for key in ("adapter", "settings", "samples", "events", "samples_out", "predictions"):
            if key not in job:
                raise KeyError(key)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write("onlinemap worker: unusable job file %s: %s\n" % (argv[0], exc))
        return events.EXIT_BAD_JOB
    return run(job)


if __name__ == "__main__":
    sys.exit(main())
