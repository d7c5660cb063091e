"""What the driver + harness add per sample, measured so that nothing but the harness differs.

Every side runs as a fresh interpreter in its OWN process session (``start_new_session=True``):
with ``kernel.sched_autogroup_enabled=1`` each session is its own CPU-share group, so a bare loop
left in the benchmark's session while the worker got a new one would be scheduled differently
(the old version of this file reported a negative overhead that way). Both sides run the same
adapter (``sleepref``, written into the temporary home: the reference model's outputs, but a
``time.sleep`` forward, so the machine's load cannot inflate the forward), the same sample count
and the same options. ``--wait spin`` makes the forward a busy-wait of the same length instead:
that is what a GPU model's ``torch.cuda.synchronize()`` does under CUDA's default scheduling
(``cudaDeviceScheduleAuto`` spins while the process has fewer contexts than the machine has
logical CPUs), so the model's CPU stays awake and its caches warm between samples; a sleep lets
the CPU idle, and on a virtual machine the first instructions after an idle stretch run many times
slower (docs/measurement.md, the seventh pass). The two waits bracket what a real pod sees.
Order is rotated every repetition; medians over repetitions are printed with their min-max
spread.

Sides:
  bare       the adapter's prepare -> forward -> convert in a loop, nothing written
  harness    ``om.test`` (driver + worker, samples.jsonl + predictions.jsonl), telemetry off
  telemetry  the same with the telemetry sampler (host tree walk, NVML where present)

Figures per side: median interval between the ends of consecutive measured samples (ms), the
CPU time of the whole process tree per sample (``os.wait4`` rusage: the side's interpreter plus
its reaped children, i.e. driver + worker), the driver's own CPU (``time.process_time`` around
``om.test``), the driver's steady CPU per sample (between the runner handing on the measured
sample at 10 % and at 90 % of the run: no start-up, no summary), and post-run time (last sample's
end -> ``om.test`` returned). CPU per sample is also given as the slope between two sample counts,
which removes start-up costs. ``+ms vs bare`` is paired: each repetition's interval minus the
bare side's of the same rotation (median [min-max]), so a load change between rotations cancels.
``--idle-procs N`` adds N sleeping processes to the machine (costs that scale with the process
table show up there). ``--baseline DIR`` adds the harness and telemetry sides of another checkout
(e.g. ``git worktree add /tmp/base <old commit>``), run by this same script with ``DIR`` first on
``sys.path``, interleaved in the same rotation: a before/after measured side by side, in one run,
under one load (two runs back to back moved by ~1 ms at 20 ms under load). The temporary home is
removed at the end.

    python benchmarks/bench_overhead.py [--forward-ms 2 20] [--samples 200 2000] [--reps 5]
        [--wait sleep spin] [--idle-procs N] [--baseline DIR]
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
from benchmarks._common import REPO, bench_home, interval_ms, median, spread  # noqa: E402

WARMUP = 5
SIDES = ("bare", "harness", "telemetry")
WAITS = ("sleep", "spin")
OPTIONS = {"image_height": 32, "image_width": 56, "width": 8, "num_queries": 20, "num_polylines": 10}

SLEEP_PACK_TOML = """schema_version = 1
name = "sleepref"
task = "detection"
outputs = ["detections_3d", "map_elements"]
env_kind = "host"
description = "benchmark only: reference outputs, a sleep (or a busy-wait) as forward"
[config]
default = "inline"
[gpu]
cpu_ok = true
"""

SLEEP_PACK_DEMO = '''"""Benchmark-only adapter: the reference model's outputs, computed once; forward = a sleep or a busy-wait."""
import importlib.util
import os
import time

_spec = importlib.util.spec_from_file_location("_sleepref_reference", {ref!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)


class Adapter(_mod.Adapter):
    name = "sleepref"

    def load(self):
        _mod.Adapter.load(self)
        self.sleep_s = float(self.options.get("sleep_ms", 20)) / 1000.0
        self.spin = self.options.get("wait", "sleep") == "spin"
        self._raw = None

    def prepare(self, sample):
        if self._raw is None:   # one real forward, kept: every later sample converts the same raw
            raw = _mod.Adapter.forward(self, _mod.Adapter.prepare(self, sample))
            self._raw = {{k: v.detach().cpu().numpy() for k, v in raw.items() if hasattr(v, "detach")}}
        rec = self.tables.by_sample[sample["token"]]
        return {{"ego_pose": self.tables.ego_pose[rec["LIDAR_TOP"]["ego_pose_token"]]}}

    def forward(self, inputs):
        if self.spin:          # as CUDA's default synchronize waits: the CPU stays busy
            end = time.perf_counter() + self.sleep_s
            while time.perf_counter() < end:
                pass
        else:
            time.sleep(self.sleep_s)
        raw = dict(self._raw)
        raw["ego_pose"] = inputs["ego_pose"]
        return raw

    def convert(self, raw, sample):
        pred = _mod.convert_outputs(raw, sample["token"], self.options)
        pred["model"] = "sleepref"
        return pred
'''


def side_bare(n: int, options: dict) -> dict:
    import importlib.util

    from onlinemap.harness import nuscenes_index

    spec = importlib.util.spec_from_file_location(
        "bench_sleepref", Path(os.environ["ONLINEMAP_ENVS"]) / "sleepref" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    samples = nuscenes_index.ordered_samples(os.environ["NUSCENES_ROOT"], "v1.0-mini")[:n + WARMUP]
    adapter = mod.Adapter({"dataroot": os.environ["NUSCENES_ROOT"], "version": "v1.0-mini",
                           "device": "cpu", "options": options})
    adapter.load()
    ends = []
    for i, sample in enumerate(samples):
        adapter.convert(adapter.forward(adapter.prepare(sample)), sample)
        if i >= WARMUP:
            ends.append(time.time())
    return {"interval_ms": interval_ms(ends), "post_run_s": 0.0}


def side_harness(n: int, options: dict, telemetry: bool) -> dict:
    import onlinemap as om

    steady = []     # (driver CPU s, measured samples seen) as the runner hands each sample on

    def seen(row: dict) -> None:
        if not row.get("warmup"):
            steady.append((time.process_time(), len(steady) + 1))

    cpu0 = time.process_time()
    out = om.test("sleepref", samples=n, warmup=WARMUP, device="cpu", telemetry=telemetry,
                  echo=False, options=options, min_samples=1, min_duration_s=0, progress=seen)
    t_done = time.time()
    driver_cpu = time.process_time() - cpu0
    # the steady state: the driver's CPU between the runner handing on the measured sample at 10 %
    # of the run and the one at 90 % (well inside the run: start-up, the last batch read after the
    # model exited and the summary are left out; the runner reads a batch per 0.25 s tick)
    (c0, k0), (c1, k1) = steady[len(steady) // 10], steady[len(steady) * 9 // 10]
    if out.status != "ok":
        raise SystemExit(f"run failed: {out.status}: {out.record.error}")
    rows = [json.loads(line) for line in (out.run_dir / "samples.jsonl").read_text().splitlines()]
    ends = [r["t"] for r in rows if not r["warmup"]]
    if len(ends) != n:
        raise SystemExit(f"expected {n} measured samples, got {len(ends)}")
    shutil.rmtree(out.run_dir)   # keep the results store small between repetitions
    return {"interval_ms": interval_ms(ends), "post_run_s": t_done - ends[-1],
            "driver_cpu_s": driver_cpu, "steady_cpu_ms": (c1 - c0) * 1000 / max(k1 - k0, 1)}


def run_side(side: str, n: int, forward_ms: float, baseline: Path | None = None, wait: str = "sleep") -> dict:
    """One side in a fresh interpreter in its own session; its tree's CPU from wait4's rusage.

    A side named ``<side>@base`` runs ``<side>`` with the ``baseline`` checkout's onlinemap."""
    name, _, at = side.partition("@")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_side", name, "--_n", str(n),
           "--_forward-ms", str(forward_ms), "--_wait", wait]
    if at:
        cmd += ["--_repo", str(baseline)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True,
                            cwd=baseline if at else REPO)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"side {side} failed (exit {proc.returncode})")
    res = json.loads(out.decode().strip().splitlines()[-1])
    res["tree_cpu_s"] = ru.ru_utime + ru.ru_stime
    return res


def measure(forward_ms: float, counts: list[int], reps: int, sides: tuple = SIDES,
            baseline: Path | None = None, wait: str = "sleep") -> dict:
    res: dict = {}
    for n in counts:
        for r in range(reps):
            k = r % len(sides)
            for side in sides[k:] + sides[:k]:   # rotate who goes first
                res.setdefault((n, side), []).append(run_side(side, n, forward_ms, baseline, wait))
    return res


def report(forward_ms: float, counts: list[int], res: dict, sides: tuple = SIDES, wait: str = "sleep") -> None:
    print(f"\nforward = {wait} {forward_ms:g} ms; median [min-max] over {len(res[(counts[0], 'bare')])} "
          f"rotated repetitions")
    print(f"{'samples':>7} {'side':<14} {'interval ms':>22} {'+ms vs bare, paired':>24} {'+%':>7} "
          f"{'tree CPU ms/sample':>24} {'driver CPU ms/s.':>17} {'steady driver ms/s.':>22} {'post-run s':>20}")
    for n in counts:
        bare = median([x["interval_ms"] for x in res[(n, "bare")]])
        bare_by_rep = [x["interval_ms"] for x in res[(n, "bare")]]
        for side in sides:
            rows = res[(n, side)]
            iv = [x["interval_ms"] for x in rows]
            cpu = [x["tree_cpu_s"] * 1000 / n for x in rows]
            drv = [x["driver_cpu_s"] * 1000 / n for x in rows if "driver_cpu_s" in x]
            std = [x["steady_cpu_ms"] for x in rows if "steady_cpu_ms" in x]
            post = [x["post_run_s"] for x in rows]
            paired = [a - b for a, b in zip(iv, bare_by_rep)]
            d = median(paired)
            print(f"{n:>7} {side:<14} {spread(iv, '%.3f'):>22} {spread(paired, '%+.3f'):>24} {d / bare * 100:>+6.2f}% "
                  f"{spread(cpu, '%.3f'):>24} {(('%.3f' % median(drv)) if drv else '-'):>17} "
                  f"{(spread(std, '%.3f') if std else '-'):>22} {spread(post, '%.2f'):>20}")
    if len(counts) >= 2:
        a, b = min(counts), max(counts)
        print(f"marginal CPU per sample (slope {a} -> {b} samples, start-up removed):")
        for side in sides:
            ca = median([x["tree_cpu_s"] for x in res[(a, side)]])
            cb = median([x["tree_cpu_s"] for x in res[(b, side)]])
            line = f"  {side:<14} tree {(cb - ca) * 1000 / (b - a):.3f} ms"
            if side != "bare":
                da = median([x["driver_cpu_s"] for x in res[(a, side)]])
                db = median([x["driver_cpu_s"] for x in res[(b, side)]])
                line += f", driver {(db - da) * 1000 / (b - a):.3f} ms"
            print(line)


def _describe(repo: Path) -> str:
    """The checkout's commit (and whether it has uncommitted changes), for the printed header."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return head + (" + uncommitted changes" if dirty else "")


def setup_home(max_samples: int) -> Path:
    per_scene = max(2, -(-(max_samples + WARMUP) // 10))   # 10 scenes, enough for the largest side
    home = bench_home(10, per_scene, prefix="onlinemap-bench-overhead-")
    pack = home / "envs" / "sleepref"
    pack.mkdir(parents=True)
    (pack / "model.toml").write_text(SLEEP_PACK_TOML)
    (pack / "demo.py").write_text(SLEEP_PACK_DEMO.format(ref=str(REPO / "envs" / "reference" / "demo.py")))
    os.environ["ONLINEMAP_ENVS"] = str(home / "envs")
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forward-ms", type=float, nargs="+", default=[2.0, 20.0])
    parser.add_argument("--samples", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--wait", choices=WAITS, nargs="+", default=["sleep"],
                        help="how the forward waits: sleep (the CPU idles) or spin (busy, as CUDA's default sync)")
    parser.add_argument("--idle-procs", type=int, default=0,
                        help="extra sleeping processes on the machine while measuring")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout whose harness/telemetry sides run beside this one's")
    parser.add_argument("--_side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--_repo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_forward-ms", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--_wait", choices=WAITS, default="sleep", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._side:
        if args._repo is not None:   # a baseline side: that checkout's onlinemap, this script's sides
            sys.path.insert(0, str(args._repo.resolve()))
            for mod in [m for m in sys.modules if m == "onlinemap" or m.startswith("onlinemap.")]:
                del sys.modules[mod]
        options = dict(OPTIONS, sleep_ms=args._forward_ms, wait=args._wait)
        res = (side_bare(args._n, options) if args._side == "bare"
               else side_harness(args._n, options, telemetry=args._side == "telemetry"))
        print(json.dumps(res))
        return
    if args.reps < 1 or min(args.samples) < 3:
        parser.error("--reps must be >= 1 and every --samples >= 3")
    sides = SIDES
    if args.baseline is not None:
        if not (args.baseline / "onlinemap" / "runner.py").is_file():
            parser.error(f"--baseline {args.baseline}: not an onlinemap checkout (no onlinemap/runner.py)")
        sides = SIDES + ("harness@base", "telemetry@base")
    home = setup_home(max(args.samples))
    idle = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                             start_new_session=True) for _ in range(args.idle_procs)]
    try:
        with open("/proc/loadavg") as fh:
            load = fh.read().split()[:3]
        nprocs = sum(1 for p in os.listdir("/proc") if p.isdigit())
        print(f"load average {' '.join(load)}; {nprocs} processes on the machine "
              f"({args.idle_procs} idle ones added); {os.cpu_count()} CPUs")
        if args.baseline is not None:
            print(f"@base sides: {args.baseline.resolve()} ({_describe(args.baseline)}); "
                  f"the others: {REPO} ({_describe(REPO)})")
        for wait in args.wait:
            for fwd in args.forward_ms:
                res = measure(fwd, sorted(args.samples), args.reps, sides, args.baseline, wait)
                report(fwd, sorted(args.samples), res, sides, wait)
        with open("/proc/loadavg") as fh:
            print(f"\nload average at the end {' '.join(fh.read().split()[:3])}")
    finally:
        for p in idle:
            p.kill()
            p.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
