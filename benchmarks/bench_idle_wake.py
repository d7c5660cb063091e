"""What the first operations after an idle stretch cost on this machine, against the same ones hot.

Why it matters: the overhead benchmark's sleep forward leaves the model's CPU idle for 20 ms, and
on a virtual machine (this workplace's build machines are nested microVMs) a vCPU that idled comes
back with cold caches and TLBs, so the harness's few system calls between two forwards cost many
times what they cost in a tight loop. A GPU model does not idle there: ``torch.cuda.synchronize()``
spins under CUDA's default scheduling. Run this on the machine you benchmark on to see how large
the effect is there (``bench_overhead.py --wait sleep spin`` measures the harness under both waits;
on this build machine its overhead came out the same either way: docs/measurement.md, seventh pass).

Each operation is timed once right after ``time.sleep(idle)`` ("after idle"), and in a loop of
2,000 back to back ("hot"); the kinds are interleaved so a load change hits all of them alike.
Printed: median [10th-90th percentile] microseconds.

    python benchmarks/bench_idle_wake.py [--idle-ms 20] [--rounds 100]
"""
from __future__ import annotations

import argparse
import marshal
import os
import statistics
import time


def _operations():
    r, w = os.pipe()
    os.set_blocking(r, False)
    line = b"x" * 7500            # about one prediction's frame
    pred = {"detections_3d": [{"center": (1.25 * i, -3.5, 0.75), "size": (4.5, 1.9, 1.6), "yaw": 0.1 * i,
                               "score": 0.5, "label": "car"} for i in range(20)],
            "map_elements": [{"points": [(0.5 * j, 1.5 * j) for j in range(20)], "label": "divider", "score": 0.5}
                             for _ in range(10)]}

    def drain():
        try:
            while os.read(r, 1 << 20):
                pass
        except BlockingIOError:
            pass

    def pipe_write():             # the drain is timed too, in both columns alike
        os.write(w, line)
        drain()

    return {
        "perf_counter (vDSO, no system call)": time.perf_counter,
        "getppid (the cheapest system call)": os.getppid,
        "write 7.5 KB to a pipe + drain": pipe_write,
        "marshal.dumps of a 20-box, 10-polyline prediction": lambda: marshal.dumps(pred),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    ops = _operations()
    cold = {name: [] for name in ops}
    for _ in range(args.rounds):
        for name, op in ops.items():
            time.sleep(args.idle_ms / 1000.0)
            t0 = time.perf_counter()
            op()
            cold[name].append((time.perf_counter() - t0) * 1e6)
    hot = {}
    for name, op in ops.items():
        t0 = time.perf_counter()
        for _ in range(2000):
            op()
        hot[name] = (time.perf_counter() - t0) / 2000 * 1e6

    def spread(v):
        q = statistics.quantiles(v, n=10)
        return f"{statistics.median(v):8.1f} [{q[0]:.1f}-{q[-1]:.1f}]"

    print(f"{os.cpu_count()} CPUs; each kind {args.rounds} times after {args.idle_ms:g} ms idle; microseconds")
    print(f"{'operation':<52} {'after idle':>24} {'hot':>8} {'ratio':>7}")
    for name in ops:
        print(f"{name:<52} {spread(cold[name]):>24} {hot[name]:8.2f} {statistics.median(cold[name]) / hot[name]:6.1f}x")


if __name__ == "__main__":
    main()
