"""What the telemetry sampler costs: CPU % of one core at its default period, over ~5 s per row.

Run from the repository root::

    python benchmarks/bench_sampler.py [--duration 5] [--period 0.02] [--host-every 5]
        [--host-only-period 0.5] [--json]

Each row samples a real process tree (a sleeping child with two sleeping grandchildren, the shape
of ``micromamba run`` -> python -> worker) for ``--duration`` seconds and reports

* ``thread CPU %``: the sampler thread's own CPU time (``sampler_cpu_s``, from
  ``time.thread_time()`` inside the thread) / wall time;
* ``process CPU %``: this whole process's CPU time (``time.process_time()``) over the same window
  / wall time, with the main thread asleep: what the sampler adds to the driver, as the OS sees it.

Rows: ``idle`` (no sampler: the floor), ``cpu`` (host tree only, GPU skipped: one wake-up per
``--host-only-period``), ``nvml`` (the real
driver; only where one exists), and ``const-nvml``: an in-script object that answers every NVML
call with constants, i.e. the Python side of a GPU tick without the driver's cost. On a machine
without a GPU the ``nvml`` row says why it is missing; real driver calls (memory info, process list
ioctls) add to ``const-nvml`` there.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onlinemap.telemetry.nvml import MemoryInfo, ProcessInfo, load_nvml  # noqa: E402
from onlinemap.telemetry.sampler import (DEFAULT_HOST_EVERY, DEFAULT_HOST_ONLY_PERIOD_S,  # noqa: E402
                                         DEFAULT_PERIOD_S, TelemetrySampler)

TREE = ("import subprocess, sys, time\n"
        "for _ in range(2): subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "time.sleep(600)\n")


class ConstNvml:
    """Answers like NVML with constants: measures our per-tick Python cost, not the driver's."""

    memory_struct = "v2"

    def init(self): pass
    def shutdown(self): pass
    def device_count(self): return 1
    def handle_by_index(self, index): return "h0"
    def uuid(self, handle): return "GPU-00000000-bench"
    def pci_bus_id(self, handle): return "00000000:01:00.0"
    def name(self, handle): return "const"
    def memory_info(self, handle): return MemoryInfo(80 << 30, 3 << 30, 77 << 30, 1 << 20, "v2")
    def running_processes(self, handle): return [ProcessInfo(1, 1 << 30, ("compute",))]
    def utilization_pct(self, handle): return 50
    def power_w(self, handle): return 250.0
    def clock_event_reasons(self, handle): return 0

    def energy_mj(self, handle):
        self._energy = getattr(self, "_energy", 10**9) + 5   # a counter that rises, as NVML's
        return self._energy


def measure(label: str, device: str | None, nvml, args) -> dict:
    tree = subprocess.Popen([sys.executable, "-c", TREE], start_new_session=True)
    time.sleep(0.5)  # let the grandchildren start
    try:
        sampler = None
        if device is not None:
            sampler = TelemetrySampler(device, period_s=args.period, host_every=args.host_every,
                                       host_only_period_s=args.host_only_period, nvml=nvml, env={})
            sampler.take_baseline()
        cpu0, t0 = time.process_time(), time.monotonic()
        if sampler is not None:
            sampler.start(tree.pid)
        time.sleep(args.duration)
        rec = sampler.stop() if sampler is not None else None
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    finally:
        os.killpg(tree.pid, signal.SIGKILL)
        tree.wait()
    row = {"config": label, "period_s": args.period if rec else None,
           "host_period_s": rec["host_period_s"] if rec else None,
           "samples": rec["samples"] if rec else 0, "host_walks": rec["host_samples"] if rec else 0,
           "sampler_cpu_s": rec["sampler_cpu_s"] if rec else None,
           "thread_cpu_pct": rec["sampler_cpu_pct"] if rec else None,
           "process_cpu_pct": round(100.0 * cpu / wall, 3), "wall_s": round(wall, 3)}
    if rec:
        row["gpu_reason"] = rec["nvml_device_reason"]
        broken = [n for n in rec["notes"] if n.startswith("sampler error")]
        if broken:   # a sampler that died measures nothing: no row, one line saying why
            raise SystemExit(f"{label}: {broken[0]}")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per row (default 5)")
    ap.add_argument("--period", type=float, default=DEFAULT_PERIOD_S)
    ap.add_argument("--host-every", type=int, default=DEFAULT_HOST_EVERY)
    ap.add_argument("--host-only-period", type=float, default=DEFAULT_HOST_ONLY_PERIOD_S,
                    help="seconds between host readings when there is no GPU to read")
    ap.add_argument("--json", action="store_true", help="print rows as JSON")
    args = ap.parse_args()

    rows = [measure("idle (no sampler)", None, None, args),
            measure("cpu (host tree only)", "cpu", None, args)]
    nv, reason = load_nvml()
    if nv is not None:
        nv.shutdown()
        rows.append(measure("nvml (real driver)", "cuda:0", None, args))
    else:
        rows.append({"config": "nvml (real driver)", "skipped": reason})
    rows.append(measure("const-nvml (no driver cost)", "cuda:0", ConstNvml(), args))

    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"telemetry sampler cost: period {args.period * 1000:.0f} ms, host tree every "
          f"{args.host_every} ticks (every {args.host_only_period:g} s without a GPU), "
          f"{args.duration:.0f} s per row, {os.cpu_count()} CPUs")
    head = f"{'config':30} {'samples':>8} {'host':>6} {'thread cpu s':>13} {'thread %':>9} {'process %':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "skipped" in r:
            print(f"{r['config']:30} skipped: {r['skipped']}")
            continue
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"{r['config']:30} {r['samples']:>8} {r['host_walks']:>6} "
              f"{fmt(r['sampler_cpu_s'], '.4f'):>13} {fmt(r['thread_cpu_pct'], '.2f'):>9} "
              f"{r['process_cpu_pct']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
