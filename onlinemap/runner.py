"""One model run: check, launch the harness in the model's env, supervise, record.

The pipeline is a chain of small steps (nox's workflow idea): resolve the spec and readiness ->
choose samples -> create the run directory and write run.json (``running``) -> start telemetry
-> launch the worker through the env's run command in a new session -> follow samples.jsonl
for progress -> on exit, timeout or Ctrl-C kill the group -> summarise samples, validate
predictions -> rewrite run.json with the final status. Every file the worker already wrote
stays, whatever happened.
"""
from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.errors import (EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, ResultsError, UsageError, exit_code_for_signal)
from onlinemap.fileio import decode_json, iter_jsonl, write_json_atomic
from onlinemap.harness import events as ev
from onlinemap.registry.spec import ModelSpec
from onlinemap.runs import schema as rs
from onlinemap.runs.store import driver_identity, new_run_dir, save_run, utc_now

__all__ = ["RunSettings", "RunOutcome", "run_model", "WORKER_PATH", "check_device", "check_durations"]

log = logging.getLogger(__name__)
WORKER_PATH = Path(__file__).resolve().parent / "harness" / "worker.py"

DEFAULT_WARMUP = 5                 # mmdet3d / MapTR tools/benchmark.py
DEFAULT_TEST_SAMPLES = 5
DEFAULT_MIN_SAMPLES = 50
DEFAULT_MIN_DURATION_S = 10.0
DEFAULT_INACTIVITY_S = 600.0       # first CUDA init + model build of the old stacks can be slow
DEFAULT_LAUNCH_TIMEOUT_S = 600.0   # launch until the worker's first event: conda run on a cold network volume
DEFAULT_TELEMETRY_PERIOD_S = 0.02
DEFAULT_BUSY_GPU_MB = 500.0


@dataclass
class RunSettings:
    """What a run is asked to do; shared defaults for CLI, notebook and cron."""

    kind: str = "test"
    samples: int | None = DEFAULT_TEST_SAMPLES     # exact measured count; None: min_samples + min_duration
    warmup: int = DEFAULT_WARMUP
    min_samples: int = DEFAULT_MIN_SAMPLES
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    ci_target_pct: float | None = None             # then: until the p50's 95 % interval is within +-this %
    max_duration_s: float | None = None            # ... or this long measuring
    rate_hz: float | None = None                   # paced: start a sample every 1/rate s; None: back-to-back
    dataroot: Path | None = None
    version: str | None = None
    device: str = "cpu"
    sample_tokens: list[str] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    inactivity_s: float | None = DEFAULT_INACTIVITY_S
    launch_timeout_s: float | None = DEFAULT_LAUNCH_TIMEOUT_S
    timer: str = "wall"                           # wall | cuda-events
    telemetry: bool = True
    telemetry_period_s: float = DEFAULT_TELEMETRY_PERIOD_S
    telemetry_csv: bool = True
    exclusive: bool = False
    refuse_throttled: bool = False                # fail a run whose GPU clocks throttled while measuring
    busy_gpu_mb: float = DEFAULT_BUSY_GPU_MB
    variant: str | None = None                    # env variant (paper | modern ...); None: chosen from the GPU
    echo: bool = True
    options: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    backend: str = "torch"                        # torch | onnxruntime | pt2 | tensorrt (docs/backends.md)

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["dataroot"] = str(self.dataroot) if self.dataroot else None
        return out


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    record: rs.RunRecord

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def exit_code(self) -> int:
        return self.record.exit_code if self.record.exit_code is not None else EXIT_FAILED


def check_device(device: str) -> str:
    """Accept ``cpu``, ``cuda`` (= cuda:0) and ``cuda:N``; refuse anything else."""
    device = (device or "cpu").strip()
    if device == "cuda":
        return "cuda:0"
    if device == "cpu" or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise UsageError(f"invalid device {device!r}", "use cpu, cuda or cuda:N")


def check_durations(settings: RunSettings) -> None:
    """Timeouts finite and > 0 (or None), min_duration finite and >= 0: the API gets the CLI's refusal."""
    import math

    for name, value, zero_ok in (("timeout_s", settings.timeout_s, False), ("inactivity_s", settings.inactivity_s, False),
                                 ("launch_timeout_s", settings.launch_timeout_s, False),
                                 ("max_duration_s", settings.max_duration_s, False),
                                 ("ci_target_pct", settings.ci_target_pct, False),
                                 ("rate_hz", settings.rate_hz, False),
                                 ("min_duration_s", settings.min_duration_s, True)):
        if value is None and name != "min_duration_s":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
            unit = {"ci_target_pct": "percent", "rate_hz": "Hz"}.get(name, "seconds")
            raise UsageError(f"{name}={value!r} is not a {'non-negative' if zero_ok else 'positive'} finite number of "
                             f"{unit}", f"give a finite number of {unit}" + ("" if zero_ok else " > 0, or None"))


def _child_env(device: str) -> dict[str, str]:
    """The model process's environment: ours minus what breaks other interpreters."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__"):
        env.pop(var, None)
    env.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PIP_USER="false", CUDA_DEVICE_ORDER="PCI_BUS_ID")
    return env


class _SampleFollower:
    """Reads new lines of a JSONL file as the worker appends them (samples: progress; events: its pid).

    The file stays open from the first poll that finds it (not re-opened 20 times a second) and is
    read with ``os.read`` on its descriptor: one system call when nothing is new (a buffered
    ``read()`` adds an ``fstat`` and a second read per poll). :meth:`close` when the run is over.
    """

    CHUNK = 1 << 20

    def __init__(self, path: Path, on_sample: Callable[[dict], None] | None,
                 on_line: Callable[[bytes], None] | None = None):
        self.path = path
        self.count = 0
        self.on_sample = on_sample
        self.on_line = on_line      # raw lines, not parsed here (the prediction check parses them itself)
        self._fd: int | None = None
        self._partial = b""
        
    def _read_new(self) -> bytes:
        parts = []
        while True:
            part = os.read(self._fd, self.CHUNK)
            if not part:
                break
            parts.append(part)
            if len(part) < self.CHUNK:
                break
        return b"".join(parts)

    def poll(self) -> int:
        """Hand every complete new line to ``on_sample``; return how many bytes were new."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                return 0
        chunk = self._read_new()
        if not chunk:
            return 0
        data = self._partial + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data
            return len(chunk)
        self._partial = data[end + 1:]
        if self.on_line is not None:
            for line in data[:end].splitlines():
                if line.strip():
                    self.count += 1
                    self.on_line(line)
            return len(chunk)
        for line in data[:end].splitlines():
            try:
                rec = decode_json(line)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            self.count += 1
            if self.on_sample is not None:
                self.on_sample(rec)
        return len(chunk)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run_model(spec: ModelSpec, settings: RunSettings, *, results_root: Path | None = None,
              progress: Callable[[dict], None] | None = None,
              on_run_dir: Callable[[str, Path], None] | None = None) -> RunOutcome:
    """Run ``spec`` as ``settings`` say and return the outcome; run.json always ends in a final status.

    Raises OnlinemapError before the run directory exists (unknown device, model not ready, bad
    dataroot or sample token); after that, failures are recorded in run.json, not raised.
    """
    from onlinemap.data.selection import default_dataroot_for, resolve_dataset, select_samples
    from onlinemap.environments import resolve_environment
    from onlinemap.readiness import require_ready

    from onlinemap.environments.guard import check_cpu_ok, check_gpu_arch

    device = check_device(settings.device)
    from onlinemap.environments.guard import choose_variant

    spec = choose_variant(spec, device, None, settings.variant)    # the env variant for this GPU (issue 15)
    check_gpu_arch(spec, device)
    if settings.timer not in ("wall", "cuda-events"):
        raise UsageError(f"invalid timer {settings.timer!r}", "use wall or cuda-events")
    check_durations(settings)
    dataroot = Path(settings.dataroot) if settings.dataroot else default_dataroot_for(spec.data.needs)
    require_ready(spec, dataroot)
    check_cpu_ok(spec, device)       # after readiness, so a missing env is named first
    env = resolve_environment(spec)
    export_dir = None
    if settings.backend != "torch":
        from onlinemap.backends import check_backend, find_export

        check_backend(settings.backend, device)
        export_dir = find_export(spec, settings.backend, settings.options)
    root, version = resolve_dataset(dataroot, settings.version, needs=spec.data.needs)
    samples = select_samples(root, version, count=settings.samples, warmup=settings.warmup,
                             sample_tokens=settings.sample_tokens or None, scenes=settings.scenes or None,
                             needs=spec.data.needs)

    from onlinemap.telemetry.hostinfo import host_record
    from onlinemap.telemetry.nvml import gpu_info, preflight

    child_env = _child_env(device)
    gpu = gpu_info(device, env=child_env)
    if device.startswith("cuda") and gpu.get("available") is False and "pynvml" not in str(gpu.get("reason")):
        from onlinemap.errors import MissingPrerequisiteError

        raise MissingPrerequisiteError(f"{device} requested but no usable NVIDIA GPU is visible ({gpu.get('reason')})",
                                       "run with --device cpu, or on a machine with a GPU and its driver")
    sampler = None
    if settings.telemetry:
        from onlinemap.telemetry.sampler import TelemetrySampler

        sampler = TelemetrySampler(device=device, period_s=settings.telemetry_period_s, env=child_env)
    if settings.telemetry and device.startswith("cuda"):
        busy = preflight(device, threshold_mb=settings.busy_gpu_mb, env=child_env)
        if busy.get("busy"):
            msg = (f"{device} already holds {busy.get('used_mb')} MiB before launch (threshold "
                   f"{settings.busy_gpu_mb:g} MiB): another job would skew the figures")
            if settings.exclusive:
                from onlinemap.errors import MissingPrerequisiteError

                raise MissingPrerequisiteError(msg, "stop the other GPU job, or drop --exclusive to measure anyway")
            log.warning(msg)
            gpu["preflight_warning"] = msg

    run_id, run_dir = _create_run_dir(spec.name, results_root)
    try:
        record, files = _write_run_start(spec, settings, env, run_id, run_dir, root, version, device, samples, gpu,
                                         export_dir)
    except (OSError, ResultsError) as exc:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)   # nothing half-made: no run dir without its run.json
        if isinstance(exc, ResultsError):
            raise ResultsError(exc.message, _UNWRITABLE_HINT) from None
        raise ResultsError(f"cannot write {getattr(exc, 'filename', None) or run_dir}: {exc.strerror or exc}",
                           _UNWRITABLE_HINT) from None
    if on_run_dir is not None:
        on_run_dir(run_id, run_dir)

    if sampler is not None:
        if settings.telemetry_csv:
            sampler.csv_path = files[rs.TELEMETRY_FILE]
        sampler.take_baseline()
    def on_sample(rec: dict) -> None:
        if sampler is not None and not rec.get("warmup"):
            # the measured window (GPU state before, throttling, energy), in the sample's own times
            t, total = rec.get("t"), rec.get("total_ms")
            if not isinstance(t, (int, float)):
                sampler.note_measured()              # no time in the row: when it was read
            elif isinstance(total, (int, float)):
                sampler.note_measured(t, t - total / 1000.0)
            else:
                sampler.note_measured(t)
        if progress is not None:
            progress(rec)

    follower = _SampleFollower(files[rs.SAMPLES_FILE], on_sample)
    from onlinemap.runs.summary import PredictionCheck

    checker = PredictionCheck()        # validated as they arrive: the summary is ready at exit
    predictions = _SampleFollower(files[rs.PREDICTIONS_FILE], None, on_line=checker.feed_line)
    worker = {}

    def on_event(event: dict) -> None:
        if event.get("event") == ev.STARTED and event.get("pid") and "pid" not in worker:
            worker["pid"] = int(event["pid"])
            if event.get("writer_pid"):
                # the harness's result writer: waited for at the end (it drains its pipe), and not
                # the model, so kept out of the host figures as the launcher is
                worker["writer_pid"] = int(event["writer_pid"])
            if sampler is not None:
                sampler.track(worker["pid"], exclude=worker.get("writer_pid"))   # the model, not its launcher

    lifecycle = _SampleFollower(files[rs.EVENTS_FILE], on_event)

    def on_tick() -> bool:
        # what the inactivity clock watches: the samples file, and the events file until the worker
        # has said who it is (later events are read at the end; the loop stats the file meanwhile)
        new = follower.poll() + (lifecycle.poll() if "pid" not in worker else 0)
        if new:
            predictions.poll()   # a samples line promises its prediction is on disk: read them then
        return new > 0

    def worker_pid() -> int | None:
        lifecycle.poll()   # the started event may have landed since the last tick
        return worker.get("pid")

    def drain_pids() -> list[int]:
        lifecycle.poll()
        return [worker["writer_pid"]] if "writer_pid" in worker else []

    argv = env.launch_argv(WORKER_PATH, str(files[rs.JOB_FILE]))
    # host / direct launches exec the worker itself: measure it from the first tick, not from its
    # started event (a fast model can finish before the driver reads that event)
    launches_worker = len(argv) > 1 and argv[1] == str(WORKER_PATH)
    log.info("launching %s", " ".join(argv))
    from onlinemap.proc import run_supervised

    telemetry_record = None
    try:
        outcome = run_supervised(
            argv, env=child_env, cwd=run_dir, log_path=files[rs.LOG_FILE], echo=settings.echo,
            timeout_s=settings.timeout_s, inactivity_s=settings.inactivity_s,
            activity_paths=(files[rs.SAMPLES_FILE], files[rs.EVENTS_FILE]),
            start_marker=files[rs.EVENTS_FILE], launch_timeout_s=settings.launch_timeout_s,
            worker_pid=worker_pid, drain_pids=drain_pids,
            on_start=(lambda pid: sampler.start(root_pid=pid if launches_worker else None)) if sampler else None,
            on_tick=on_tick)
    finally:
        try:
            for f in (lifecycle, follower, predictions):   # the last lines, before the sampler's
                f.poll()                                    # window closes on the last sample
        finally:
            if sampler is not None:
                telemetry_record = sampler.stop()
    for f in (lifecycle, follower, predictions):
        f.close()
    _finish(record, run_dir, outcome, telemetry_record, checker)
    save_run(run_dir, record)
    return RunOutcome(run_id=run_id, run_dir=run_dir, record=record)


_UNWRITABLE_HINT = ("make ONLINEMAP_HOME (or ONLINEMAP_RESULTS) a writable folder with free space "
                    "(ls -ld, df -h), or point it elsewhere")


def _create_run_dir(model: str, results_root: Path | None) -> tuple[str, Path]:
    """A fresh run directory, or one line (exit 4) when the results folder cannot take one."""
    try:
        return new_run_dir(model, results_root)
    except OSError as exc:
        where = getattr(exc, "filename", None) or results_root or paths.results_dir()
        raise ResultsError(f"cannot create a run directory in {where}: {exc.strerror or exc}",
                           _UNWRITABLE_HINT) from None


def _write_run_start(spec: ModelSpec, settings: RunSettings, env, run_id: str, run_dir: Path, root: Path,
                     version: str, device: str, samples: list, gpu: dict,
                     export_dir: Path | None = None) -> tuple[rs.RunRecord, dict]:
    """The files a run starts with: empty result files, job.json, run.json (``running``)."""
    files = {name: run_dir / name for name in (rs.EVENTS_FILE, rs.SAMPLES_FILE, rs.PREDICTIONS_FILE, rs.LOG_FILE,
                                               rs.JOB_FILE, rs.TELEMETRY_FILE)}
    for name in (rs.EVENTS_FILE, rs.SAMPLES_FILE, rs.PREDICTIONS_FILE):
        files[name].touch()
    checkpoint = None
    if spec.checkpoint is not None and spec.checkpoint.file:
        checkpoint = str(paths.weights_dir() / spec.checkpoint.file)
    from onlinemap.readiness import repo_dir

    repo = repo_dir(spec)
    config = spec.config.default if spec.config else None
    if config and repo is not None and not os.path.isabs(config):
        config = str(repo / config)
    job = {
        "protocol": ev.PROTOCOL_VERSION, "model": spec.name, "adapter": str(spec.adapter_path),
        "settings": {"model": spec.name, "config": config, "checkpoint": checkpoint, "dataroot": str(root),
                     "version": version, "device": device, "repo": str(repo) if repo else None,
                     "options": settings.options},
        "samples": samples, "warmup": min(settings.warmup, len(samples)), "count": settings.samples,
        "min_samples": settings.min_samples, "min_duration_s": settings.min_duration_s, "timer": settings.timer,
        "ci_target_pct": settings.ci_target_pct, "max_duration_s": settings.max_duration_s,
        "rate_hz": settings.rate_hz,
        "events": str(files[rs.EVENTS_FILE]), "samples_out": str(files[rs.SAMPLES_FILE]),
        "predictions": str(files[rs.PREDICTIONS_FILE]), "parent_pid": os.getpid(),
        "backend": {"name": settings.backend, "export_dir": str(export_dir) if export_dir else None},
    }
    write_json_atomic(files[rs.JOB_FILE], job)
    import onlinemap
    from onlinemap.telemetry.hostinfo import host_record

    record = rs.RunRecord(
        run_id=run_id, model=spec.name, kind=settings.kind, created=utc_now(),
        settings={**settings.to_dict(), "device": device, "dataroot": str(root), "version": version,
                  "sample_count_planned": len(samples)},
        model_spec={"task": spec.task, "outputs": spec.outputs, "env_kind": spec.env_kind, "temporal": spec.temporal,
                    "variant": spec.variant,
                    "repo": spec.repo.to_dict() if spec.repo else None, "config": config,
                    "checkpoint": spec.checkpoint.to_dict() if spec.checkpoint else None},
        env=env.to_dict(), driver={**driver_identity(), "onlinemap": onlinemap.__version__,
                                   "python": platform.python_version()},
        host=host_record(), gpu=gpu, tags=dict(settings.tags))
    save_run(run_dir, record)

    return record, files


def _finish(record: rs.RunRecord, run_dir: Path, outcome, telemetry: dict | None, checker=None) -> None:
    """Fill status, summary and error from the files the worker wrote and the process outcome."""
    from onlinemap.runs.summary import summarize_run

    lifecycle = {}
    error_event = None
    for event in iter_jsonl(run_dir / rs.EVENTS_FILE):
        lifecycle[event.get("event")] = event
        if event.get("event") == ev.ERROR:
            error_event = event
    env_event = lifecycle.get(ev.ENV) or {}
    record.versions = {k: env_event.get(k) for k in ("python", "torch", "torch_cuda", "cudnn", "cuda_available",
                                                      "packages", "gpu") if k in env_event}
    summary, invalid = summarize_run(run_dir, lifecycle, telemetry,
                                     temporal=bool((record.model_spec or {}).get("temporal")),
                                     predictions=checker)
    summary["warnings"] = _stop_rule_warnings(record.settings, summary)
    for warning in summary["warnings"]:
        log.warning("%s: %s", record.model, warning)
    record.summary = summary
    record.finished = utc_now()
    if outcome.interrupted:
        record.status = "interrupted"
        record.exit_code = exit_code_for_signal(outcome.interrupted)
        record.error = {"message": f"interrupted by {outcome.interrupted}; the model process group was killed",
                        "hint": "finished samples are kept in samples.jsonl"}
    elif outcome.timeout:
        record.status = "timeout"
        record.exit_code = EXIT_TIMEOUT
        what = {"wall": "wall-clock timeout", "launch": "launch timeout (the model process never started: no event "
                "from the worker)"}.get(outcome.timeout, "inactivity timeout (no output, no new sample)")
        record.error = {"message": f"{what} after {outcome.duration_s:.0f} s; the model process group was killed",
                        "hint": "raise --timeout/--inactivity-timeout, or look at log.txt for where it hung"}
    elif outcome.returncode != 0 or error_event is not None:
        record.status = "failed"
        record.exit_code = EXIT_FAILED
        if error_event is not None:
            record.error = _error_from_event(error_event, run_dir)
        elif _disk_nearly_full(run_dir):
            record.error = {"message": f"model process exited with code {outcome.returncode}: the disk holding "
                                       f"{run_dir} is full", "hint": "free space (df -h) and re-run; finished samples are kept"}
        else:
            record.error = {"message": f"model process exited with code {outcome.returncode} before finishing",
                            "hint": f"see the end of {run_dir / rs.LOG_FILE}"}
    elif invalid:
        record.status = "failed"
        record.exit_code = EXIT_FAILED
        record.error = {"message": f"{invalid} prediction(s) do not match the standard schema: "
                                   f"{summary['predictions']['first_error']}",
                        "hint": "fix the adapter's convert() (schema: onlinemap/schemas/prediction.schema.json)"}
    elif summary["samples"]["measured"] == 0:
        record.status = "failed"
        record.exit_code = EXIT_FAILED
        record.error = {"message": "no sample was measured", "hint": f"see {run_dir / rs.LOG_FILE}"}
    elif record.settings.get("refuse_throttled") and (telemetry or {}).get("throttled"):
        record.status = "failed"
        record.exit_code = EXIT_FAILED
        record.error = {"message": "GPU clocks were throttled while the run measured ("
                                   f"{', '.join(telemetry['throttle_reasons'])} in {telemetry['throttle_ticks']} "
                                   f"of {telemetry['throttle_checked_ticks']} sampler ticks): the figures are "
                                   "not the GPU's full speed",
                        "hint": "let the GPU cool, check its power limit (nvidia-smi -q -d PERFORMANCE,POWER) "
                                "and re-run, or drop --refuse-throttled to keep such runs"}
    else:
        record.status = "ok"
        record.exit_code = EXIT_OK


def _stop_rule_warnings(settings: dict, summary: dict) -> list[str]:
    """Say so when an open-ended run stopped because the samples ran out before its stop rule was met."""
    samples = summary.get("samples") or {}
    if samples.get("stop_reason") == "max_duration":
        rel = ((summary.get("latency_ms") or {}).get("forward") or {}).get("p50_ci_rel_pct")
        return [f"--max-duration {settings.get('max_duration_s'):g} s passed before the median's 95 % interval was "
                f"within +-{settings.get('ci_target_pct'):g} % (it is +-{rel if rel is None else round(rel, 2)} %): "
                "the forward time varies more than asked (see cv_pct), or raise --max-duration"]
    if settings.get("samples") is not None or samples.get("stop_reason") != "exhausted":
        return []
    measured, wanted = samples.get("measured") or 0, int(settings.get("min_samples") or 0)
    wall, min_s = summary.get("wall_s"), float(settings.get("min_duration_s") or 0)
    unmet = []
    if measured < wanted:
        unmet.append(f"{measured} of --min-samples {wanted} samples")
    if wall is not None and wall < min_s:
        unmet.append(f"{wall:.1f} of --min-duration {min_s:g} s")
    if not unmet:
        return []
    return [f"the dataset ran out after {' and '.join(unmet)}: the figures rest on fewer samples than asked "
            "(use a larger split, e.g. --version v1.0-trainval, or lower --min-samples/--min-duration)"]


_OOM_MARKERS = ("out of memory", "outofmemoryerror", "memoryerror", "cuda error: out of memory", "cannot allocate memory")


def _error_from_event(event: dict, run_dir: Path) -> dict:
    """One readable line (and a hint that fits the failure) from the worker's error event."""
    stage = event.get("stage")
    where = f" on sample {event.get('sample_token')}" if stage == ev.STAGE_SAMPLE else ""
    text = (event.get("message") or "").strip()
    first = text.splitlines()[0][:300] if text else ""
    hint = f"see {run_dir / rs.LOG_FILE}"
    blob = f"{event.get('type')} {text}".lower()
    if any(marker in blob for marker in _OOM_MARKERS):
        hint = ("the model ran out of memory: use a GPU with more memory, stop other jobs on it "
                f"(nvidia-smi), or a smaller config; details in {run_dir / rs.LOG_FILE}")
    elif "no space left" in blob or "errno 28" in blob:
        hint = "the disk is full: free space (df -h) and re-run; every finished sample is kept"
    elif stage == ev.STAGE_IMPORT:
        hint = f"the adapter could not be imported; details in {run_dir / rs.LOG_FILE}"
    return {"message": f"model {stage} failed{where}: {event.get('type')}: {first}", "hint": hint, "stage": stage,
            "traceback": event.get("traceback")}


def _disk_nearly_full(path: Path, margin_bytes: int = 64 * 1024 * 1024) -> bool:
    import shutil

    try:
        return shutil.disk_usage(path).free < margin_bytes
    except OSError:
        return False
