"""The verification lane: each model's real upstream code on CPU, random weights, synthetic data.

Run by ``scripts/verify-real-models.sh [--stack modern|paper|all] [MODEL...]`` with the project's ``.venv``
(the driver side); the model side runs in a per-(model, stack) verification venv described by
``verification/models/<M>.toml`` (the modern stack, Python 3.11) or ``<M>.paper.toml`` (the paper stack:
Python 3.8 and the pins of the pack's own environment.yml, CPU-capable builds substituted).
Stages per model (each recorded with its time; the first failure stops that model):

  env         the venv ``.venv-verify-<model>-<hash of its [env]>/`` (cached: made once per pin set) with
              the modern variant's pins (verification/pins.py holds them equal), filled by uv with hardlinks
              from its cache, the pack's ``site`` patches applied to its site-packages, a ``.pth`` that installs the
              recording stubs (verification/stubs/) and puts the checkout's source folders on sys.path
  checkout    the repo and side clones at the pinned commits (from ../shared/upstream, else git clone),
              unpacked fresh, the pack's ``repo`` patches applied with ``git apply``
  data        ``onlinemap data synth`` (2 scenes x 4 samples), then the repo's own converter
              (model.toml [data] converter); every info file it names must exist and the converter exit 0.
              OpenLane-V2 packs (TopoMLP): ``data synth --openlane`` (2 segments x 4 frames), then the
              devkit's own collection step (the spec's [data] converter: its preprocess.py)
  checkpoint  a random-init checkpoint built from the real config (verification/inenv/make_checkpoint.py)
  worker      the REAL harness worker (onlinemap/harness/worker.py), launched as the driver launches it
              (``onlinemap.proc.run_supervised``); temporal models get 4 samples (scene A frames 0, 1,
              3: propagation and a gap; scene B frame 0: a new scene), others one per scene; the
              adapter is tapped for its raw output
  checks      schema, sample tokens and frames/units against the synthetic ground truth (driver side),
              then the model's reference checks in its venv (verification/inenv/check_<kind>.py)
  onnx        (recorded, never failing the model) the real model exported to ONNX with the project's export
              machinery and run on ONNX Runtime CPU against PyTorch (verification/inenv/onnx_check.py)

Every stub call (a compiled op reached) fails the model. The result goes to verification/record.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

from verification import record as rec

ROOT = rec.ROOT
UPSTREAM = Path(os.environ.get("ONLINEMAP_UPSTREAM") or (ROOT.parent / "shared" / "upstream"))
WORK = ROOT / ".venv-verify-work"
MODELS_DIR = ROOT / "verification" / "models"
WORKER = ROOT / "onlinemap" / "harness" / "worker.py"
INENV = ROOT / "verification" / "inenv"
STUBS = ROOT / "verification" / "stubs"
SCENES, SAMPLES_PER_SCENE = 2, 4


class StageFailed(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


def say(model: str, text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {model}: {text}", flush=True)


def spec_of(model: str, stack: str = rec.MODERN) -> dict:
    path = rec.spec_path(ROOT, model, stack)
    with open(path, "rb") as fh:
        spec = tomllib.load(fh)
    spec["lane_stack"] = stack
    with open(ROOT / "envs" / model / "model.toml", "rb") as fh:
        spec["pack"] = tomllib.load(fh)
    return spec


def env_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec["env"], sort_keys=True).encode()).hexdigest()[:12]


def venv_dir(model: str, spec: dict) -> Path:
    stack = "" if spec["lane_stack"] == rec.MODERN else f"{spec['lane_stack']}-"
    return ROOT / f".venv-verify-{model.lower()}-{stack}{env_hash(spec)}"


def work_dir(spec: dict) -> Path:
    """One folder per (model, stack), so the two stacks' checkouts and runs never share files."""
    stack = spec["lane_stack"]
    return WORK / (spec["model"] if stack == rec.MODERN else f"{spec['model']}-{stack}")


def run(argv, *, cwd=None, env=None, log=None, check=True, stage="env") -> subprocess.CompletedProcess:
    argv = [str(a) for a in argv]
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ {' '.join(argv)}  (cwd {cwd or os.getcwd()})\n{proc.stdout}\n[exit {proc.returncode}]\n")
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise StageFailed(stage, f"{' '.join(argv[:6])} ... exited {proc.returncode}:\n{tail}")
    return proc


def python_for(version: str) -> str:
    pyenv = Path("/root/.pyenv/versions") / version / "bin" / "python"
    if pyenv.exists():
        return str(pyenv)
    short = "python" + ".".join(version.split(".")[:2])
    found = shutil.which(short)
    if not found:
        raise StageFailed("env", f"Python {version} not found (pyenv's /root/.pyenv/versions/{version} or {short})")
    return found


def site_packages(venv: Path) -> Path:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         stdout=subprocess.PIPE, text=True, check=True)
    return Path(out.stdout.strip())


def patch_files(model: str, spec: dict, target: str) -> list[Path]:
    base = ROOT / "envs" / model / "patches"
    out = []
    for series in spec.get("patches", {}).get("series", []):
        out += sorted((base / series / target).glob("*.patch"))
    return out


def apply_patches(patches: list[Path], directory: Path, log: Path, stage: str) -> None:
    for patch in patches:
        # git apply outside a repository works like patch(1) but refuses fuzz and partial hunks
        run(["git", "apply", "--check", "-v", patch], cwd=directory, log=log, stage=stage)
        run(["git", "apply", patch], cwd=directory, log=log, stage=stage)
        # inside a git work tree git apply may skip paths it considers outside it: prove it took
        run(["git", "apply", "-R", "--check", patch], cwd=directory, log=log, stage=stage)


def checkout_dir(spec: dict) -> Path:
    return work_dir(spec) / "checkout"


def installer(venv: Path, spec: dict) -> list:
    """uv (the default: hardlinks from uv's cache, so the lane's venvs share one copy of torch 2.8's CUDA wheels and
    torch 1.9's 830 MB), or pip (``[env] installer = "pip"``)."""
    if spec["env"].get("installer", "uv") == "pip":
        return [venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    return [uv_binary(), "pip", "install", "--python", venv / "bin" / "python", "--link-mode", "hardlink"]


def uv_binary() -> str:
    """uv from the driver's venv (onlinemap[test] installs it), else PATH: it fills the lane venvs."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        raise StageFailed("env", "uv not found (pip install 'uv>=0.5' into the driver's .venv, or put uv on PATH)")
    return found


def lane_pins(spec: dict) -> list[str]:
    """Every pin the lane installs: the modern variant's (after the spec's substitutions) plus its lane_only."""
    e = spec["env"]
    return e["first"] + e.get("build_tools", []) + e["requirements"] + e.get("no_deps", []) + e.get("lane_only", [])


def make_env(model: str, spec: dict, log: Path) -> Path:
    venv = venv_dir(model, spec)
    stamp = venv / ".onlinemap-verify-ready"
    want = json.dumps({"env": spec["env"], "site_patches": {p.name: rec.sha256(p) for p in patch_files(model, spec, "site")}},
                      sort_keys=True)
    if stamp.is_file() and stamp.read_text() == want:
        say(model, f"env {venv.name} cached")
    else:
        if venv.exists():
            shutil.rmtree(venv)
        say(model, f"creating {venv.name} (Python {spec['env']['python']}; minutes, once per pin set)")
        e = spec["env"]
        with_pip = bool(e.get("pip_steps")) or e.get("installer") == "pip"   # pip_steps build with the venv's own pip
        run([python_for(e["python"]), "-m", "venv"] + ([] if with_pip else ["--without-pip"]) + [venv], log=log)
        # uv hardlinks from its cache (same filesystem): torch 2.8's ~4 GB of CUDA wheels and torch 1.9's 830 MB are
        # stored once, not per venv. git apply (the site patches) writes new files, so a patched file never changes
        # the cache's copy.
        uv = installer(venv, spec)
        e = spec["env"]
        run(uv + e["first"], log=log)
        run(uv + e.get("build_tools", []), log=log)
        run(uv + ["--no-build-isolation"] + e["requirements"] + e.get("lane_only", []), log=log)
        if e.get("no_deps"):
            run(uv + ["--no-deps"] + e["no_deps"], log=log)
        for step in e.get("pip_steps", []):   # sdists built the way the pack builds them: the venv's own pip, --no-deps
            run([venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-deps"]
                + step, log=log)
        apply_patches(patch_files(model, spec, "site"), site_packages(venv), log, "env")
        stamp.write_text(want)
    sp = site_packages(venv)
    lines = [str(STUBS), "import _onlinemap_verify_stubs"]
    lines += [str(checkout_dir(spec) / p) for p in spec["env"].get("pythonpath", [])]
    (sp / "_onlinemap_verify.pth").write_text("\n".join(lines) + "\n")
    return venv


def unpack(tarball: str, dest: Path, url: str | None, commit: str | None, log: Path) -> str:
    src = UPSTREAM / tarball
    dest.mkdir(parents=True, exist_ok=True)
    if src.is_file():
        with tarfile.open(src) as tf:
            tf.extractall(dest, filter="data")
        return f"../shared/upstream/{tarball}"
    if not url or not commit:
        raise StageFailed("checkout", f"{src} is missing and no url/commit to clone instead")
    shutil.rmtree(dest)
    run(["git", "clone", "--quiet", url, dest], log=log, stage="checkout")
    run(["git", "-C", dest, "-c", "advice.detachedHead=false", "checkout", "--detach", commit], log=log, stage="checkout")
    return f"git clone {url} @ {commit}"


def make_checkout(model: str, spec: dict, log: Path) -> dict:
    repo = checkout_dir(spec)
    if repo.exists():
        shutil.rmtree(repo)
    pack_repo = spec["pack"]["repo"]
    src = spec["sources"]["repo"]
    sources = {"repo": unpack(src["tarball"], repo, pack_repo["url"], pack_repo["commit"], log)}
    for side in spec["sources"].get("side", []):
        sources[side["dest"]] = unpack(side["tarball"], repo / side["dest"], side.get("url"), side.get("commit"), log)
    apply_patches(patch_files(model, spec, "repo"), repo, log, "checkout")
    return sources


def model_env(venv: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    env.update(extra or {})
    return env


def stub_env(spec: dict, stub_log: Path) -> dict:
    return {"ONLINEMAP_VERIFY_STUBS": ",".join(spec["stubs"]["names"]), "ONLINEMAP_VERIFY_STUB_LOG": str(stub_log)}


def stub_calls(stub_log: Path) -> list[str]:
    if not stub_log.is_file():
        return []
    calls = []
    for line in stub_log.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            if item.get("kind") == "call":
                calls.append(item["name"])
    return calls


def make_data(model: str, spec: dict, venv: Path, log: Path, stub_log: Path) -> tuple[Path, str]:
    from onlinemap.data.synth import write_synthetic_nuscenes

    if "openlane_v2" in spec["pack"]["data"].get("needs", []):
        return make_openlane_data(model, spec, venv, log, stub_log)
    data = work_dir(spec) / "data"
    if data.exists():
        shutil.rmtree(data)
    write_synthetic_nuscenes(data, scenes=SCENES, samples_per_scene=SAMPLES_PER_SCENE)
    version = "v1.0-mini"
    pack_data = spec["pack"]["data"]
    from onlinemap.registry.spec import load_model_spec
    from onlinemap.setup.data import converter_argv

    # the placeholders filled exactly as `onlinemap setup` fills them
    argv = converter_argv(load_model_spec(ROOT / "envs" / model), data)
    if argv[0] == "python":
        argv[0] = str(venv / "bin" / "python")
    cwd = checkout_dir(spec) / pack_data.get("converter_cwd", ".")
    proc = run(argv, cwd=cwd, env=model_env(venv, {**stub_env(spec, stub_log), "PYTHONPATH": str(cwd)}), log=log,
               check=False, stage="data")
    missing = [f for f in pack_data["info_files"] if not (data / f).is_file()]
    if proc.returncode != 0 or missing:
        tail = "\n".join(proc.stdout.strip().splitlines()[-6:])
        raise StageFailed("data", f"the repo's converter exited {proc.returncode}"
                                  f"{' and did not write ' + ', '.join(missing) if missing else ''}:\n{tail}")
    return data, version


def make_openlane_data(model: str, spec: dict, venv: Path, log: Path, stub_log: Path) -> tuple[Path, str]:
    """OpenLane-V2 packs (TopoMLP): ``onlinemap data synth --openlane`` into ``data/OpenLane-V2``, then the devkit's
    own collection step (spec ``[data] converter``, run from ``data/``: preprocess.py hard-codes ./OpenLane-V2)
    writes the collection pickle the model reads; the synthesiser's own copy of it is removed first."""
    from onlinemap.data.synth_openlane import write_synthetic_openlane

    parent = work_dir(spec) / "data"
    if parent.exists():
        shutil.rmtree(parent)
    root = parent / "OpenLane-V2"
    write_synthetic_openlane(root, segments=SCENES, frames_per_segment=SAMPLES_PER_SCENE)
    pack_data = spec["pack"]["data"]
    for name in pack_data["info_files"]:
        (root / name).unlink(missing_ok=True)
    argv = [str(venv / "bin" / "python") if a == "python" else str(checkout_dir(spec) / a) if a.endswith(".py") else a
            for a in spec["data"]["converter"]]
    proc = run(argv, cwd=parent, env=model_env(venv, stub_env(spec, stub_log)), log=log, check=False, stage="data")
    missing = [f for f in pack_data["info_files"] if not (root / f).is_file()]
    if proc.returncode != 0 or missing:
        tail = "\n".join(proc.stdout.strip().splitlines()[-6:])
        raise StageFailed("data", f"the devkit's collection step exited {proc.returncode}"
                                  f"{' and did not write ' + ', '.join(missing) if missing else ''}:\n{tail}")
    return root, pack_data["info_files"][0].removesuffix(".pkl")


def lane_samples(data: Path, version: str, temporal: bool, needs=("nuscenes",)) -> list[dict]:
    """Temporal models: scene A frames 0, 1, 3 (propagation, a gap), scene B frame 0; others: one per scene."""
    from onlinemap.data.selection import select_samples

    ordered = select_samples(data, version, count=None, warmup=0, needs=needs)
    by_scene: dict[str, list[dict]] = {}
    for s in ordered:
        by_scene.setdefault(s["scene_token"], []).append(s)
    first, second = list(by_scene.values())[:2]
    if not temporal:
        return [first[0], second[0]]
    return [first[0], first[1], first[3], second[0]]


def config_path(spec: dict) -> str:
    config = spec.get("run", {}).get("config") or spec["pack"]["config"]["default"]
    return str(checkout_dir(spec) / config)


def run_worker(model: str, spec: dict, venv: Path, data: Path, version: str, checkpoint: Path, samples: list[dict],
               stub_log: Path, config: str | None = None, name: str = "run") -> tuple[Path, dict]:
    from onlinemap.proc import run_supervised

    run_dir = work_dir(spec) / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "tap").mkdir(parents=True)
    files = {n: run_dir / n for n in ("events.jsonl", "samples.jsonl", "predictions.jsonl")}
    for f in files.values():
        f.touch()
    job = {"protocol": 1, "model": model, "adapter": str(INENV / "tap_adapter.py"),
           "settings": {"model": model, "config": config or config_path(spec), "checkpoint": str(checkpoint),
                        "dataroot": str(data), "version": version, "device": "cpu", "repo": str(checkout_dir(spec)),
                        "options": spec.get("run", {}).get("options") or {}},
           "samples": samples, "warmup": 0, "count": None, "min_samples": len(samples), "min_duration_s": 0,
           "timer": "wall", "events": str(files["events.jsonl"]), "samples_out": str(files["samples.jsonl"]),
           "predictions": str(files["predictions.jsonl"]), "parent_pid": os.getpid()}
    (run_dir / "job.json").write_text(json.dumps(job, indent=1))
    env = model_env(venv, {**stub_env(spec, stub_log), "ONLINEMAP_VERIFY_ADAPTER": str(ROOT / "envs" / model / "demo.py"),
                           "ONLINEMAP_VERIFY_TAP": str(run_dir / "tap")})
    outcome = run_supervised([venv / "bin" / "python", WORKER, run_dir / "job.json"], env=env, cwd=run_dir,
                             log_path=run_dir / "log.txt", timeout_s=float(os.environ.get("ONLINEMAP_VERIFY_TIMEOUT_S", 3600)),
                             inactivity_s=1800, activity_paths=(files["samples.jsonl"], files["events.jsonl"]))
    events = [json.loads(l) for l in files["events.jsonl"].read_text().splitlines() if l.strip()]
    samples_out = [json.loads(l) for l in files["samples.jsonl"].read_text().splitlines() if l.strip()]
    error = next((e for e in events if e.get("event") == "error"), None)
    if not outcome.ok or error is not None:
        what = f"{error['stage']}: {error['type']}: {error['message'][:600]}" if error else \
            f"worker exited {outcome.returncode} (timeout={outcome.timeout})"
        raise StageFailed("worker", what)
    loaded = next(e for e in events if e.get("event") == "loaded")
    env_event = next(e for e in events if e.get("event") == "env")
    return run_dir, {"load_s": loaded["load_s"], "import_s": loaded["import_s"],
                     "forward_s": [round(s["forward_ms"] / 1000.0, 2) for s in samples_out],
                     "packages": env_event.get("packages"), "python": env_event.get("python")}


def run_checks(model: str, spec: dict, venv: Path, data: Path, version: str, run_dir: Path, samples: list[dict],
               stub_log: Path) -> list[dict]:
    from verification import checks

    preds = [json.loads(l) for l in (run_dir / "predictions.jsonl").read_text().splitlines() if l.strip()]
    out = checks.driver_checks(spec["pack"], preds, samples, data, version)
    kind = spec.get("run", {}).get("checks")
    script = INENV / f"check_{kind.replace('-', '_')}.py" if kind else None
    if script is not None and not script.is_file():
        out.append({"name": f"reference checks ({kind})", "passed": False, "max_diff": None,
                    "detail": f"{script.relative_to(ROOT)} does not exist yet"})
    elif script is not None:
        result = run_dir / "reference-checks.json"
        run([venv / "bin" / "python", script, checkout_dir(spec), config_path(spec), data,
             spec["pack"]["data"]["info_files"][0], run_dir / "tap", run_dir / "predictions.jsonl", result],
            cwd=run_dir, env=model_env(venv, stub_env(spec, stub_log)), log=run_dir / "checks-log.txt", stage="checks")
        out += json.loads(result.read_text())["checks"]
    return out


def expected_stop(model: str, spec: dict, venv: Path, data: Path, version: str, samples: list[dict]) -> dict:
    """A config that must reach a compiled op on the CPU (MapTR's default GKT config): run it and record where
    it stopped. Passes when the worker failed at exactly the named op's stub and called no other stub."""
    stop = spec["run"]["expected_stop"]
    config = str(checkout_dir(spec) / (stop.get("config") or spec["pack"]["config"]["default"]))
    log = work_dir(spec) / "lane-log.txt"
    stub_log = work_dir(spec) / "stub-calls-expected-stop.jsonl"
    stub_log.write_text("")
    ckpt = work_dir(spec) / "random-init-expected-stop.pth"
    t = time.perf_counter()
    run([venv / "bin" / "python", INENV / "make_checkpoint.py", checkout_dir(spec), config, ckpt, "0"], cwd=work_dir(spec),
        env=model_env(venv, stub_env(spec, stub_log)), log=log, stage="checkpoint")
    error = None
    try:
        run_worker(model, spec, venv, data, version, ckpt, samples[:1], stub_log, config=config, name="run-expected-stop")
    except StageFailed as exc:
        error = str(exc)
    calls = stub_calls(stub_log)
    import fnmatch

    stopped = bool(calls) and all(fnmatch.fnmatchcase(c, stop["op"]) for c in calls) and error is not None
    return {"config": os.path.relpath(config, checkout_dir(spec)), "op": stop["op"], "stub_calls": sorted(set(calls)),
            "worker_error": (error or "")[-600:], "passed": stopped, "seconds": round(time.perf_counter() - t, 1),
            "meaning": "this config needs the compiled op on every path: it cannot run on a CPU, as expected"}


def onnx_samples(samples: list[dict], temporal: bool) -> list[dict]:
    """The first sample (the first-frame graph); temporal models also its successor in the scene (the later frame)."""
    return samples[:2] if temporal else samples[:1]


def onnx_stage(model: str, spec: dict, venv: Path, run_dir: Path, samples: list[dict]) -> dict:
    """Issue 17 in the lane: the real model exported to ONNX and checked on ONNX Runtime CPU against PyTorch.

    Runs verification/inenv/onnx_check.py in the model's venv with the worker's settings (same checkpoint,
    data, options) and the pack's tolerances (envs/<M>/backends.toml, else rtol 1e-3 / atol 1e-5). Its
    outcome (passed / failed / not_exportable, with the stage and the one-line reason) is recorded, never
    raised: an export failure does not fail the model's other stages. Stub calls during it are recorded too.
    """
    from onlinemap.backends.verify import load_tolerances
    from onlinemap.proc import run_supervised
    from onlinemap.registry.spec import load_model_spec

    t0 = time.perf_counter()
    out_dir = work_dir(spec) / "onnx"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    temporal = bool(spec["pack"].get("temporal"))
    tol = load_tolerances(load_model_spec(ROOT / "envs" / model), "onnxruntime")
    worker_job = json.loads((run_dir / "job.json").read_text())
    job = {"adapter": str(ROOT / "envs" / model / "demo.py"), "settings": worker_job["settings"],
           "samples": onnx_samples(samples, temporal), "temporal": temporal, "graph": spec["onnx"]["graph"],
           "out_dir": str(out_dir), "rtol": tol.rtol, "atol": tol.atol}
    (out_dir / "job.json").write_text(json.dumps(job, indent=1))
    stub_log = out_dir / "stub-calls.jsonl"
    stub_log.write_text("")
    outcome_limit = float(os.environ.get("ONLINEMAP_VERIFY_ONNX_TIMEOUT_S", 2400))
    outcome = run_supervised([venv / "bin" / "python", INENV / "onnx_check.py", out_dir / "job.json"],
                             env=model_env(venv, stub_env(spec, stub_log)), cwd=out_dir, log_path=out_dir / "log.txt",
                             timeout_s=outcome_limit)
    result_file, progress = out_dir / "result.json", out_dir / "progress.json"
    if result_file.is_file():
        result = json.loads(result_file.read_text())
    elif outcome.timeout and progress.is_file():
        # an exporter that runs past the limit (torch.export on data-dependent shapes can take an hour on 2
        # cores): what failed before it, and which one was cut short
        done = json.loads(progress.read_text())
        failed = "; ".join(f"{a['exporter']}: {a['error']}" for a in done["attempts"] if a.get("ok") is False)
        result = {"status": "not_exportable", "stage": "export", "graphs": [done],
                  **{k: done.get(k) for k in ("torch", "onnx", "onnxruntime", "onnxscript") if k in done},
                  "reason": f"{done['graph']} graph: {failed + '; ' if failed else ''}{done['running']}: "
                            f"did not finish within {outcome_limit:.0f} s (ONLINEMAP_VERIFY_ONNX_TIMEOUT_S)"}
    else:
        tail = (out_dir / "log.txt").read_text().strip().splitlines()[-1:] if (out_dir / "log.txt").is_file() else []
        result = {"status": "failed", "stage": "process",
                  "reason": f"onnx_check.py exited {outcome.returncode} (timeout={outcome.timeout}) without a result: "
                            f"{tail[0][:300] if tail else 'no output'}"}
    result["stub_calls"] = sorted(set(stub_calls(stub_log)))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def verify(model: str, stack: str = rec.MODERN) -> dict:
    spec = spec_of(model, stack)
    work = work_dir(spec)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "lane-log.txt"
    log.write_text("")
    stub_log = work / "stub-calls.jsonl"
    stub_log.write_text("")
    entry = {"model": model, "stack": spec.get("stack"), "python": spec["env"]["python"],
             "pins": lane_pins(spec) + [a for step in spec["env"].get("pip_steps", []) for a in step if not a.startswith("-")],
             "variant": spec["env"].get("variant"),
             "config": spec.get("run", {}).get("config") or spec["pack"]["config"]["default"],
             "stages": {}, "checks": [], "status": "failed", "files": rec.file_hashes(ROOT, model, stack),
             "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    t_all = time.perf_counter()
    stage = "env"

    def timed(name, fn):
        nonlocal stage
        stage = name
        t = time.perf_counter()
        value = fn()
        entry["stages"][name] = {"passed": True, "seconds": round(time.perf_counter() - t, 1)}
        return value

    try:
        cached = (venv_dir(model, spec) / ".onlinemap-verify-ready").is_file()
        venv = timed("env", lambda: make_env(model, spec, log))
        entry["stages"]["env"]["cached"] = cached
        entry["sources"] = timed("checkout", lambda: make_checkout(model, spec, log))
        data, version = timed("data", lambda: make_data(model, spec, venv, log, stub_log))
        ckpt = work / "random-init.pth"
        made = timed("checkpoint", lambda: run([venv / "bin" / "python", INENV / "make_checkpoint.py", checkout_dir(spec),
                                                config_path(spec), ckpt, "0"], cwd=work,
                                               env=model_env(venv, stub_env(spec, stub_log)), log=log, stage="checkpoint"))
        entry["checkpoint"] = json.loads(made.stdout.strip().splitlines()[-1])
        samples = lane_samples(data, version, bool(spec["pack"].get("temporal")), spec["pack"]["data"].get("needs", ()))
        run_dir, worker = timed("worker", lambda: run_worker(model, spec, venv, data, version, ckpt, samples, stub_log))
        entry["worker"] = worker
        entry["samples"] = [{"token": s["token"], "scene": s.get("scene_name"), "index_in_scene": s.get("index_in_scene")}
                            for s in samples]
        entry["checks"] = timed("checks", lambda: run_checks(model, spec, venv, data, version, run_dir, samples, stub_log))
        if spec.get("run", {}).get("expected_stop"):
            entry["expected_stop"] = timed("expected_stop", lambda: expected_stop(model, spec, venv, data, version, samples))
            if not entry["expected_stop"]["passed"]:
                entry["checks"].append({"name": "the GKT-style config stops at its compiled op", "passed": False,
                                        "max_diff": None, "detail": json.dumps(entry["expected_stop"])[:800]})
        if spec.get("onnx", {}).get("graph"):
            try:
                entry["onnx"] = onnx_stage(model, spec, venv, run_dir, samples)
            except Exception as exc:  # a lane bug here must not cost the model's verified stages
                entry["onnx"] = {"status": "failed", "stage": "lane", "reason": f"lane error: {type(exc).__name__}: {exc}"}
            say(model, f"onnx: {entry['onnx']['status']} {entry['onnx'].get('reason') or ''}".rstrip())
        failed = [c["name"] for c in entry["checks"] if not c["passed"]]
        if failed:
            entry["stages"]["checks"]["passed"] = False
            raise StageFailed("checks", "failed: " + "; ".join(failed))
        entry["status"] = "passed"
    except StageFailed as exc:
        entry["stages"].setdefault(exc.stage, {})["passed"] = False
        entry["stages"][exc.stage]["error"] = str(exc)[-3000:]
        say(model, f"FAILED at {exc.stage}: {exc}")
    except Exception as exc:  # a bug of the lane itself: record it, keep the other models going
        entry["stages"].setdefault(stage, {})["passed"] = False
        entry["stages"][stage]["error"] = f"lane error: {type(exc).__name__}: {exc}"
        say(model, f"FAILED at {stage} (lane error): {type(exc).__name__}: {exc}")
    entry["stub_calls"] = stub_calls(stub_log)
    if entry["stub_calls"] and entry["status"] == "passed":
        entry["status"] = "failed"
    entry["seconds"] = round(time.perf_counter() - t_all, 1)
    say(model, f"[{stack}] {entry['status']} in {entry['seconds']:.0f} s (stub calls: {len(entry['stub_calls'])})")
    return entry


def available_models(stack: str = rec.MODERN) -> list[str]:
    return rec.spec_models(ROOT, stack)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/verify-real-models.sh",
                                     description="Run each model's real upstream code on CPU (random weights, synthetic "
                                                 "data) through the real worker and record the result in "
                                                 "verification/record.json.")
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"default: every model with a spec for the stack (modern: {', '.join(available_models())}; "
                             f"paper: {', '.join(available_models(rec.PAPER))})")
    parser.add_argument("--stack", choices=[*rec.STACKS, "all"], default="all",
                        help="modern: verification/models/<M>.toml (Python 3.11, the modern variant's CPU stand-ins); "
                             "paper: <M>.paper.toml (Python 3.8, the packs' environment.yml pins); all (default): both")
    parser.add_argument("--no-record", action="store_true", help="do not update verification/record.json")
    args = parser.parse_args(argv)
    stacks = list(rec.STACKS) if args.stack == "all" else [args.stack]
    known = sorted({m for s in stacks for m in available_models(s)})
    unknown = [m for m in args.models if m not in known]
    if unknown:
        print(f"error: no verification spec for {', '.join(unknown)} on the {args.stack} stack "
              f"(verification/models/<MODEL>.toml, <MODEL>.paper.toml); known: {', '.join(known)}", file=sys.stderr)
        return 2
    runs = [(m, s) for s in stacks for m in available_models(s) if not args.models or m in args.models]
    results, skipped = {}, []
    for model, stack in runs:
        try:    # "both stacks where their interpreter exists": a machine without Python 3.8 skips the paper stack
            python_for(spec_of(model, stack)["env"]["python"])
        except StageFailed as exc:
            print(f"{model} [{stack}]: skipped, not recorded: {exc}", file=sys.stderr)
            skipped.append((model, stack))
            continue
        results[(model, stack)] = verify(model, stack)
        if not args.no_record:
            rec.update(model, results[(model, stack)], stack=stack)
    bad = [k for k, e in results.items() if e["status"] != "passed"]
    for (m, s), e in results.items():
        print(f"{m} [{s}]: {e['status']} ({e['seconds']:.0f} s)")
    return 1 if bad or (skipped and args.stack != "all") else 0


if __name__ == "__main__":
    sys.exit(main())
