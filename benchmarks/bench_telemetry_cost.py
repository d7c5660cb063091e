"""The reference model with telemetry on and off: what the sampler costs a real forward, and the GPU's state.

This is issue 16's check for a GPU machine, prepared so that it runs in one call there
(``scripts/device-check.sh run``, docs/measurement.md section 4); on a machine without a GPU it
runs the same way on the CPU (the GPU-state block is then null with its reason). Unlike
``bench_overhead.py`` (a sleeping or spinning stand-in forward, the harness against a bare loop),
the forward here is the reference model's real torch network, so the sampler's NVML and /proc
reads compete with real kernel launches and a real synchronize.

Both sides are ``om.test("reference")`` with the same samples, warm-up and options; they differ
only in ``telemetry``. Every side runs as a fresh interpreter in its own process session (with
``sched_autogroup_enabled=1`` a session is its own CPU-share group), the order is rotated every
repetition, and each figure is the median over repetitions with its min-max spread. The forward
ratio is paired: each repetition's telemetry-on forward p50 over the telemetry-off one of the same
rotation, so a load change between rotations cancels. The GPU-state block, throttling and energy
printed at the end are those of the last telemetry-on run; ``--out DIR`` also writes every
repetition's figures (``summary.json``) and one ``run.json`` of each side there.

    python benchmarks/bench_telemetry_cost.py [--device auto|cpu|cuda:N] [--samples 200] [--reps 5]
        [--warmup 10] [--timer wall|cuda-events] [--option KEY=VALUE ...] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO, bench_home, interval_ms, spread  # noqa: E402

SIDES = ("off", "on")
STATE_KEYS = ("gpu_state_before", "gpu_state_after", "gpu_state_reason", "throttled", "throttle_reasons",
              "throttle_ticks", "throttle_checked_ticks", "throttle_reason", "energy_j", "energy_per_sample_j",
              "energy_samples", "energy_reason", "sampler_cpu_pct")


def side(telemetry: bool, n: int, warmup: int, device: str, timer: str, options: dict, keep: Path | None) -> dict:
    """One run in this (fresh) interpreter; the figures the report needs, as a dict."""
    import onlinemap as om

    out = om.test("reference", samples=n, warmup=warmup, device=device, telemetry=telemetry, timer=timer,
                  echo=False, options=options, min_samples=1, min_duration_s=0)
    rec = out.record
    if out.status != "ok":
        raise SystemExit(f"reference run failed ({out.status}): {(rec.error or {}).get('message')}")
    summary = rec.summary or {}
    forward = summary["latency_ms"]["forward"]
    cuda = (summary["latency_ms"].get("forward_cuda") or {})
    rows = [json.loads(line) for line in (out.run_dir / "samples.jsonl").read_text().splitlines()]
    ends = [r["t"] for r in rows if not r["warmup"]]
    tele = summary.get("telemetry") or {}
    res = {"forward_p50_ms": forward["p50"], "forward_mean_ms": forward["mean"], "forward_p90_ms": forward["p90"],
           "forward_cv_pct": forward.get("cv_pct"), "forward_cuda_p50_ms": cuda.get("p50"),
           "interval_ms": interval_ms(ends), "device": rec.settings.get("device"),
           "memory": summary.get("memory"), "gpu": rec.gpu, "versions": rec.versions,
           "telemetry": {k: tele.get(k) for k in STATE_KEYS} if telemetry else None}
    if keep is not None:
        shutil.copyfile(out.run_dir / "run.json", keep)
    shutil.rmtree(out.run_dir)   # the temporary home stays small between repetitions
    return res


def run_side(name: str, args: argparse.Namespace, keep: Path | None) -> dict:
    """One side in a fresh interpreter in its own session."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_side", name, "--samples", str(args.samples),
           "--warmup", str(args.warmup), "--device", args.device, "--timer", args.timer]
    for opt in args.option:
        cmd += ["--option", opt]
    if keep is not None:
        cmd += ["--_keep", str(keep)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, start_new_session=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"side telemetry-{name} failed (exit {proc.returncode}); its error is above")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def _options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--option {pair!r}: expected KEY=VALUE, e.g. --option image_height=448")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def report(res: dict, args: argparse.Namespace) -> dict:
    off, on = res["off"], res["on"]
    ratio = [b["forward_p50_ms"] / a["forward_p50_ms"] for a, b in zip(off, on)]
    last = on[-1]
    print(f"\nreference model on {last['device']}, {args.samples} measured samples (+{args.warmup} warm-up), "
          f"timer {args.timer}; median [min-max] over {len(on)} rotated repetitions")
    print(f"{'telemetry':<10} {'forward p50 ms':>24} {'forward mean ms':>24} {'cuda-event p50 ms':>24} "
          f"{'interval ms':>24} {'torch peak MiB':>16}")
    for name in SIDES:
        rows = res[name]
        peak = [(r["memory"] or {}).get("torch_max_allocated_mb") for r in rows]
        print(f"{name:<10} {spread([r['forward_p50_ms'] for r in rows], '%.3f'):>24} "
              f"{spread([r['forward_mean_ms'] for r in rows], '%.3f'):>24} "
              f"{spread([r['forward_cuda_p50_ms'] for r in rows], '%.3f'):>24} "
              f"{spread([r['interval_ms'] for r in rows], '%.3f'):>24} {spread(peak, '%.1f'):>16}")
    print(f"forward p50 ratio, telemetry on / off, paired: {spread(ratio, '%.4f')}")
    gpu = last["gpu"] or {}
    if gpu.get("available") is False:
        print(f"GPU: none ({gpu.get('reason')})")
    else:
        print("GPU: " + json.dumps({k: gpu.get(k) for k in ("name", "compute_capability", "driver_version",
                                                           "cuda_driver_version", "uuid")}))
    print("versions: " + json.dumps({k: (last["versions"] or {}).get(k)
                                     for k in ("python", "torch", "torch_cuda", "cudnn")}))
    print("the last telemetry-on run's GPU state, throttling and energy:")
    print(json.dumps(last["telemetry"], indent=2, sort_keys=True))
    return {"ratio_on_off_forward_p50": ratio, "sides": res}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda:0 if a GPU is seen), cpu or cuda:N")
    parser.add_argument("--samples", type=int, default=200, help="measured samples per run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--timer", choices=("wall", "cuda-events"), default="wall")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a reference-model option (envs/reference/demo.py DEFAULTS), e.g. image_height=448")
    parser.add_argument("--out", type=Path, default=None,
                        help="write summary.json and one run.json of each side here")
    parser.add_argument("--_side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--_keep", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = _options(args.option)
    if args._side:
        res = side(args._side == "on", args.samples, args.warmup, args.device, args.timer, options, args._keep)
        print(json.dumps(res))
        return
    if args.reps < 1 or args.samples < 3 or args.warmup < 0:
        parser.error("--reps must be >= 1, --samples >= 3 and --warmup >= 0")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    home = bench_home(10, max(2, -(-(args.samples + args.warmup) // 10)), prefix="onlinemap-bench-telemetry-")
    print(f"synthetic dataset for {args.samples + args.warmup} samples written in {time.perf_counter() - t0:.1f} s",
          flush=True)
    try:
        with open("/proc/loadavg") as fh:
            print(f"load average {' '.join(fh.read().split()[:3])}; {os.cpu_count()} CPUs; options {options or 'defaults'}",
                  flush=True)
        res: dict = {name: [] for name in SIDES}
        for r in range(args.reps):
            order = SIDES[r % 2:] + SIDES[:r % 2]   # rotate who goes first
            for name in order:
                last = r == args.reps - 1 and args.out is not None
                res[name].append(run_side(name, args, args.out / f"run-telemetry-{name}.json" if last else None))
            print(f"repetition {r + 1}/{args.reps}: forward p50 off {res['off'][-1]['forward_p50_ms']:.3f} ms, "
                  f"on {res['on'][-1]['forward_p50_ms']:.3f} ms", flush=True)
        summary = report(res, args)
        if args.out is not None:
            summary["options"] = options
            summary["args"] = {"samples": args.samples, "warmup": args.warmup, "reps": args.reps,
                               "device": args.device, "timer": args.timer}
            (args.out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
