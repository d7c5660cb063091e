"""Driver + harness overhead per sample, and a persistent worker vs one process per sample.

Two measurements, side by side in one run, rounds interleaved (ABAB…) so that machine noise
hits every variant alike; medians over rounds are reported, as ratios:

1. Per-sample cost through the whole pipeline (driver launches the worker, the worker streams
   samples and writes samples.jsonl + predictions.jsonl, telemetry on or off) against a bare
   in-process loop over the same reference adapter (prepare -> forward -> convert, nothing
   written). The per-sample cost is the steady cadence: time between the ends of consecutive
   measured samples. The reference model is sized for a ~20 ms forward on a 2-core CPU.
   Targets: overhead <= 1 ms and <= 2 % per sample.
2. 20 samples through one persistent worker (launch + load once) against 20 standalone
   `python envs/reference/demo.py --sample-token …` processes (load per sample, what "one
   container per sample" costs). Target: >= 10x faster.

    python benchmarks/bench_overhead.py [--samples 100] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO, bench_home, median  # noqa: E402

OPTIONS = {"image_height": 256, "image_width": 448, "width": 72}   # ~20 ms forward on the 2-core CPU here (quiet machine)


def bare_loop(samples: list[dict], warmup: int) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_reference", REPO / "envs" / "reference" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import os

    adapter = mod.Adapter({"dataroot": os.environ["NUSCENES_ROOT"], "version": "v1.0-mini", "device": "cpu",
                           "options": OPTIONS})
    adapter.load()
    ends, forwards = [], []
    for i, sample in enumerate(samples):
        inputs = adapter.prepare(sample)
        t0 = time.perf_counter()
        raw = adapter.forward(inputs)
        t1 = time.perf_counter()
        adapter.convert(raw, sample)
        if i >= warmup:
            ends.append(time.perf_counter())
            forwards.append((t1 - t0) * 1000)
    cadence = (ends[-1] - ends[0]) / (len(ends) - 1) * 1000
    return {"cadence_ms": cadence, "forward_p50_ms": median(forwards)}


def harness_run(n: int, warmup: int, telemetry: bool) -> dict:
    import onlinemap as om

    out = om.test("reference", samples=n, warmup=warmup, device="cpu", telemetry=telemetry, echo=False,
                  options=OPTIONS)
    assert out.status == "ok", out.record.error
    rows = [json.loads(line) for line in (out.run_dir / "samples.jsonl").read_text().splitlines()]
    ends = [r["t"] for r in rows if not r["warmup"]]
    cadence = (ends[-1] - ends[0]) / (len(ends) - 1) * 1000
    return {"cadence_ms": cadence, "forward_p50_ms": out.record.summary["latency_ms"]["forward"]["p50"],
            "write_p50_ms": out.record.summary["latency_ms"]["write"]["p50"],
            "sampler_cpu_pct": (out.record.summary.get("telemetry") or {}).get("sampler_cpu_pct")}


def persistent_vs_per_process(count: int) -> dict:
    import os

    import onlinemap as om
    from onlinemap.harness import nuscenes_index

    t0 = time.perf_counter()
    out = om.test("reference", samples=count, warmup=0, device="cpu", telemetry=False, echo=False, options=OPTIONS)
    persistent = time.perf_counter() - t0
    assert out.status == "ok"
    tokens = [s["token"] for s in nuscenes_index.ordered_samples(os.environ["NUSCENES_ROOT"], "v1.0-mini")[:count]]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for token in tokens:
            subprocess.run([sys.executable, str(REPO / "envs" / "reference" / "demo.py"), "--dataroot",
                            os.environ["NUSCENES_ROOT"], "--sample-token", token, "--device", "cpu",
                            "--out", str(Path(tmp) / "p.json")], check=True, capture_output=True)
    per_process = time.perf_counter() - t0
    return {"persistent_s": persistent, "per_process_s": per_process}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-process-samples", type=int, default=20)
    args = parser.parse_args()
    import os

    bench_home()
    from onlinemap.harness import nuscenes_index

    samples = nuscenes_index.ordered_samples(os.environ["NUSCENES_ROOT"], "v1.0-mini")[:args.samples + args.warmup]
    results: dict[str, list[dict]] = {"bare": [], "harness+telemetry": [], "harness": []}
    for r in range(args.rounds):
        results["bare"].append(bare_loop(samples, args.warmup))
        results["harness+telemetry"].append(harness_run(args.samples, args.warmup, telemetry=True))
        results["harness"].append(harness_run(args.samples, args.warmup, telemetry=False))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v[-1]['cadence_ms']:.2f} ms" for k, v in results.items()), flush=True)
    bare = median([x["cadence_ms"] for x in results["bare"]])
    bare_fwd = median([x["forward_p50_ms"] for x in results["bare"]])
    print(f"\nper-sample cadence over {args.samples} samples, median of {args.rounds} interleaved rounds "
          f"(bare forward p50 {bare_fwd:.2f} ms)")
    print(f"{'variant':<20} {'cadence ms':>10} {'overhead ms':>12} {'overhead %':>11} {'fwd p50 ratio':>14}")
    print(f"{'bare in-process':<20} {bare:>10.2f} {'-':>12} {'-':>11} {'1.000':>14}")
    for name in ("harness", "harness+telemetry"):
        cad = median([x["cadence_ms"] for x in results[name]])
        fwd = median([x["forward_p50_ms"] for x in results[name]])
        print(f"{name:<20} {cad:>10.2f} {cad - bare:>12.2f} {(cad / bare - 1) * 100:>10.1f}% {fwd / bare_fwd:>14.3f}")
    write = median([x["write_p50_ms"] for x in results["harness"]])
    print(f"harness bookkeeping inside the model process (prediction encode + write, exact): p50 {write:.3f} ms "
          f"= {write / bare * 100:.2f} % of the bare per-sample time")
    cpu = [x["sampler_cpu_pct"] for x in results["harness+telemetry"] if x["sampler_cpu_pct"] is not None]
    if cpu:
        print(f"telemetry sampler CPU: {median(cpu):.2f} % of one core (median)")
    pp = persistent_vs_per_process(args.per_process_samples)
    print(f"\n{args.per_process_samples} samples: persistent worker {pp['persistent_s']:.2f} s, one process per sample "
          f"{pp['per_process_s']:.2f} s -> {pp['per_process_s'] / pp['persistent_s']:.1f}x faster")


if __name__ == "__main__":
    main()
