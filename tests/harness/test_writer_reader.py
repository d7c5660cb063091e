"""How the result writer waits for the worker's bytes (harness/writer.py ``_Reader``).

A reader waiting on a pipe is woken by every write, and the wake-up is paid on the writing side,
between two forwards; a reader asleep on a timer is not. So the writer waits on the pipe only
while nothing flows, and polls while samples arrive. Driven through a real pipe with the clock,
``sleep`` and ``select`` replaced, so what is checked is the rule, not this machine's timing.
"""
import os

import pytest

from onlinemap.harness import writer


class _Clock:
    """A fake clock; ``select`` answers as the real one would (ready at once, or after its timeout)."""

    def __init__(self, real_select):
        self.now = 1000.0
        self.calls = []
        self.on_sleep = None
        self._select = real_select

    def perf_counter(self):
        return self.now

    def sleep(self, s):
        self.calls.append(("sleep", s))
        self.now += s
        if self.on_sleep is not None:
            self.on_sleep()

    def select(self, r, w, x, timeout):
        self.calls.append(("select", timeout))
        ready = self._select(r, w, x, 0)
        if not ready[0]:
            self.now += timeout
        return ready


@pytest.fixture
def clock(monkeypatch):
    c = _Clock(writer.select.select)
    monkeypatch.setattr(writer, "perf_counter", c.perf_counter)
    monkeypatch.setattr(writer, "sleep", c.sleep)
    monkeypatch.setattr(writer.select, "select", c.select)
    return c


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_it_waits_on_the_pipe_until_bytes_flow_then_polls_then_waits_again_once_idle(clock, pipe):
    r, w = pipe
    reader = writer._Reader(r, parent=None, poll=True)
    os.write(w, b"first")
    assert reader.read() == b"first"
    assert [c[0] for c in clock.calls] == ["select"]          # nothing flowed yet: it waited on the pipe
    clock.calls.clear()
    os.write(w, b"second")
    assert reader.read() == b"second"
    assert clock.calls == [("sleep", writer.POLL_S)]           # flowing: a timer, no wake-up by the write
    clock.calls.clear()
    clock.now += writer.IDLE_WAIT_S + 0.01                    # a long gap: back to waiting on the pipe
    os.write(w, b"third")
    assert reader.read() == b"third"
    assert [c[0] for c in clock.calls] == ["select"]


def test_a_poll_that_finds_nothing_polls_again_and_end_of_file_still_ends_it(clock, pipe):
    r, w = pipe
    reader = writer._Reader(r, parent=None, poll=True)
    os.write(w, b"x")
    assert reader.read() == b"x"
    clock.calls.clear()
    # the next bytes arrive during the third poll's sleep
    clock.on_sleep = lambda: os.write(w, b"late") if len(clock.calls) == 3 else None
    assert reader.read() == b"late"
    assert clock.calls == [("sleep", writer.POLL_S)] * 3
    os.close(w)
    assert reader.read() == b""                               # the worker's end closed: EOF


def test_a_vanished_worker_ends_the_read_even_if_a_forked_child_keeps_the_pipe_open(clock, pipe, monkeypatch):
    r, _w = pipe                      # the write end stays open, as a data loader the worker forked would hold it
    reader = writer._Reader(r, parent=os.getppid(), poll=True)
    monkeypatch.setattr(writer.os, "getppid", lambda: 1)      # re-parented: the worker is gone
    assert reader.read() == b""
    # it had never seen bytes: it waited on the pipe, checked for the worker after a second, left
    assert clock.calls == [("select", writer.PARENT_CHECK_S)]


def test_a_pipe_the_kernel_would_not_enlarge_is_always_waited_on(clock, pipe):
    """64 KiB could fill between two polls with one large prediction: then no polling at all."""
    import fcntl

    r, w = pipe
    fcntl.fcntl(w, 1031, 65536)          # F_SETPIPE_SZ: the default size, as where 1 MiB is refused
    reader = writer._Reader(r, parent=None)
    assert reader.poll is False
    for chunk in (b"a", b"b", b"c"):
        os.write(w, chunk)
        assert reader.read() == chunk
    assert [c[0] for c in clock.calls] == ["select"] * 3


def test_the_workers_pipe_is_big_enough_to_poll(tmp_path):
    """Client asks for 1 MiB; on this kernel it gets it, so the writer process polls (the case measured)."""
    out = writer.Client(str(tmp_path / "p.jsonl"), str(tmp_path / "s.jsonl"))
    try:
        assert writer._pipe_size(out._fd) >= writer.POLL_MIN_PIPE
    finally:
        out.close()
