"""The harness worker under a real subprocess: events, samples, predictions, warm-up, stop rules,
errors mid-run, and the watchdog that stops an orphaned worker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onlinemap.harness import nuscenes_index
from tests.conftest import FIXTURES, REPO, read_jsonl

WORKER = REPO / "onlinemap" / "harness" / "worker.py"


def make_job(tmp_path: Path, root: Path, adapter: Path, n: int, **extra) -> Path:
    samples = nuscenes_index.ordered_samples(str(root), "v1.0-mini")[:n]
    job = {"adapter": str(adapter), "samples": samples, "warmup": 2, "count": None, "min_samples": 1,
           "min_duration_s": 0, "settings": {"model": "t", "dataroot": str(root), "version": "v1.0-mini",
                                              "device": "cpu", "options": {}},
           "events": str(tmp_path / "events.jsonl"), "samples_out": str(tmp_path / "samples.jsonl"),
           "predictions": str(tmp_path / "predictions.jsonl")}
    job.update(extra)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return path


def run_worker(job: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run([sys.executable, str(WORKER), str(job)], capture_output=True, text=True, env=full,
                          timeout=120, **kw)


def test_reference_streams_every_sample_with_timings(tmp_path, synth_root):
    job = make_job(tmp_path, synth_root, REPO / "envs" / "reference" / "demo.py", 6, count=4)
    proc = run_worker(job)
    assert proc.returncode == 0, proc.stderr
    events = [e["event"] for e in read_jsonl(tmp_path / "events.jsonl")]
    assert events == ["started", "env", "loaded", "memory", "finished"]
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert [s["warmup"] for s in samples] == [True, True, False, False, False, False]
    for s in samples:
        assert s["ok"] and s["forward_ms"] > 0 and s["data_ms"] > 0 and s["convert_ms"] >= 0
        assert s["total_ms"] >= s["forward_ms"] + s["data_ms"]
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    assert [p["sample_token"] for p in preds] == [s["sample_token"] for s in samples]
    mem = read_jsonl(tmp_path / "events.jsonl")[3]
    assert mem["torch_max_allocated_mb"] is None and mem["reason"] == "device is cpu"
    finished = read_jsonl(tmp_path / "events.jsonl")[-1]
    assert finished["measured"] == 4 and finished["stop_reason"] == "count"


SPIKE_ADAPTER = '''
import os


class Adapter(object):
    """Touches 300 MiB during load and frees it: a peak no sampler a few times a second can be sure to see."""

    def __init__(self, settings):
        pass

    def load(self):
        block = bytearray(300 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1            # resident, not just reserved
        del block

    def prepare(self, sample):
        return sample

    def forward(self, sample):
        with open("/proc/self/statm") as fh:    # resident now, after the spike was freed
            self.rss_mb = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576.0
        return {"token": sample["token"]}

    def convert(self, raw, sample):
        return {"sample_token": raw["token"], "model": "spike", "detections_3d": [],
                "note_rss_mb": self.rss_mb}
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc to read the current RSS")
def test_memory_event_carries_the_worker_s_exact_peak_rss_even_a_freed_spike(tmp_path, synth_root):
    """The kernel's high-water mark (getrusage), not a sampled figure: a load-time spike freed
    before the first sample is in it, while the resident size during the samples is far below."""
    adapter = tmp_path / "spike.py"
    adapter.write_text(SPIKE_ADAPTER)
    proc = run_worker(make_job(tmp_path, synth_root, adapter, 3, count=2))
    assert proc.returncode == 0, proc.stderr
    mem = [e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "memory"][0]
    during = max(p["note_rss_mb"] for p in read_jsonl(tmp_path / "predictions.jsonl"))
    assert during < 250                           # the spike was given back before the samples
    assert mem["worker_rss_peak_mb"] >= 300 and mem["worker_rss_peak_mb"] > during + 250


HELD_ADAPTER = '''
import sys
import weakref


class Held(object):
    pass


class Adapter(object):
    """Records, when it prepares a sample, which of the previous sample's objects are still alive."""

    def __init__(self, settings):
        self.refs = {}
        self.last_pred = None
        self.only_mine = None

    def load(self):
        pass

    def prepare(self, sample):
        alive = [name for name, ref in sorted(self.refs.items()) if ref() is not None]
        # a dict cannot be weakly referenced: held by this adapter alone, its count is only_mine's
        if self.last_pred is not None and sys.getrefcount(self.last_pred) > sys.getrefcount(self.only_mine):
            alive.append("prediction")
        self.last_pred = None
        inputs = Held()
        inputs.token, inputs.alive = sample["token"], alive
        self.refs = {"inputs": weakref.ref(inputs)}
        return inputs

    def forward(self, inputs):
        raw = Held()
        raw.token, raw.alive = inputs.token, inputs.alive
        self.refs["raw"] = weakref.ref(raw)
        return raw

    def convert(self, raw, sample):
        pred = {"sample_token": raw.token, "model": "held", "detections_3d": [], "held_over": raw.alive}
        self.last_pred, self.only_mine = pred, {}
        return pred
'''


def test_a_sample_s_inputs_outputs_and_prediction_are_released_before_the_next_is_prepared(tmp_path, synth_root):
    """On a GPU the previous sample's input and output tensors would otherwise still be allocated
    through the next forward, in its torch peak (mmdet3d's benchmark loop never holds them)."""
    adapter = tmp_path / "held.py"
    adapter.write_text(HELD_ADAPTER)
    proc = run_worker(make_job(tmp_path, synth_root, adapter, 5, count=3))
    assert proc.returncode == 0, proc.stderr
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    assert len(preds) == 5 and preds[0]["held_over"] == []
    assert [p["held_over"] for p in preds[1:]] == [[]] * 4


def test_open_ended_run_stops_after_min_samples_and_duration(tmp_path, synth_root):
    job = make_job(tmp_path, synth_root, FIXTURES / "envs" / "crashref" / "demo.py", 30, warmup=1,
                   min_samples=3, min_duration_s=0.0)
    assert run_worker(job).returncode == 0
    finished = read_jsonl(tmp_path / "events.jsonl")[-1]
    assert finished["measured"] == 3 and finished["stop_reason"] == "min_samples_and_duration"


def test_exception_mid_run_keeps_finished_samples_and_reports_the_error(tmp_path, synth_root):
    job = make_job(tmp_path, synth_root, FIXTURES / "envs" / "crashref" / "demo.py", 8, count=6)
    proc = run_worker(job, {"ONLINEMAP_TEST_CRASH_AT": "5", "ONLINEMAP_TEST_RAISE": "1"})
    assert proc.returncode == 1
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert [s["ok"] for s in samples] == [True] * 5 + [False]
    assert "bad tensor shape" in samples[-1]["error"]
    error = read_jsonl(tmp_path / "events.jsonl")[-1]
    assert error["event"] == "error" and error["stage"] == "sample" and error["type"] == "ValueError"
    assert len(read_jsonl(tmp_path / "predictions.jsonl")) == 5


def test_load_failure_is_an_error_event(tmp_path, synth_root):
    job = make_job(tmp_path, synth_root, FIXTURES / "envs" / "crashref" / "demo.py", 3)
    proc = run_worker(job, {"ONLINEMAP_TEST_FAIL_LOAD": "1"})
    assert proc.returncode == 1
    error = read_jsonl(tmp_path / "events.jsonl")[-1]
    assert error["stage"] == "load" and "checkpoint is corrupt" in error["message"]


def test_missing_adapter_class_is_an_import_error(tmp_path, synth_root):
    bad = tmp_path / "demo.py"
    bad.write_text("x = 1\n")
    proc = run_worker(make_job(tmp_path, synth_root, bad, 2))
    assert proc.returncode == 1
    assert read_jsonl(tmp_path / "events.jsonl")[-1]["stage"] == "import"


def test_unreadable_job_file_exits_2(tmp_path):
    job = tmp_path / "job.json"
    job.write_text("{not json")
    proc = run_worker(job)
    assert proc.returncode == 2 and "unusable job file" in proc.stderr


def test_worker_stops_itself_when_the_driver_disappears(tmp_path, synth_root):
    # a stand-in "driver" that we kill; the worker watches its pid
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    job = make_job(tmp_path, synth_root, FIXTURES / "envs" / "slowref" / "demo.py", 40, parent_pid=parent.pid)
    worker = subprocess.Popen([sys.executable, str(WORKER), str(job)], env={**os.environ, "ONLINEMAP_TEST_SLEEP_S": "0.2"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300   # waits on the event, however slow loading torch is
    while time.time() < deadline and not (tmp_path / "samples.jsonl").exists():
        time.sleep(0.1)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert worker.wait(timeout=30) == 3
    assert "driver process" in worker.stderr.read()
    assert len(read_jsonl(tmp_path / "samples.jsonl")) < 40


def test_worker_behind_a_launcher_stops_when_the_driver_is_killed_and_its_stderr_pipe_is_dead(tmp_path, synth_root):
    """The real shape: driver -> launcher (bash, as conda run's) -> worker, stderr a pipe to the driver.

    When the driver is SIGKILLed its pipe has no reader: the watcher's goodbye line raises
    BrokenPipeError, which once ended the watcher thread instead of the worker. The launcher stays
    alive, so only the watcher (not PR_SET_PDEATHSIG) can notice; each sample takes 2 s, so the
    worker would run for a minute on its own.
    """
    job = tmp_path / "job.json"
    template = make_job(tmp_path, synth_root, FIXTURES / "envs" / "slowref" / "demo.py", 30, count=30, warmup=0)
    driver_code = (
        "import json, os, subprocess, sys, time\n"
        f"job = json.load(open({str(template)!r}))\n"
        "job['parent_pid'] = os.getpid()\n"
        f"json.dump(job, open({str(job)!r}, 'w'))\n"
        f"subprocess.Popen(['bash', '-c', {sys.executable!r} + ' ' + {str(WORKER)!r} + ' ' + {str(job)!r} + '; exit $?'],\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "time.sleep(600)\n")
    driver = subprocess.Popen([sys.executable, "-c", driver_code], env={**os.environ, "ONLINEMAP_TEST_SLEEP_S": "2.0"})
    events = tmp_path / "events.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (tmp_path / "samples.jsonl").is_file():
        time.sleep(0.05)
    assert (tmp_path / "samples.jsonl").is_file(), "the worker never loaded"
    worker = next(e["pid"] for e in read_jsonl(events) if e["event"] == "started")
    import psutil

    assert psutil.Process(worker).parent().name() == "bash"
    driver.kill()
    killed = time.monotonic()
    driver.wait()

    def gone():
        try:
            return psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    while time.monotonic() - killed < 2.0 and not gone():
        time.sleep(0.02)
    assert gone(), "the worker outlived its SIGKILLed driver"
    assert len(read_jsonl(tmp_path / "samples.jsonl")) < 30


def test_results_are_written_by_a_writer_process_that_drains_after_the_worker_dies(tmp_path, synth_root):
    """JSON is encoded by a second process (off the sample loop); a worker that dies mid-run
    (os._exit) still has every sample it handed over written, predictions before their lines."""
    job = make_job(tmp_path, synth_root, FIXTURES / "envs" / "crashref" / "demo.py", 8, count=6, warmup=0)
    proc = run_worker(job, {"ONLINEMAP_TEST_CRASH_AT": "4"})    # run() returns once the writer closed stderr
    assert proc.returncode == 9
    started = read_jsonl(tmp_path / "events.jsonl")[0]
    assert started["event"] == "started" and started["writer_pid"] not in (None, started["pid"])
    samples = read_jsonl(tmp_path / "samples.jsonl")
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    assert len(samples) == 4 and [p["sample_token"] for p in preds] == [s["sample_token"] for s in samples]
    assert all(0 <= s["write_ms"] for s in samples)
