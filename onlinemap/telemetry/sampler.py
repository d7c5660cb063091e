"""The driver-side sampler: NVML device/process memory, utilisation, power and host RSS of a run.

Design note. One :class:`TelemetrySampler` per model process. The runner takes the device baseline
*before* launching the model (so the delta includes the CUDA context the model creates), starts the
sampler on the launched pid, and stops it when the process ends, times out or is interrupted::

    sampler = TelemetrySampler(device="cuda:0", period_s=0.02, csv_path=run_dir / "telemetry.csv",
                               env=child_env)
    sampler.take_baseline()
    proc = launch(...)
    sampler.start()                  # GPU figures from the launch on
    sampler.track(worker_pid)        # host tree rooted at the model process, once it is known
    ...
    record = sampler.stop()      # idempotent; a plain JSON-ready dict with RECORD_KEYS

A daemon thread ticks every ``period_s`` (default 20 ms). Each tick reads NVML device memory (v2
struct), the device's process list, utilisation and power; every ``host_every``-th tick (default 5,
i.e. every 100 ms) it also reads the host process tree (RSS and CPU time, from /proc). The tree's pids
from the last host reading are the ones looked up in NVML's process list. Without a GPU to read
(CPU runs, no NVML) the thread wakes only for the host readings, every ``host_only_period_s``
(default 0.5 s; ``samples`` then counts those wake-ups). Why slower than with a GPU: there, a host
reading rides a tick that wakes for NVML anyway; alone, every reading is a wake-up of its own, and
on a VM that costs as much as the reading (~0.3 ms of CPU in all here, issue 16: at 10 a second it
was the driver's largest cost). The peak is not lost to the slower series: the worker reports its
own exact peak RSS (the kernel's high-water mark, ``summary.memory.worker_rss_peak_mb``).

Attribution rules, never a fake zero (STYLE habit 6): a figure that was not measured is None and
the ``*_reason`` beside it says why. In particular NVML per-process memory is reported only when
one of the tree's pids really appears in NVML's list with a non-zero value; containers with their
own PID namespace get host pids from the driver ("pid not visible"), newer drivers there give our
pid with no or zero memory ("not available"; HAMi-core #112). Device-level memory does not depend on
pids and is right in containers, but counts every process on the GPU: the runner's pre-flight
check (:func:`onlinemap.telemetry.nvml.preflight`) warns when the GPU was not idle.

A sampler this coarse misses peaks shorter than a period: torch's ``max_memory_*`` (recorded in
the model process) are the exact peaks; these NVML figures add what torch cannot see (the CUDA
context, other allocators).
"""
from __future__ import annotations

import collections
import csv
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from onlinemap.telemetry.nvml import MIB, REASON_CPU, THROTTLE_REASONS, NvmlCallError, \
    decode_clock_reasons, gpu_state, load_nvml, parse_device, resolve_device

__all__ = [
    "TelemetrySampler", "TelemetryRecord", "RECORD_KEYS", "CSV_HEADER",
    "DEFAULT_PERIOD_S", "DEFAULT_HOST_EVERY", "DEFAULT_HOST_ONLY_PERIOD_S",
    "REASON_PID_NOT_VISIBLE", "REASON_NOT_AVAILABLE", "REASON_NO_PROCESS_LISTED",
    "REASON_NOT_STARTED", "REASON_NOT_SUPPORTED",
]

log = logging.getLogger(__name__)

DEFAULT_PERIOD_S = 0.02
DEFAULT_HOST_EVERY = 5
#: without a GPU to read, the wake-up period of the host readings (each one a wake-up of its own)
DEFAULT_HOST_ONLY_PERIOD_S = 0.5
#: clock readings waiting for the window's end to pass them: the runner's lag (< 1 s) at most, but
#: all of the model's start-up before the first measured sample (22 min at 50 Hz; older ones are
#: before the window anyway)
READINGS_KEPT = 1 << 16

#: NVML lists processes on the device, but none of them is in the model's process tree
REASON_PID_NOT_VISIBLE = "pid not visible"
#: one of our pids is listed, but NVML gives no memory figure for it (None, or 0)
REASON_NOT_AVAILABLE = "not available"
#: NVML listed no process at all on the device during the run
REASON_NO_PROCESS_LISTED = "no process listed"
REASON_NOT_STARTED = "sampler not started"
REASON_NOT_SUPPORTED = "not supported"

CSV_HEADER = ("t_s", "device_used_mb", "process_used_mb", "gpu_util_pct", "power_w", "host_rss_mb")


@dataclass
class TelemetryRecord:
    """What one sampler measured. MiB and seconds; None figures have a ``*_reason`` beside them.

    ``nvml_device_*`` share ``nvml_device_reason`` (for the baseline and the delta as well as the
    peak); ``notes`` collects facts worth keeping that are not reasons (v1 struct, a negative delta,
    a late baseline, a sampler error).
    """

    device: str
    period_s: float
    samples: int = 0
    host_period_s: float | None = None
    host_samples: int = 0
    duration_s: float | None = None
    gpu_uuid: str | None = None
    nvml_memory_struct: str | None = None
    nvml_device_used_peak_mb: float | None = None
    nvml_device_baseline_mb: float | None = None
    nvml_device_delta_peak_mb: float | None = None
    nvml_device_reason: str | None = None
    nvml_process_used_peak_mb: float | None = None
    nvml_process_reason: str | None = None
    gpu_util_peak_pct: float | None = None
    gpu_util_reason: str | None = None
    power_peak_w: float | None = None
    power_reason: str | None = None
    host_rss_peak_mb: float | None = None
    host_cpu_time_s: float | None = None
    host_reason: str | None = None
    host_root_pid: int | None = None
    sampler_cpu_s: float | None = None
    sampler_cpu_pct: float | None = None
    gpu_state_before: dict | None = None
    gpu_state_after: dict | None = None
    gpu_state_reason: str | None = None
    throttled: bool | None = None
    throttle_reasons: list = field(default_factory=list)
    throttle_ticks: int = 0
    throttle_checked_ticks: int = 0
    throttle_reason: str | None = None
    energy_j: float | None = None
    energy_samples: int = 0
    energy_per_sample_j: float | None = None
    energy_reason: str | None = None
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


#: every key of the dict :meth:`TelemetrySampler.stop` returns, in order
RECORD_KEYS = tuple(f.name for f in fields(TelemetryRecord))


def _mb(nbytes: float | None) -> float | None:
    return None if nbytes is None else round(nbytes / MIB, 2)


def _cell(value: float | None, fmt: str = "%.2f") -> str:
    return "" if value is None else fmt % value


class _Channel:
    """Peak of one optional NVML reading; switched off at its first error (keeps ticks cheap)."""

    def __init__(self) -> None:
        self.peak: float | None = None
        self.count = 0
        self.error: str | None = None

    def read(self, fn: Any) -> float | None:
        if self.error is not None:
            return None
        try:
            value = float(fn())
        except NvmlCallError as exc:
            self.error = REASON_NOT_SUPPORTED if exc.not_supported else f"query failed: {exc}"
            return None
        self.count += 1
        if self.peak is None or value > self.peak:
            self.peak = value
        return value

    def reason(self, what: str, notes: list) -> str | None:
        if self.peak is not None:
            if self.error is not None:
                notes.append(f"{what}: stopped after {self.count} samples ({self.error})")
            return None
        return self.error or "no sample taken"


class TelemetrySampler:
    """Samples GPU memory (NVML), utilisation, power and host RSS of one model process tree.

    ``device``: "cpu" (GPU figures None with reason "device is cpu"), "cuda" or "cuda:N" as the
    model process sees it. ``env``: the model process's environment, for ``CUDA_VISIBLE_DEVICES``
    (default ``os.environ``). ``nvml``: an Nvml-like object (tests; NVML is then not shut down
    here); by default NVML is loaded at :meth:`take_baseline` / :meth:`start` and shut down at
    :meth:`stop`. ``host_every``: walk the process tree every N-th tick; without a GPU to read,
    every ``host_only_period_s`` instead (see the module docstring). ``csv_path``: also write
    the series, one row per tick that read anything (header :data:`CSV_HEADER`, empty cells for
    values not read in that tick; host RSS is only read every ``host_every``-th tick).
    """

    def __init__(self, device: str = "cpu", period_s: float = DEFAULT_PERIOD_S,
                 csv_path: str | Path | None = None, *, nvml: Any = None,
                 host_every: int = DEFAULT_HOST_EVERY, env: Mapping[str, str] | None = None,
                 host_only_period_s: float = DEFAULT_HOST_ONLY_PERIOD_S):
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s!r}")
        if not host_only_period_s > 0:
            raise ValueError(f"host_only_period_s must be > 0, got {host_only_period_s!r}")
        if int(host_every) < 1:
            raise ValueError(f"host_every must be >= 1, got {host_every!r}")
        self._cuda_index = parse_device(device)  # UsageError on a malformed device, before launch
        self.device = str(device)
        self.period_s = float(period_s)
        self.host_every = int(host_every)
        self.host_only_period_s = float(host_only_period_s)
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self._env = env
        self._nvml = nvml
        self._owns_nvml = False
        self._gpu_ready = False
        self._gpu_reason: str | None = REASON_CPU if self._cuda_index is None else None
        self._ref: Any = None
        self._baseline: int | None = None
        self._baseline_reason: str | None = None
        self._notes: list[str] = []

        # re-entrant: a signal handler calling stop() while this thread is inside start()
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._record: TelemetryRecord | None = None
        self._t0 = 0.0
        self._t_end: float | None = None
        self._host: Any = None
        self._host_reason: str | None = None
        self._tree_pids: frozenset = frozenset()
        self._csv_fh: Any = None
        self._csv: Any = None

        # written by the sampler thread only; read by stop() after join
        self._ticks = 0
        self._late_ticks = 0
        self._sampler_cpu_s: float | None = None
        self._fatal: str | None = None
        self._mem_peak: int | None = None
        self._mem_count = 0
        self._mem_error: str | None = None
        self._struct: str | None = None
        self._proc_peak: int | None = None
        self._proc_error: str | None = None
        self._proc_any_listed = False
        self._proc_found = False
        self._proc_zero = False
        self._util = _Channel()
        self._power = _Channel()
        # the measured window, told by the runner (note_measured) as measured samples arrive, in
        # the samples' own wall-clock times: the runner reads samples.jsonl in batches (every
        # 0.25 s while they flow), so when it sees a sample says little about when it ran
        self._measured = 0                    # driver thread: measured samples seen
        self._win_start: float | None = None      # the first measured sample's start (time.time())
        self._win_first_end: float | None = None  # ... and its end
        self._win_end: float | None = None        # the latest measured sample's end; set last
        self._state_before: dict | None = None
        self._state_after: dict | None = None
        # sampler thread: clock event reasons and energy, read every tick, kept as (time, mask,
        # energy) until the window's end has passed them; then inside the window or not
        self._reason_error: str | None = None
        self._energy_error: str | None = None
        self._readings: collections.deque = collections.deque(maxlen=READINGS_KEPT)
        self._window = [0, 0, 0]              # readings inside the window: checked, throttled, mask
        self._energy_begin: int | None = None     # the counter at the last reading <= first end
        self._energy_end: int | None = None       # ... at the last reading in (first end, end]

    # -- before launch ------------------------------------------------------------------------
    def _ensure_gpu(self) -> None:
        """Load NVML (unless given) and resolve the device, once; failures become _gpu_reason."""
        if self._gpu_ready or self._gpu_reason is not None:
            return
        if self._nvml is None:
            self._nvml, reason = load_nvml()
            if self._nvml is None:
                self._gpu_reason = reason
                return
            self._owns_nvml = True
        try:
            self._ref = resolve_device(self.device, self._nvml, self._env)
        except Exception as exc:  # MissingPrerequisiteError, UsageError (MIG), NvmlCallError
            self._gpu_reason = f"device not resolved: {exc}"
            return
        self._gpu_ready = True

    def take_baseline(self) -> float | None:
        """Read NVML device memory used before the model starts; returns it in MiB (or None)."""
        self._ensure_gpu()
        if not self._gpu_ready:
            self._baseline_reason = self._gpu_reason
            return None
        try:
            mem = self._nvml.memory_info(self._ref.handle)
        except NvmlCallError as exc:
            self._baseline, self._baseline_reason = None, f"baseline query failed: {exc}"
            return None
        self._baseline, self._baseline_reason = mem.used, None
        self._struct = mem.struct
        return _mb(mem.used)

    # -- run ----------------------------------------------------------------------------------
    def start(self, root_pid: int | None = None) -> None:
        """Start sampling in a daemon thread; the host tree under ``root_pid`` (or later, :meth:`track`).

        The runner passes no root: what it launched is ``conda run`` or another launcher, whose
        own memory is not the model's; it calls :meth:`track` with the worker's pid instead.
        """
        with self._lock:
            if self._thread is not None or self._record is not None:
                raise RuntimeError("TelemetrySampler.start() called twice or after stop(); "
                                   "use one sampler per run")
            if self._baseline is None and self._baseline_reason is None:
                self.take_baseline()
                if self._baseline is not None:
                    self._notes.append("baseline taken at start(), after launch: "
                                       "the delta may miss memory the model took before that")
            if root_pid is not None:
                self.track(root_pid)
            else:
                self._host_reason = "the model process never reported its pid (no started event)"
            if self._stop_event.is_set():  # stop() ran from a signal handler during start()
                return
            if self.csv_path is not None:
                self._open_csv()
            self._t0 = time.monotonic()
            self._thread = threading.Thread(target=self._run, name=f"telemetry-{self.device}",
                                            daemon=True)
            self._thread.start()

    def track(self, root_pid: int, exclude: int | None = None) -> None:
        """Root the host tree (and the pids matched against NVML) at ``root_pid`` from now on.

        ``exclude``: a child that is not the model (the harness's result writer) is left out of
        the tree, with its own children.
        """
        with self._lock:
            if self._host is not None and self._host.root_pid == int(root_pid):
                if exclude is not None:
                    self._host.exclude(exclude)
                return
            try:
                from onlinemap.telemetry.host import ProcessTreeTracker

                tracker = ProcessTreeTracker(root_pid, exclude=() if exclude is None else (exclude,))
            except ImportError:   # psutil: needed only where the kernel lacks the children lists
                self._host_reason = "psutil not installed"
                return
            tracker.sample()   # one reading now: a short-lived worker may be gone by the next tick
            self._tree_pids = frozenset({int(root_pid)})
            # a replaced tracker closes its files when the last reference (the thread's, mid-tick) goes
            self._host = tracker   # one assignment: the sampler thread sees the old or the new tree
            self._host_reason = None

    def note_measured(self, t_end: float | None = None, t_start: float | None = None) -> None:
        """The runner saw one more measured (non-warm-up) sample; cheap, called per sample line.

        ``t_end`` / ``t_start``: when the sample ended and began (``time.time()``, the worker's
        clock, which is this machine's; default: now). The first call snapshots the GPU state
        (``gpu_state_before``) and opens the throttle and energy window at that sample's start;
        each call moves its end. Readings are placed by their own times, so ticks after the last
        sample (the model exiting) never count, however late the runner reads the samples.
        """
        self._measured += 1
        if not self._gpu_ready:
            return
        if t_end is None:
            t_end = time.time()
        if self._measured == 1:
            try:
                self._state_before = gpu_state(self._nvml, self._ref.handle)
            except Exception as exc:  # a broken driver must not stop the run
                self._notes.append(f"GPU state before not read: {exc}")
            self._win_start = min(t_end, t_start) if t_start is not None else t_end
            self._win_first_end = t_end
        if self._win_end is None or t_end > self._win_end:
            self._win_end = t_end     # last: the sampler thread reads it first, then the start

    def _open_csv(self) -> None:
        try:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._csv_fh = open(self.csv_path, "w", newline="", encoding="utf-8",
                                buffering=1 << 16)
            self._csv = csv.writer(self._csv_fh)
            self._csv.writerow(CSV_HEADER)
        except OSError as exc:  # telemetry must not kill a benchmark run
            self._notes.append(f"telemetry CSV not written: {exc}")
            self._csv_fh = self._csv = None

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_t = self._t0
        # without a GPU to read, only the host readings have anything to do: wake only for those
        step = self.period_s if self._gpu_ready else self.host_only_period_s
        try:
            while True:
                self._tick(time.monotonic() - self._t0)
                next_t += step
                delay = next_t - time.monotonic()
                if delay < 0:  # a slow tick: skip ahead rather than burst to catch up
                    self._late_ticks += 1
                    next_t = time.monotonic()
                    delay = 0.0
                if self._stop_event.wait(delay):
                    break
        except Exception as exc:  # never let the thread die silently: the record says why
            self._fatal = f"sampler error after {self._ticks} ticks: {type(exc).__name__}: {exc}"
            log.exception("telemetry sampler stopped")
        finally:
            self._t_end = time.monotonic()
            self._sampler_cpu_s = time.thread_time() - cpu0

    def _tick(self, t: float) -> None:
        rss_mb = None
        host = self._host
        if host is not None and (self._ticks % self.host_every == 0 or not self._gpu_ready):
            s = host.sample()
            if s is not None:
                rss_mb = s.rss_bytes / MIB
                self._tree_pids = s.pids | {host.root_pid}
        dev_mb = proc_mb = util = power = None
        if self._gpu_ready:
            nv, h = self._nvml, self._ref.handle
            try:
                mem = nv.memory_info(h)
            except NvmlCallError as exc:
                self._mem_error = str(exc)
            else:
                self._mem_count += 1
                self._struct = mem.struct
                dev_mb = mem.used / MIB
                if self._mem_peak is None or mem.used > self._mem_peak:
                    self._mem_peak = mem.used
            proc_mb = self._sample_processes(nv, h)
            util = self._util.read(lambda: nv.utilization_pct(h))
            power = self._power.read(lambda: nv.power_w(h))
            self._sample_clock_state(nv, h)
        self._ticks += 1
        if self._csv is not None and not (dev_mb is None and proc_mb is None and util is None
                                          and power is None and rss_mb is None):
            self._csv.writerow((_cell(t, "%.3f"), _cell(dev_mb), _cell(proc_mb),
                                _cell(util, "%.0f"), _cell(power), _cell(rss_mb)))

    def _sample_clock_state(self, nv: Any, h: Any) -> None:
        """Clock event reasons and the energy counter, kept with their time for the window."""
        t = time.time()
        mask = energy = None
        if self._reason_error is None:
            try:
                mask = int(nv.clock_event_reasons(h))
            except NvmlCallError as exc:
                self._reason_error = (REASON_NOT_SUPPORTED if exc.not_supported
                                      else f"query failed: {exc}")
        if self._energy_error is None:
            try:
                energy = nv.energy_mj(h)
            except NvmlCallError as exc:
                self._energy_error = (REASON_NOT_SUPPORTED if exc.not_supported
                                      else f"query failed: {exc}")
        if mask is not None or energy is not None:
            self._readings.append((t, mask, energy))
        self._place_readings()

    def _place_readings(self) -> None:
        """Put every reading the window's end has passed inside the window or outside it."""
        end = self._win_end
        if end is None:
            return
        start, first_end = self._win_start, self._win_first_end
        readings, w = self._readings, self._window
        while readings and readings[0][0] <= end:
            t, mask, energy = readings.popleft()
            if energy is not None:
                if t <= first_end:
                    self._energy_begin = energy
                else:
                    self._energy_end = energy
            if mask is not None and t >= start:
                w[0] += 1
                if THROTTLE_REASONS.intersection(decode_clock_reasons(mask)):
                    w[1] += 1
                    w[2] |= mask

    def _sample_processes(self, nv: Any, h: Any) -> float | None:
        """Sum of NVML per-process memory over our tree's pids, when really found (MiB)."""
        if self._proc_error is not None:
            return None
        try:
            procs = nv.running_processes(h)
        except NvmlCallError as exc:
            self._proc_error = REASON_NOT_SUPPORTED if exc.not_supported else f"query failed: {exc}"
            return None
        if procs:
            self._proc_any_listed = True
        ours = [p for p in procs if p.pid in self._tree_pids]
        if not ours:
            return None
        self._proc_found = True
        values = [p.used_bytes for p in ours if p.used_bytes]  # None and 0 are not figures
        if any(p.used_bytes == 0 for p in ours):
            self._proc_zero = True
        if not values:
            return None
        total = sum(values)
        if self._proc_peak is None or total > self._proc_peak:
            self._proc_peak = total
        return total / MIB

    # -- after --------------------------------------------------------------------------------
    def stop(self) -> dict:
        """Stop sampling (idempotent, thread-safe), flush the CSV and return the record as a dict."""
        with self._lock:
            if self._record is None:
                self._stop_event.set()
                if self._thread is not None:
                    self._thread.join(timeout=max(5.0, 10 * self.period_s))
                    if self._thread.is_alive():
                        self._notes.append("sampler thread did not stop within the join timeout")
                if self._thread is None or not self._thread.is_alive():   # nothing reads them any more
                    if self._host is not None:
                        self._host.close()
                if self._csv_fh is not None:
                    try:
                        self._csv_fh.close()
                    except OSError as exc:
                        self._notes.append(f"telemetry CSV not flushed: {exc}")
                    self._csv_fh = self._csv = None
                if self._gpu_ready and self._measured:
                    self._place_readings()   # up to the last sample the runner saw
                    try:
                        self._state_after = gpu_state(self._nvml, self._ref.handle)
                    except Exception as exc:
                        self._notes.append(f"GPU state after not read: {exc}")
                self._record = self._build_record()
                if self._owns_nvml and self._nvml is not None:
                    try:
                        self._nvml.shutdown()
                    except Exception as exc:
                        log.debug("NVML shutdown failed: %s", exc)
                    self._owns_nvml = False
            return self._record.to_dict()

    def _build_record(self) -> TelemetryRecord:
        started = self._thread is not None
        notes = list(self._notes)
        rec = TelemetryRecord(device=self.device, period_s=self.period_s, samples=self._ticks,
                              nvml_memory_struct=self._struct,
                              host_period_s=round(self.period_s * self.host_every if self._gpu_ready
                                                  else self.host_only_period_s, 6))
        if self._ref is not None:
            rec.gpu_uuid = self._ref.uuid
        if started:
            end = self._t_end if self._t_end is not None else time.monotonic()
            rec.duration_s = round(end - self._t0, 4)
            if self._sampler_cpu_s is not None:
                rec.sampler_cpu_s = round(self._sampler_cpu_s, 6)
                if rec.duration_s:
                    rec.sampler_cpu_pct = round(100.0 * self._sampler_cpu_s / rec.duration_s, 3)
        if self._fatal:
            notes.append(self._fatal)
        if self._late_ticks:
            notes.append(f"{self._late_ticks} ticks ran later than period_s")

        # NVML device memory: peak, baseline before launch, delta
        gpu_reason = self._gpu_reason
        if gpu_reason is None and not started:
            gpu_reason = REASON_NOT_STARTED
        if gpu_reason is not None:
            rec.nvml_device_reason = rec.nvml_process_reason = gpu_reason
            rec.gpu_util_reason = rec.power_reason = gpu_reason
            if self._baseline is not None:
                rec.nvml_device_baseline_mb = _mb(self._baseline)
        else:
            rec.nvml_device_used_peak_mb = _mb(self._mem_peak)
            rec.nvml_device_baseline_mb = _mb(self._baseline)
            if self._mem_peak is None:
                rec.nvml_device_reason = (f"query failed: {self._mem_error}" if self._mem_error
                                          else "no sample taken")
            elif self._baseline is None:
                rec.nvml_device_reason = self._baseline_reason or "baseline not taken"
            else:
                rec.nvml_device_delta_peak_mb = round(
                    rec.nvml_device_used_peak_mb - rec.nvml_device_baseline_mb, 2)
                if rec.nvml_device_delta_peak_mb < 0:
                    notes.append("device memory fell below the baseline: another process freed "
                                 "memory during the run; the delta is not the model's alone")
            if self._mem_error and self._mem_peak is not None:
                notes.append(f"some device memory samples failed: {self._mem_error}")
            if self._struct == "v1":
                notes.append("NVML v1 memory struct: 'used' includes driver-reserved memory")
            rec.nvml_process_used_peak_mb, rec.nvml_process_reason = self._process_result(notes)
            rec.gpu_util_peak_pct = self._util.peak
            rec.gpu_util_reason = self._util.reason("gpu utilisation", notes)
            rec.power_peak_w = self._power.peak
            rec.power_reason = self._power.reason("power", notes)
            self._clock_state_result(rec)

        if gpu_reason is not None:
            rec.gpu_state_reason = rec.throttle_reason = rec.energy_reason = gpu_reason

        # host process tree
        if self._host is not None:
            h = self._host.result()
            rec.host_samples = h["samples"]
            rec.host_rss_peak_mb = _mb(h["rss_peak_bytes"])
            cpu = h["cpu_time_s"]
            rec.host_cpu_time_s = None if cpu is None else round(cpu, 4)
            rec.host_reason = h["reason"]
            rec.host_root_pid = self._host.root_pid
        else:
            rec.host_reason = self._host_reason or REASON_NOT_STARTED
        rec.notes = notes
        return rec

    def _clock_state_result(self, rec: TelemetryRecord) -> None:
        """GPU state before/after, throttling during the measured window, energy per sample."""
        rec.gpu_state_before, rec.gpu_state_after = self._state_before, self._state_after
        no_window = "no measured sample was seen"
        if self._state_before is None:
            rec.gpu_state_reason = no_window if not self._measured else "GPU state not read"
        checked, hit, mask = self._window
        rec.throttle_checked_ticks, rec.throttle_ticks = checked, hit
        rec.throttle_reasons = [r for r in decode_clock_reasons(mask) if r in THROTTLE_REASONS]
        if self._reason_error is not None and not checked:
            rec.throttle_reason = self._reason_error
        elif not checked:
            rec.throttle_reason = (no_window if not self._measured
                                   else "no sampler tick inside the measured window")
        else:
            rec.throttled = hit > 0
        if self._energy_error is not None:
            rec.energy_reason = self._energy_error
        elif self._measured < 2:
            rec.energy_reason = no_window if not self._measured else "fewer than two measured samples"
        elif self._energy_begin is None or self._energy_end is None:
            rec.energy_reason = "no energy reading in time"
        else:
            e0, e1 = self._energy_begin, self._energy_end
            n = rec.energy_samples = self._measured - 1   # those ending after the first one's end
            if e1 < e0:
                rec.energy_reason = "energy counter went backwards"
            else:
                rec.energy_j = round((e1 - e0) / 1000.0, 3)
                rec.energy_per_sample_j = round(rec.energy_j / n, 4)

    def _process_result(self, notes: list) -> tuple[float | None, str | None]:
        if self._proc_peak is not None:
            return _mb(self._proc_peak), None
        if self._proc_found:
            if self._proc_zero:
                notes.append("NVML listed our pid with 0 MiB (driver in a container, "
                             "HAMi-core #112): treated as not available")
            return None, REASON_NOT_AVAILABLE
        if self._proc_error is not None:
            return None, self._proc_error
        if self._proc_any_listed:
            return None, REASON_PID_NOT_VISIBLE
        return None, REASON_NO_PROCESS_LISTED if self._ticks else "no sample taken"
