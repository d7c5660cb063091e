"""How long ``om.results()`` takes on a large history: cold (no cache), cached, and after one new run.

Run from the repository root::

    python benchmarks/bench_results_load.py [--runs 10000] [--samples-per-run 50] [--repeat 3] [--json]

It writes ``--runs`` synthetic run folders (a realistic run.json copied from a template with its
ids, model, timestamps and figures varied, and ``--samples-per-run`` lines of samples.jsonl each)
into a temporary results folder, then times, each in a fresh interpreter so nothing is warm in
memory (the page cache is warm after the first read, as it is on a pod):

* ``uncached``: the plain reader (``load_runs_frame(cache=False)``), what every call cost before;
* ``cold``: the first cached load (reads everything and writes ``.cache/``);
* ``cached``: a load with nothing changed (the target: under 2 s for runs *and* samples);
* ``one new run``: a load after one run folder was added (incremental update).

Rows cover ``om.results()`` (runs) and ``om.results(samples=True)`` (samples). The target from
issue 7 is the cached figure: 10,000 runs + 500,000 sample rows in under 2 s each.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TEMPLATE_HOST = {"hostname": "pod-1", "os": "Linux", "os_release": "5.15", "kernel": "5.15.0", "arch": "x86_64",
                 "python": "3.10.12", "python_implementation": "CPython", "python_executable": "/usr/bin/python3",
                 "cpu_model": "AMD EPYC 7763", "cpu_logical_cores": 32, "cpu_affinity_cores": 32,
                 "cgroup_cpu_limit": 16.0, "ram_total_mb": 257000, "cgroup_memory_limit_mb": 128000,
                 "container": True, "container_evidence": "/.dockerenv", "pod": {"id": "abc123", "provider": "runpod"}}


def _run_json(i: int, model: str, created: str, run_id: str, rng: random.Random) -> dict:
    p50 = rng.uniform(50, 400)
    lat = {k: round(p50 * f, 3) for k, f in (("mean", 1.02), ("p50", 1.0), ("p90", 1.1), ("p95", 1.15),
                                               ("p99", 1.3), ("stdev", 0.05), ("min", 0.9), ("max", 1.5))}
    lat.update(count=50)
    return {
        "run_id": run_id, "model": model, "status": "ok", "schema_version": 1, "kind": "bench",
        "created": created, "finished": created,
        "settings": {"kind": "bench", "samples": 50, "warmup": 5, "min_samples": 50, "min_duration_s": 10.0,
                     "dataroot": "/workspace/data/nuscenes", "version": "v1.0-trainval", "device": "cuda:0",
                     "sample_tokens": [], "scenes": [], "timeout_s": None, "inactivity_s": 600.0, "timer": "wall",
                     "telemetry": True, "telemetry_period_s": 0.02, "telemetry_csv": True, "exclusive": False,
                     "busy_gpu_mb": 500.0, "echo": False, "options": {}, "tags": {}, "sample_count_planned": 55},
        "model_spec": {"task": "map", "outputs": ["map_elements"], "env_kind": "conda", "temporal": False,
                       "repo": {"url": "https://github.com/hustvl/MapTR", "commit": "a" * 40},
                       "config": "projects/configs/maptr/maptr_tiny_r50_24e.py",
                       "checkpoint": {"file": "maptr_tiny_r50_24e.pth", "sha256": "b" * 64}},
        "env": {"kind": "conda", "python": "/workspace/onlinemap/envs/x/bin/python", "prefix": "/workspace/x",
                "manager": "micromamba", "lock_hash": "c" * 16},
        "driver": {"pid": 1000 + i, "pid_create_time": 1.7e9, "hostname": "pod-1", "onlinemap": "0.1.0",
                   "python": "3.10.12"},
        "host": TEMPLATE_HOST,
        "gpu": {"available": True, "name": "NVIDIA A100-SXM4-80GB", "uuid": f"GPU-{i:08d}", "driver": "535.104",
                "cuda_driver": "12.2", "compute_capability": "8.0", "memory_total_mb": 81920, "index": 0},
        "versions": {"python": "3.8.16", "torch": "1.9.1+cu111", "torch_cuda": "11.1", "cudnn": 8005,
                     "cuda_available": True, "packages": {"mmcv-full": "1.4.0", "mmdet": "2.14.0",
                                                          "mmdet3d": "0.17.2"}},
        "summary": {"samples": {"total": 55, "warmup": 5, "measured": 50, "failed": 0},
                    "latency_ms": {"forward": {**lat, "fps": round(1000 / p50, 2)}, "data": lat, "convert": lat,
                                   "total": lat, "forward_cuda": None},
                    "fps": round(1000 / p50, 2), "import_s": 3.1, "model_load_s": 12.4, "first_call_ms": 900.0,
                    "wall_s": 40.0,
                    "memory": {"torch_max_allocated_mb": rng.uniform(1000, 6000), "torch_max_reserved_mb": 7000.0,
                               "torch_reason": None, "model_alloc_mb": 300.0, "nvml_device_used_peak_mb": 9000.0,
                               "nvml_device_baseline_mb": 500.0, "nvml_device_delta_peak_mb": 8500.0,
                               "nvml_device_reason": None, "nvml_process_used_peak_mb": None,
                               "nvml_process_reason": "container hides process list", "host_rss_peak_mb": 4000.0,
                               "host_cpu_time_s": 60.0, "host_reason": None},
                    "telemetry": {"samples": 2000, "period_s": 0.02},
                    "predictions": {"valid": 55, "invalid": 0, "first_error": None}},
        "error": None, "exit_code": 0, "tags": {},
    }


def write_history(root: Path, runs: int, samples_per_run: int, seed: int = 0) -> None:
    """``runs`` run folders under ``root`` (results layout), each with run.json and samples.jsonl."""
    rng = random.Random(seed)
    models = ["MapTR", "PETR", "StreamPETR", "TopoMLP", "VAD", "reference"]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(runs):
        model = models[i % len(models)]
        day, sec = divmod(i, 86400 // 8)
        created = f"2025-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}T00:00:00.000+00:00"
        run_id = f"2025{1 + day // 28 % 12:02d}{1 + day % 28:02d}-{sec:06d}-{model}-{i:06x}"
        d = root / run_id
        d.mkdir()
        (d / "run.json").write_text(json.dumps(_run_json(i, model, created, run_id, rng), indent=2))
        lines = []
        for k in range(samples_per_run):
            fwd = rng.uniform(50, 400)
            lines.append(json.dumps({"index": k, "sample_token": f"{rng.getrandbits(128):032x}",
                                     "scene_token": f"{k // 40:032x}", "warmup": k < 5, "ok": True,
                                     "data_ms": round(fwd / 5, 4), "forward_ms": round(fwd, 4),
                                     "forward_cuda_ms": None, "convert_ms": 0.8, "total_ms": round(fwd * 1.3, 4),
                                     "t": 1.7e9 + k}))
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")


def _time_load(root: Path, samples: bool, cache: bool) -> tuple[float, int]:
    """Seconds for one load in a fresh interpreter (imports excluded), and the row count."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); import pandas\n"
        "from onlinemap.runs.load import load_runs_frame, load_samples_frame\n"
        "from pathlib import Path\n"
        "f = load_samples_frame if sys.argv[3] == '1' else load_runs_frame\n"
        "t = time.perf_counter(); df = f(Path(sys.argv[2]), cache=sys.argv[4] == '1')\n"
        "print(time.perf_counter() - t, len(df))\n")
    out = subprocess.run([sys.executable, "-c", code, str(REPO), str(root), "1" if samples else "0",
                          "1" if cache else "0"], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--samples-per-run", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="cached loads to time (the median is reported)")
    ap.add_argument("--skip-uncached", action="store_true", help="skip the plain reader (slow on big histories)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="onlinemap-bench-results-"))
    root = tmp / "results"
    try:
        t = time.perf_counter()
        write_history(root, args.runs, args.samples_per_run)
        write_s = time.perf_counter() - t
        rows = {}
        for samples in (False, True):
            what = "samples" if samples else "runs"
            r = {}
            if not args.skip_uncached:
                r["uncached_s"], r["rows"] = _time_load(root, samples, cache=False)
            r["cold_s"], r["rows"] = _time_load(root, samples, cache=True)
            cached = sorted(_time_load(root, samples, cache=True)[0] for _ in range(args.repeat))
            r["cached_s"] = cached[len(cached) // 2]
            extra = root / "29991231-000000-reference-ffffff"
            shutil.copytree(next(p for p in root.iterdir() if not p.name.startswith(".")), extra)
            run = json.loads((extra / "run.json").read_text())
            run["run_id"] = extra.name
            (extra / "run.json").write_text(json.dumps(run))
            r["one_new_run_s"], _ = _time_load(root, samples, cache=True)
            shutil.rmtree(extra)
            _time_load(root, samples, cache=True)  # back to the plain history for the next row
            rows[what] = r
        report = {"runs": args.runs, "samples_per_run": args.samples_per_run, "write_history_s": round(write_s, 1),
                  "cpu": os.cpu_count(), "results": rows}
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"history: {args.runs} runs x {args.samples_per_run} samples (written in {write_s:.0f} s)")
            print(f"{'frame':8} {'rows':>8} {'uncached':>9} {'cold':>7} {'cached':>7} {'+1 run':>7}")
            for what, r in rows.items():
                unc = f"{r['uncached_s']:.2f}s" if "uncached_s" in r else "-"
                print(f"{what:8} {r['rows']:>8} {unc:>9} {r['cold_s']:>6.2f}s {r['cached_s']:>6.2f}s "
                      f"{r['one_new_run_s']:>6.2f}s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
