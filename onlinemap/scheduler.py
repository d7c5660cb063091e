"""Several models on several devices at once: one model process per device, each measured on its own.

Design note. A worker thread per device takes the next model from a shared queue and runs it
with ``runner.run_model`` on that device, so no two models ever share a GPU and every figure is
taken on an otherwise idle device (a model on GPU 1 does not slow GPU 0's, apart from the host
CPU and PCIe they share: the run records say which device each ran on). Threads, not processes:
each run already lives in its own model process; the driver side only waits and samples.

Ctrl-C only ever reaches the main thread, and ``proc.run_supervised`` installs no signal handler
off the main thread, so the main thread owns the shutdown: on KeyboardInterrupt, SIGTERM or SIGHUP
(handlers installed for the duration, when called from the main thread: a ``timeout``, a pod
shutdown or a dropped SSH session must not orphan model processes that hold GPUs), it sets a stop event (no new model
starts) and kills the process group of every model still running (found through the run's job file
in its command line); those runs are then recorded as ``interrupted``, with every finished sample
kept, and exit code 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP).
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from onlinemap.errors import UsageError, exit_code_for_signal
from onlinemap.proc import _Terminated, install_stop_handlers, restore_handlers

__all__ = ["resolve_gpus", "ScheduledRun", "run_scheduled"]

log = logging.getLogger(__name__)


def resolve_gpus(gpus: str | list[str]) -> list[str]:
    """``all`` -> every visible NVIDIA GPU; ``0,1`` -> cuda:0, cuda:1 (must exist); a list of device strings as is.

    A GPU that does not exist is a UsageError (exit 2). Device strings (``["cpu", "cpu"]``) are for
    tests and for pinning by hand.
    """
    if isinstance(gpus, (list, tuple)):
        from onlinemap.runner import check_device

        devices = [check_device(d) for d in gpus]
        if not devices:
            raise UsageError("--gpus names no device", "use --gpus all or --gpus 0,1")
        return devices
    text = (gpus or "").strip()
    from onlinemap.telemetry.nvml import load_nvml

    nvml, reason = load_nvml()
    count = 0
    if nvml is not None:
        try:
            count = nvml.device_count()
        finally:
            nvml.shutdown()
    if text == "all":
        if count == 0:
            raise UsageError(f"--gpus all: no NVIDIA GPU is visible ({reason or 'NVML reports 0 devices'})",
                             "run without --gpus (one device), or use --device cpu")
        return [f"cuda:{i}" for i in range(count)]
    indices = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise UsageError(f"--gpus {gpus!r}: {part!r} is not a GPU index", "use --gpus all or --gpus 0,1,...")
        indices.append(int(part))
    missing = [i for i in indices if i >= count]
    if missing:
        raise UsageError(f"--gpus {gpus}: no GPU {', '.join(map(str, missing))} on this machine "
                         f"({count} visible{'' if nvml else ': ' + str(reason)})",
                         f"use indices 0..{count - 1}" if count else "run without --gpus")
    if len(set(indices)) != len(indices):
        raise UsageError(f"--gpus {gpus}: a GPU is named twice", "name each GPU once")
    return [f"cuda:{i}" for i in indices]


@dataclass
class ScheduledRun:
    """What happened to one model: its device, outcome (or the error that stopped it first), and when."""

    model: str
    device: str
    outcome: object | None = None        # runner.RunOutcome
    error: BaseException | None = None
    started: float = 0.0                 # time.monotonic()
    ended: float = 0.0
    run_dir: Path | None = None


def _kill_run(run_dir: Path) -> None:
    """Stop the model process working for ``run_dir``: its worker first, then its launcher's group."""
    import psutil

    from onlinemap.fileio import iter_jsonl
    from onlinemap.proc import LAUNCHER_GRACE_S, _wait_gone, kill_group
    from onlinemap.runs.schema import EVENTS_FILE

    marker = str(run_dir)
    groups = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if any(marker in arg for arg in cmd):
            try:
                groups.add(os.getpgid(proc.info["pid"]))
            except ProcessLookupError:
                pass
    groups.discard(os.getpgid(0))      # never our own group
    worker = next((e.get("pid") for e in iter_jsonl(run_dir / EVENTS_FILE) if e.get("event") == "started"), None)
    if worker:
        try:
            if os.getpgid(int(worker)) in groups:   # never signal a reused pid
                os.kill(int(worker), signal.SIGTERM)
                _wait_gone(int(worker), 3.0)
                for pgid in groups:                 # the launcher cleans up once its child returned
                    _wait_gone(pgid, LAUNCHER_GRACE_S)
        except (ProcessLookupError, PermissionError):
            pass
    for pgid in groups:
        kill_group(pgid, grace_s=3.0)


def run_scheduled(models: list[str], devices: list[str],
                  run_one: Callable[[str, str, Callable[[str, Path], None]], object],
                  *, on_done: Callable[[ScheduledRun], None] | None = None) -> tuple[list[ScheduledRun], bool]:
    """Run every model once, at most one per device at a time; return (runs in model order, interrupted).

    ``run_one(model, device, on_run_dir)`` runs one model (``runner.run_model`` with the device
    set) and must pass ``on_run_dir`` through to run_model, so that Ctrl-C can find the process.
    """
    todo: queue.Queue = queue.Queue()
    runs = [ScheduledRun(model=m, device="") for m in models]
    for r in runs:
        todo.put(r)
    stop = threading.Event()
    active: dict[int, ScheduledRun] = {}
    lock = threading.Lock()

    finished = [threading.Event() for _ in devices]

    def worker(device: str, done: threading.Event) -> None:
        try:
            _work(device)
        finally:
            done.set()

    def _work(device: str) -> None:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            item.device = device
            item.started = time.monotonic()
            ident = threading.get_ident()

            def on_run_dir(_run_id: str, run_dir: Path, item=item) -> None:
                item.run_dir = run_dir

            with lock:
                active[ident] = item
            try:
                item.outcome = run_one(item.model, device, on_run_dir)
            except BaseException as exc:   # noqa: BLE001 - reported per model, never lost in a thread
                item.error = exc
            finally:
                item.ended = time.monotonic()
                with lock:
                    active.pop(ident, None)
            if on_done is not None:
                on_done(item)

    # Completion is tracked with Events, not Thread.join/is_alive: a KeyboardInterrupt that lands
    # inside Thread.join can leave is_alive() False for a thread that still runs (CPython bpo-21822).
    threads = [threading.Thread(target=worker, args=(d, finished[i]), name=f"onlinemap-{d}-{i}", daemon=True)
               for i, d in enumerate(devices)]
    for t in threads:
        t.start()
    stopped_by = None
    old_handlers = install_stop_handlers()
    try:
        try:
            while not all(e.is_set() for e in finished):
                time.sleep(0.1)
        except (KeyboardInterrupt, _Terminated) as exc:
            stopped_by = exc.signame if isinstance(exc, _Terminated) else "SIGINT"
            stop.set()
            log.warning("interrupted by %s: stopping %d running model(s)", stopped_by, len(active))
            with lock:
                running = list(active.values())
            for item in running:
                if item.run_dir is not None:
                    _kill_run(item.run_dir)
            try:   # the killed runs still finish their records (summary, status) in their threads
                while not all(e.is_set() for e in finished):
                    time.sleep(0.1)
            except (KeyboardInterrupt, _Terminated):   # asked twice: stop waiting
                log.warning("second interrupt: not waiting for the model runs to finish their records")
            for item in running:
                _mark_interrupted(item, stopped_by)
    finally:
        restore_handlers(old_handlers)
    return runs, stopped_by is not None


def _mark_interrupted(item: ScheduledRun, signame: str) -> None:
    """A run killed by the scheduler ends ``failed`` in its thread (the group died); record why."""
    from onlinemap.runs.store import save_run

    out = item.outcome
    if out is None or out.record.status == "interrupted":
        return
    out.record.status = "interrupted"
    out.record.exit_code = exit_code_for_signal(signame)
    out.record.error = {"message": f"interrupted by {signame}; the scheduler killed the model process group",
                        "hint": "finished samples are kept in samples.jsonl"}
    save_run(out.run_dir, out.record)
