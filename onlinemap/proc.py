"""The one way onlinemap starts a process that may run long: new session, timeouts, group kill.

Why a primitive of our own: a model process is usually ``micromamba run``/``conda run`` -> bash ->
python, and bare ``conda run`` forwards no signal (conda #10351, #11420), so killing the pid we
started leaves the model holding the GPU. We therefore start the child in a **new session** (its
own process group), and on a wall-clock timeout, an inactivity timeout, Ctrl-C or SIGTERM we send
SIGTERM to the whole group, wait a short grace period, then SIGKILL the group. The group is also
swept when the leader exits, so no grandchild outlives a run. Output is drained by a thread into
the run's log (and echoed live when asked), so pipes never fill up.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["ProcessOutcome", "run_supervised", "kill_group", "GRACE_S"]

GRACE_S = 5.0
POLL_S = 0.05


@dataclass
class ProcessOutcome:
    """How a supervised process ended. Exactly one of the flags explains a non-zero ``returncode``."""

    returncode: int | None
    duration_s: float
    timeout: str | None = None       # "wall" or "inactivity"
    interrupted: str | None = None   # "SIGINT" or "SIGTERM" (the driver was asked to stop)
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timeout and not self.interrupted


class _Terminated(Exception):
    """Raised in the main thread when the driver receives SIGTERM during a supervised run."""


def kill_group(pgid: int, grace_s: float = GRACE_S, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL whatever is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    try:
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            if not _group_alive(pgid):
                return
            time.sleep(0.05)
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc is not None:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _drain(stream, log_fh, echo, touch: Callable[[], None]) -> None:
    for line in iter(stream.readline, b""):
        touch()
        if log_fh is not None:
            log_fh.write(line)
            log_fh.flush()
        if echo is not None:
            try:
                echo.write(line.decode("utf-8", "replace"))
                echo.flush()
            except (OSError, ValueError):
                pass
    stream.close()


def run_supervised(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                   log_path: Path | None = None, echo: bool = False, timeout_s: float | None = None,
                   inactivity_s: float | None = None, activity_paths: Sequence[Path] = (),
                   on_start: Callable[[int], None] | None = None, on_tick: Callable[[], None] | None = None,
                   grace_s: float = GRACE_S) -> ProcessOutcome:
    """Run ``argv`` to completion under supervision and say how it ended.

    ``inactivity_s``: kill when neither the output nor any of ``activity_paths`` (files the child
    appends to, e.g. samples.jsonl) changed for that long. ``on_start(pid)`` runs right after the
    launch (telemetry starts there); ``on_tick()`` every ~50 ms (progress bars, live files).
    Ctrl-C and SIGTERM in the driver kill the group and return with ``interrupted`` set.
    """
    argv = [str(a) for a in argv]
    log_fh = open(log_path, "ab") if log_path is not None else None
    if log_fh is not None:
        log_fh.write(f"$ {shlex.join(argv)}\n".encode())
        log_fh.flush()
    last_activity = [time.monotonic()]

    def touch() -> None:
        last_activity[0] = time.monotonic()

    in_main = threading.current_thread() is threading.main_thread()
    old_term = None
    if in_main:
        def on_term(signum, frame):
            raise _Terminated()
        old_term = signal.signal(signal.SIGTERM, on_term)

    start = time.monotonic()
    outcome = ProcessOutcome(returncode=None, duration_s=0.0)
    proc = None
    try:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        outcome.pid = proc.pid
        reader = threading.Thread(target=_drain, args=(proc.stdout, log_fh, sys.stderr if echo else None, touch),
                                  daemon=True)
        reader.start()
        if on_start is not None:
            on_start(proc.pid)
        sizes: dict[Path, int] = {}
        while True:
            try:
                proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            for p in activity_paths:
                try:
                    size = os.stat(p).st_size
                except OSError:
                    continue
                if sizes.get(p) != size:
                    sizes[p] = size
                    touch()
            if on_tick is not None:
                on_tick()
            if timeout_s and now - start > timeout_s:
                outcome.timeout = "wall"
                break
            if inactivity_s and now - last_activity[0] > inactivity_s:
                outcome.timeout = "inactivity"
                break
    except KeyboardInterrupt:
        outcome.interrupted = "SIGINT"
    except _Terminated:
        outcome.interrupted = "SIGTERM"
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old_term if old_term is not None else signal.SIG_DFL)
        if proc is not None:
            # kill on timeout/interrupt; otherwise just sweep stray grandchildren of the group
            kill_group(proc.pid, grace_s if proc.poll() is None else 0.5, proc)
            try:
                reader.join(timeout=2.0)
            except NameError:
                pass
            outcome.returncode = proc.returncode
        outcome.duration_s = time.monotonic() - start
        if log_fh is not None:
            log_fh.close()
    return outcome
