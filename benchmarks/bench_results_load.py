"""How long ``om.results()`` takes on a large history: cold (no cache), cached, and after one new run.

Run from the repository root::

    python benchmarks/bench_results_load.py [--runs 100000] [--samples-per-run 50] [--repeat 3]
        [--tree DIR] [--json]

It writes ``--runs`` synthetic run folders (a realistic run.json copied from a template with its
ids, model, timestamps and figures varied, and ``--samples-per-run`` lines of samples.jsonl each)
into a results folder, then times, each in a fresh interpreter so nothing is warm in memory (the
page cache is warm after the first read, as it is on a pod), with the child's peak RSS:

* ``plain``: ``json.load`` of every run.json + ``pd.json_normalize`` (the bar the first load must
  meet: the simplest reader anyone would write; samples: ``json.loads`` of every line + DataFrame;
  it runs in one process, while a first load builds its pieces in a pool of one process per
  usable CPU, so the comparison is per machine, not per core: CPU seconds are printed beside wall);
* ``uncached``: our reader without a cache (``load_runs_frame(cache=False)``);
* ``cold``: the first cached load (reads everything and writes ``.cache/``);
* ``cached``: a load with nothing changed (target: under 2 s);
* ``+1 run``: a load after one run folder was added (incremental update; target <= 1.2x cached),
  ``--repeat`` times, one more run each time;
* ``onlinemap results``: the whole CLI command (interpreter start included; target under 1 s).

Generating 100,000 runs takes minutes: ``--tree DIR`` keeps the generated history in ``DIR``
(reused when its marker matches the arguments; delete it afterwards), otherwise a temporary
folder is used and removed.
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


_LOAD = """
import sys, time, resource; sys.path.insert(0, sys.argv[1]); import pandas
from pathlib import Path
root, what, how = Path(sys.argv[2]), sys.argv[3], sys.argv[4]
if how == "plain":
    import json, os
    t, c = time.perf_counter(), time.process_time()
    names = sorted((e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")), reverse=True)
    if what == "runs":
        recs = []
        for n in names:
            with open(os.path.join(root, n, "run.json")) as fh:
                recs.append(json.load(fh))
        df = pandas.json_normalize(recs)
    else:
        rows = []
        for n in names:
            with open(os.path.join(root, n, "samples.jsonl")) as fh:
                rows.extend(json.loads(line) for line in fh if line.strip())
        df = pandas.DataFrame(rows)
else:
    from onlinemap.runs.load import load_runs_frame, load_samples_frame
    f = load_samples_frame if what == "samples" else load_runs_frame
    t, c = time.perf_counter(), time.process_time()
    df = f(root, cache=how == "cache")
wall, cpu = time.perf_counter() - t, time.process_time() - c
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, len(df), cpu, kids.ru_utime + kids.ru_stime, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, kids.ru_maxrss)
"""


def _child(cmd: list[str], env: dict | None = None) -> tuple[str, float]:
    """Run ``cmd``; (stdout, wall seconds)."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO)
        wall = time.perf_counter() - t
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err.read().decode()[-2000:]}")
    return proc.stdout.decode(), wall


def _time_load(root: Path, what: str, how: str) -> dict:
    """One load in a fresh interpreter (imports excluded): wall and CPU seconds (CPU: the process
    itself + its pool workers), rows, peak RSS MiB of the process and the largest worker's."""
    out, _wall = _child([sys.executable, "-c", _LOAD, str(REPO), str(root), what, how])
    wall, rows, cpu, kids_cpu, rss, kids_rss = out.split()[-6:]
    return {"s": round(float(wall), 3), "rows": int(rows), "cpu_s": round(float(cpu) + float(kids_cpu), 3),
            "workers_cpu_s": round(float(kids_cpu), 3), "rss_mb": round(int(rss) / 1024.0),
            "workers_rss_mb": round(int(kids_rss) / 1024.0)}   # Linux: ru_maxrss in KiB


def _time_cli(root: Path, limit: int = 30) -> float:
    """Wall seconds of ``onlinemap results`` (interpreter start, imports and printing included)."""
    env = dict(os.environ, ONLINEMAP_RESULTS=str(root), PYTHONPATH=str(REPO))
    return _child([sys.executable, "-m", "onlinemap", "results", "--limit", str(limit)], env)[1]


def _spread(values: list[float]) -> dict:
    values = sorted(values)
    return {"median": values[len(values) // 2], "min": values[0], "max": values[-1], "n": len(values)}


_MARKER = ".bench-history.json"


def _history(tree: Path | None, runs: int, samples_per_run: int) -> tuple[Path, float, bool]:
    """The results folder to measure: ``tree`` reused when its marker matches, else (re)generated."""
    want = {"runs": runs, "samples_per_run": samples_per_run, "seed": 0, "generator": 2}
    if tree is None:
        root = Path(tempfile.mkdtemp(prefix="onlinemap-bench-results-")) / "results"
    else:
        root = tree / "results"
        try:
            if json.loads((tree / _MARKER).read_text()) == want:
                shutil.rmtree(root / ".cache", ignore_errors=True)
                return root, 0.0, True
        except (OSError, ValueError):
            pass
        shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    write_history(root, runs, samples_per_run)
    if tree is not None:
        (tree / _MARKER).write_text(json.dumps(want))
    return root, time.perf_counter() - t, False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--samples-per-run", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="cached loads, +1 run loads and `onlinemap results` runs to time (median and min-max are reported)")
    ap.add_argument("--skip-uncached", action="store_true", help="skip the plain readers (slow on big histories)")
    ap.add_argument("--frames", nargs="+", choices=("runs", "samples"), default=["runs", "samples"])
    ap.add_argument("--tree", type=Path, default=None,
                    help="keep the generated history here and reuse it next time (delete it afterwards)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    root, write_s, reused = _history(args.tree, args.runs, args.samples_per_run)
    try:
        with open("/proc/loadavg") as fh:
            load = " ".join(fh.read().split()[:3])
        from onlinemap.runs.cache import build_workers

        rows = {}
        for what in args.frames:
            r = {}
            if not args.skip_uncached:
                r["plain"] = _time_load(root, what, "plain")
                r["uncached"] = _time_load(root, what, "nocache")
            r["cold"] = _time_load(root, what, "cache")
            cached = [_time_load(root, what, "cache") for _ in range(args.repeat)]
            r["cached"] = sorted(cached, key=lambda c: c["s"])[len(cached) // 2]
            r["cached"]["spread_s"] = _spread([c["s"] for c in cached])
            # one new run before each load (each lands in the newest piece), then all removed
            source = next(p for p in root.iterdir() if not p.name.startswith("."))
            extras, added = [], []
            for k in range(args.repeat):
                extra = root / f"29991231-{k:06d}-reference-ffffff"
                shutil.copytree(source, extra)
                run = json.loads((extra / "run.json").read_text())
                run["run_id"] = extra.name
                (extra / "run.json").write_text(json.dumps(run))
                extras.append(extra)
                added.append(_time_load(root, what, "cache"))
            r["one_new_run"] = sorted(added, key=lambda c: c["s"])[len(added) // 2]
            r["one_new_run"]["spread_s"] = _spread([c["s"] for c in added])
            for extra in extras:
                shutil.rmtree(extra)
            _time_load(root, what, "cache")  # back to the plain history for the next row
            rows[what] = r
        cli = _spread([_time_cli(root) for _ in range(args.repeat)])
        report = {"runs": args.runs, "samples_per_run": args.samples_per_run, "write_history_s": round(write_s, 1),
                  "history_reused": reused, "cpu": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
                  "build_workers": build_workers(), "load_average": load, "results": rows, "cli_results_s": cli}
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"history: {args.runs} runs x {args.samples_per_run} samples "
                  f"({'reused' if reused else f'written in {write_s:.0f} s'}); load average {load}; "
                  f"{os.cpu_count()} CPUs, {report['cpus_usable']} usable, first loads built by "
                  f"{report['build_workers']} process(es)")
            labels = {"plain": "plain (json.load + json_normalize)", "uncached": "uncached (cache=False)",
                      "cold": "cold (first load, writes the cache)", "cached": f"cached (median of {args.repeat})",
                      "one_new_run": f"+1 run (median of {args.repeat})"}
            for what, r in rows.items():
                print(f"{what} frame, {r['cold']['rows']} rows{'':17} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} "
                      f"{'workers: CPU s, max RSS MiB':>29}")
                for key, label in labels.items():
                    if key not in r:
                        continue
                    c = r[key]
                    workers = f"{c['workers_cpu_s']:.2f}, {c['workers_rss_mb']}" if c["workers_cpu_s"] else "-"
                    print(f"  {label:38} {c['s']:8.2f} {c['cpu_s']:8.2f} {c['rss_mb']:13} {workers:>29}")
                sp, sp1 = r["cached"]["spread_s"], r["one_new_run"]["spread_s"]
                print(f"  wall min-max: cached {sp['min']:.2f}-{sp['max']:.2f} s, +1 run {sp1['min']:.2f}-"
                      f"{sp1['max']:.2f} s; +1 run / cached = "
                      f"{r['one_new_run']['s'] / r['cached']['s']:.2f}"
                      + (f"; cold / plain = {r['cold']['s'] / r['plain']['s']:.2f} (wall), "
                         f"{r['cold']['cpu_s'] / r['plain']['cpu_s']:.2f} (CPU)" if "plain" in r else ""))
            print(f"onlinemap results (--limit 30, whole command): median {cli['median']:.2f} s "
                  f"(min-max {cli['min']:.2f}-{cli['max']:.2f}, n={cli['n']})")
    finally:
        if args.tree is None:
            shutil.rmtree(root.parent, ignore_errors=True)
        else:
            shutil.rmtree(root / ".cache", ignore_errors=True)


if __name__ == "__main__":
    main()
