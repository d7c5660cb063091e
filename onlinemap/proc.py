"""The one way onlinemap starts a process that may run long: new session, timeouts, group kill.

Why a primitive of our own: a model process is usually ``micromamba run``/``conda run`` -> bash ->
python, and bare ``conda run`` forwards no signal (conda #10351, #11420), so killing the pid we
started leaves the model holding the GPU. We therefore start the child in a **new session** (its
own process group), and on a wall-clock, launch or inactivity timeout, Ctrl-C, SIGTERM or SIGHUP
(an SSH session that drops) we stop it: the worker first (its pid is known from its ``started``
event), then a moment for the launcher to exit by itself (``conda run`` deletes its /tmp wrapper
script only when its child returns; SIGTERM kills its Python before that), then SIGTERM to the
whole group, a short grace period, SIGKILL. The group is also swept when the leader exits, so no
grandchild outlives a run. Output is drained by a thread into
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

__all__ = ["ProcessOutcome", "run_supervised", "stop_run", "kill_group", "install_stop_handlers", "restore_handlers",
           "GRACE_S", "STOP_SIGNALS"]

GRACE_S = 5.0
LAUNCHER_GRACE_S = 2.0   # after the worker is gone: time for the launcher to clean up and exit
#: the supervision tick: at start-up, and whenever the last tick read nothing new
POLL_S = 0.05
#: the tick while the child's lines flow: each tick then reads a batch (at a 20 ms forward, ~12
#: samples), which cut the driver's CPU per sample from ~0.27 to ~0.12 ms (issue 16; waking 20
#: times a second cost more than the work each wake did). Exit and stop signals still wake the
#: loop at once; progress and the inactivity clock are at most this much late.
FLOWING_POLL_S = 0.25
#: driver signals that stop a supervised run like Ctrl-C does (SIGINT arrives as KeyboardInterrupt)
STOP_SIGNALS = ("SIGTERM", "SIGHUP")


@dataclass
class ProcessOutcome:
    """How a supervised process ended. Exactly one of the flags explains a non-zero ``returncode``."""

    returncode: int | None
    duration_s: float
    timeout: str | None = None       # "wall", "launch" or "inactivity"
    interrupted: str | None = None   # "SIGINT", "SIGTERM" or "SIGHUP" (the driver was asked to stop)
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timeout and not self.interrupted


class _Terminated(Exception):
    """Raised in the main thread when the driver receives SIGTERM or SIGHUP during a supervised run."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def install_stop_handlers() -> dict:
    """In the main thread: make SIGTERM and SIGHUP raise ``_Terminated``; returns what to restore.

    A SIGHUP that is ignored (``nohup``) stays ignored: the user asked to survive the hang-up.
    """
    old = {}
    if threading.current_thread() is not threading.main_thread():
        return old

    def on_signal(signum, frame):
        raise _Terminated(signal.Signals(signum).name)

    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) is signal.SIG_IGN:
            continue
        old[sig] = signal.signal(sig, on_signal)
    return old


def restore_handlers(old: dict) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _wait_gone(pid: int, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to exit (a zombie counts as gone); a second signal stops the wait."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return True
            if proc is None and not _pid_alive(pid):
                return True
            time.sleep(0.02)
    except (KeyboardInterrupt, _Terminated):
        pass
    return False


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def stop_run(proc: subprocess.Popen, worker_pid: int | None, grace_s: float = GRACE_S,
             drain_pids: Sequence[int] = ()) -> None:
    """Stop a launched run: the worker first, then a moment for the launcher, then the whole group.

    ``drain_pids``: processes of the run that finish by themselves once the worker is gone (the
    harness's result writer, which writes what the worker handed it and exits): once the worker
    and the launcher are gone, each gets up to ``grace_s`` before the group is stopped, so that no
    finished sample is cut off. While the worker lives they are not waited for (they cannot end).
    """
    if proc.poll() is None and worker_pid and (worker_pid != proc.pid or drain_pids):
        try:
            in_group = os.getpgid(worker_pid) == proc.pid   # never signal a reused pid
        except (ProcessLookupError, PermissionError):
            in_group = False
        if in_group:
            leader = proc if worker_pid == proc.pid else None   # a direct launch: the worker is the leader
            try:
                os.kill(worker_pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            if not _wait_gone(worker_pid, grace_s, leader):
                try:
                    os.kill(worker_pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if leader is None:
                _wait_gone(proc.pid, LAUNCHER_GRACE_S, proc)
    if proc.poll() is not None:
        for pid in drain_pids:
            try:
                ours = os.getpgid(pid) == proc.pid   # never wait on a reused pid
            except (ProcessLookupError, PermissionError):
                continue
            if ours:
                _wait_gone(pid, grace_s)
    kill_group(proc.pid, grace_s if proc.poll() is None else 0.5, proc)


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
    except (KeyboardInterrupt, _Terminated):  # asked twice: stop waiting
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


def _wait_then_set(proc: subprocess.Popen, done: threading.Event) -> None:
    try:
        proc.wait()
    finally:
        done.set()


def run_supervised(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                   log_path: Path | None = None, echo: bool = False, timeout_s: float | None = None,
                   inactivity_s: float | None = None, activity_paths: Sequence[Path] = (),
                   start_marker: Path | None = None, launch_timeout_s: float | None = None,
                   worker_pid: Callable[[], int | None] | None = None,
                   drain_pids: Callable[[], Sequence[int]] | None = None,
                   on_start: Callable[[int], None] | None = None, on_tick: Callable[[], object] | None = None,
                   grace_s: float = GRACE_S) -> ProcessOutcome:
    """Run ``argv`` to completion under supervision and say how it ended.

    ``inactivity_s``: kill when neither the output nor any of ``activity_paths`` (files the child
    appends to, e.g. samples.jsonl) changed for that long. With ``start_marker`` (the worker's
    events file) that clock starts only once the file is non-empty, i.e. at the worker's first
    event: the launcher's own start-up (``conda run`` starts conda three times) is not inactivity;
    until then ``launch_timeout_s`` applies instead (timeout ``"launch"``). ``worker_pid()`` names
    the model process once known, so that it is stopped before its launcher; ``drain_pids()`` the
    processes given time to finish writing before the group is stopped (:func:`stop_run`). ``on_start(pid)``
    runs right after the launch (telemetry starts there); ``on_tick()`` every ``POLL_S`` (progress
    bars, live files): a truthy return means it read something new from the child, which counts
    as activity (``activity_paths`` are then not stat'ed that tick) and spaces the next tick
    ``FLOWING_POLL_S`` out. Ctrl-C, SIGTERM and SIGHUP
    in the driver stop the run and return with ``interrupted`` set.
    """
    argv = [str(a) for a in argv]
    log_fh = open(log_path, "ab") if log_path is not None else None
    if log_fh is not None:
        log_fh.write(f"$ {shlex.join(argv)}\n".encode())
        log_fh.flush()
    last_activity = [time.monotonic()]

    def touch() -> None:
        last_activity[0] = time.monotonic()

    old_handlers = install_stop_handlers()
    started = start_marker is None

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
        # one blocking wait in a thread, not a Popen.wait(timeout) poll per tick (that one sleeps
        # in growing steps and raises TimeoutExpired each time); the exit wakes the loop at once
        exited = threading.Event()
        waiter = threading.Thread(target=_wait_then_set, args=(proc, exited), daemon=True)
        waiter.start()
        wait_s = POLL_S
        while not exited.wait(wait_s):
            now = time.monotonic()
            wait_s = POLL_S
            if not started:
                try:
                    started = os.stat(start_marker).st_size > 0
                except OSError:
                    started = False
                if started:
                    touch()   # the inactivity clock starts at the worker's first event
            if on_tick is not None and on_tick():
                touch()       # the tick read new lines: no need to stat the files
                wait_s = FLOWING_POLL_S
            else:
                for p in activity_paths:
                    try:
                        size = os.stat(p).st_size
                    except OSError:
                        continue
                    if sizes.get(p) != size:
                        sizes[p] = size
                        touch()
            if timeout_s and now - start > timeout_s:
                outcome.timeout = "wall"
                break
            if not started:
                if launch_timeout_s and now - start > launch_timeout_s:
                    outcome.timeout = "launch"
                    break
            elif inactivity_s and now - last_activity[0] > inactivity_s:
                outcome.timeout = "inactivity"
                break
    except KeyboardInterrupt:
        outcome.interrupted = "SIGINT"
    except _Terminated as exc:
        outcome.interrupted = exc.signame
    finally:
        if proc is not None:
            # stop on timeout/interrupt (worker, launcher, group); otherwise sweep stray grandchildren
            wpid = None
            if worker_pid is not None and proc.poll() is None:
                try:
                    wpid = worker_pid()
                except Exception:  # noqa: BLE001 - a broken callback must not leave the group running
                    wpid = None
            drain = ()
            if drain_pids is not None:
                try:
                    drain = tuple(drain_pids())
                except Exception:  # noqa: BLE001 - as worker_pid: never leave the group running
                    drain = ()
            stop_run(proc, wpid, grace_s, drain)
            try:
                reader.join(timeout=2.0)
            except NameError:
                pass
            outcome.returncode = proc.returncode
        outcome.duration_s = time.monotonic() - start
        if log_fh is not None:
            log_fh.close()
        restore_handlers(old_handlers)
    return outcome
