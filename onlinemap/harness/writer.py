"""The result writer: a second process that turns the worker's samples into JSONL lines on disk.

Why a process: encoding a prediction as JSON is mostly float formatting (``float.__repr__``),
about 0.4 ms of CPU for a 7.5 KB prediction here, which the worker's sample loop would otherwise
pay between two forwards (it was nearly all of the harness's per-sample overhead, issue 16). The
worker hands each sample to this process as a ``marshal`` record through a pipe (~20 us:
``marshal`` only copies the core types' bytes; it is the same interpreter at both ends, so the
format always matches) and goes on; this process encodes and appends. A thread would not do: the
C JSON encoder holds the GIL for the whole prediction, so it would delay the forward's own clock.

Guarantees kept: the prediction of a sample is on disk before its samples line (a samples line
still promises its prediction); every record the worker handed over is written even when the
worker is killed (its pipe end closes, this process drains what is left and exits; SIGTERM and
SIGINT are ignored so a group stop does not cut the drain short, SIGKILL still does). While
samples flow it reads the pipe every 10 ms rather than waiting on it (:class:`_Reader`: a waiting
reader is woken by every write, at the worker's cost); what arrived in between is written with
one ``write`` per file and flushed at once, so a line is on disk at most ~10 ms after the worker
handed it over. The first failure (a NaN that is not JSON, a full disk) is reported to
the worker on stdout as one JSON line ``{"index", "type", "message"}``; nothing
after it is written (the worker then fails the run at the write stage, as before).

The worker's side costs one ``marshal.dumps`` of the prediction and one ``writev`` per sample,
nothing else: in place (after a 20 ms forward, caches cold) a system call costs ~35-45 us here
against ~1-3 us hot, so the report pipe is looked at only every ``CHECK_EVERY_S`` (a failure
is noticed within a quarter of a second; the writer keeps reading meanwhile, so the worker never
blocks) and the frames go out as one vector, not joined into a copy first (issue 16).

Frames on stdin: 4-byte little-endian length, one kind byte, payload. ``P``: marshal of a
prediction; ``J``: a prediction the worker encoded itself (UTF-8 JSON; when marshal cannot take an
object, e.g. a numpy float, which json's encoder does take); ``S``: marshal of a samples row (a
failed sample's); ``T``: marshal of a measured sample's raw times, made into its row here
(:func:`measured_row`). Each
sample sends its prediction (if any) and then its row. The failure report's ``index`` is the
number of rows written before it, i.e. the failing sample's index in the run. Standard library
only, Python 3.7 syntax.
"""
import json
import marshal
import os
import select
import signal
import struct
import sys
from time import perf_counter, sleep

HEADER = struct.Struct("<IB")
KIND_PRED = ord("P")
KIND_JSON = ord("J")
KIND_ROW = ord("S")
KIND_TIMES = ord("T")


def measured_row(times):
    """The samples line of a sample that ran, from the tuple the worker sends (kind ``T``).

    The worker sends its raw clock readings, not the dict: building and rounding the dict costs
    ~30 us more in place (after a forward, caches cold), and that sits between two forwards."""
    index, token, scene, warmup, a, b, c, d, forward_ms, cuda_ms, write_ms, t = times
    return {"index": index, "sample_token": token, "scene_token": scene, "warmup": warmup, "ok": True,
            "data_ms": round((b - a) * 1000.0, 4), "forward_ms": round(forward_ms, 4),
            "forward_cuda_ms": None if cuda_ms is None else round(cuda_ms, 4),
            "convert_ms": round((d - c) * 1000.0, 4), "total_ms": round((d - a) * 1000.0, 4),
            "write_ms": round(write_ms, 4), "t": t}


def encode(obj):
    """The one JSON encoding of a result line (the worker uses it too, for its fallback)."""
    # allow_nan=False: NaN/inf are not JSON; a model emitting them fails loudly instead of writing a broken file
    return json.dumps(obj, default=str, allow_nan=False, separators=(",", ":"))


def frames(buf):
    """Split complete frames off ``buf``; return (list of (kind, payload), rest)."""
    out = []
    pos = 0
    n = len(buf)
    while n - pos >= HEADER.size:
        size, kind = HEADER.unpack_from(buf, pos)
        end = pos + HEADER.size + size
        if end > n:
            break
        out.append((kind, bytes(buf[pos + HEADER.size:end])))
        pos = end
    return out, buf[pos:]


def _report(out, index, exc):
    try:
        out.write(json.dumps({"index": index, "type": type(exc).__name__, "message": str(exc)[:2000]}) + "\n")
        out.flush()
    except (OSError, ValueError):
        pass


POLL_S = 0.01          # while samples flow, look at the pipe every 10 ms instead of waiting on it
IDLE_WAIT_S = 1.0      # after this long with nothing to read, wait on the pipe again (one wake-up)
PARENT_CHECK_S = 1.0   # how often a waiting or polling writer checks that the worker is still there
POLL_MIN_PIPE = 1 << 20   # the smallest pipe a polling reader accepts (see _Reader)
F_GETPIPE_SZ = 1032       # Linux fcntl (the fcntl module names it from Python 3.10 on)


def _pipe_size(fd):
    """The pipe's capacity in bytes; 0 where it cannot be read (not Linux, not a pipe)."""
    try:
        import fcntl

        return fcntl.fcntl(fd, F_GETPIPE_SZ)
    except (ImportError, OSError):
        return 0


class _Reader(object):
    """The next bytes from the worker's pipe; b"" at EOF, or once ``parent`` is gone and nothing is left.

    While samples flow it polls: it sleeps ``POLL_S`` and reads what has arrived without blocking.
    A write into a pipe that a reader is waiting on wakes that reader, and the waking costs the
    worker's side, on its own CPU, between two forwards (~14 us hot in a probe; polling took
    0.035-0.08 ms a sample off the harness at a 20 ms forward: docs/measurement.md, the eighth
    pass); a write while the reader sleeps on a timer wakes nobody.
    Once ``IDLE_WAIT_S`` passes with nothing read (a model loading, a long paced gap) it waits on
    the pipe again, so an idle run costs no wake-ups. It polls only if the pipe holds at least
    ``POLL_MIN_PIPE`` (``Client`` asks for 1 MiB; the kernel may refuse): at one poll every 10 ms
    it would take 100 MB/s of predictions to fill that, and a full pipe only makes the worker wait
    for the next poll. A smaller pipe (64 KiB, where the resize was refused) could fill between
    two polls with one large prediction, so with it the reader always waits on the pipe. A process
    the worker forked (a data loader) may hold the pipe's write end open after the worker died:
    the parent check stops the wait then, instead of an EOF that never comes.
    """

    def __init__(self, source, parent, poll=None):
        self.source = source
        self.parent = parent
        self.poll = _pipe_size(source) >= POLL_MIN_PIPE if poll is None else poll
        self.last_data = float("-inf")     # wait on the pipe until the first bytes arrive
        self.next_parent_check = perf_counter() + PARENT_CHECK_S
        os.set_blocking(source, False)

    def _parent_gone(self, now):
        if self.parent is None or now < self.next_parent_check:
            return False
        self.next_parent_check = now + PARENT_CHECK_S
        return os.getppid() != self.parent

    def read(self):
        while True:
            now = perf_counter()
            if self.poll and now - self.last_data < IDLE_WAIT_S:
                sleep(POLL_S)
            else:
                select.select([self.source], [], [], PARENT_CHECK_S)
            try:
                chunk = os.read(self.source, 1 << 20)
            except BlockingIOError:             # nothing arrived yet
                if self._parent_gone(perf_counter()):
                    return b""
                continue
            if chunk:
                self.last_data = perf_counter()
            return chunk


def run(preds_path, samples_path, source, out, parent=None):
    """Copy frames from ``source`` (a binary fd) into the two files until EOF; 0, or 1 after a failure."""
    preds = samples = None     # opened at the first record: the worker creates them once loaded
    buf = b""
    rows = 0                   # samples lines written so far
    failed = False
    reader = _Reader(source, parent)
    try:
        while True:
            chunk = reader.read()
            if not chunk:
                break
            if failed:
                continue           # keep reading so the worker never blocks on a full pipe
            got, buf = frames(buf + chunk)
            pred_text, sample_text = [], []
            try:
                for kind, payload in got:
                    if kind == KIND_TIMES:
                        sample_text.append(encode(measured_row(marshal.loads(payload))) + "\n")
                    elif kind == KIND_ROW:
                        sample_text.append(encode(marshal.loads(payload)) + "\n")
                    elif kind == KIND_JSON:
                        pred_text.append(payload.decode("utf-8") + "\n")
                    else:
                        pred_text.append(encode(marshal.loads(payload)) + "\n")
            except (TypeError, ValueError) as exc:   # not JSON (NaN, a key type json refuses)
                failed = True
                _report(out, rows + len(sample_text), exc)
            try:
                if preds is None and (pred_text or sample_text):
                    preds, samples = open(preds_path, "a"), open(samples_path, "a")
                # predictions first: a samples line promises that its prediction is on disk
                if pred_text:
                    preds.write("".join(pred_text))
                    preds.flush()
                if sample_text:
                    samples.write("".join(sample_text))
                    samples.flush()
                rows += len(sample_text)
            except (OSError, ValueError) as exc:     # disk full
                if not failed:
                    failed = True
                    _report(out, rows, exc)
    finally:
        for fh in (preds, samples):
            try:
                if fh is not None:
                    fh.close()
            except OSError:
                pass
    return 1 if failed else 0


F_SETPIPE_SZ = 1031     # Linux fcntl: a 1 MiB pipe holds many large predictions while the writer polls
CHECK_EVERY_S = 0.25    # how often the worker looks for the writer's failure report (a system call)


class WriteFailed(Exception):
    """The writer could not write a sample (``report``: index, type, message); the run fails at the write stage."""

    def __init__(self, report):
        Exception.__init__(self, report.get("message"))
        self.report = report


class Client(object):
    """The worker's end: starts the writer process and hands it each sample (:meth:`prediction`, :meth:`row`).

    :meth:`touch` creates both files (readers wait on them). Raises :class:`WriteFailed` from
    a call once it has seen the writer's failure report (:meth:`row` looks every
    ``CHECK_EVERY_S``; a dead writer is seen at once, as a broken pipe); :meth:`close` waits for
    everything handed over to be on disk and raises any failure not raised yet.
    """

    def __init__(self, preds_path, samples_path):
        import subprocess

        self.paths = (preds_path, samples_path)
        read_end, self._fd = os.pipe()
        try:
            import fcntl

            # resized before the writer starts: it reads the size once to decide whether to poll
            fcntl.fcntl(self._fd, F_SETPIPE_SZ, POLL_MIN_PIPE)
        except (ImportError, OSError):
            pass               # the default 64 KiB pipe still works: the writer then waits on it
        try:
            # -I -S: no user site, no site-packages: marshal and json are all it needs, and it starts fast
            self.proc = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__), preds_path,
                                          samples_path], stdin=read_end, stdout=subprocess.PIPE, close_fds=True)
        except BaseException:
            os.close(self._fd)
            raise
        finally:
            os.close(read_end)     # the writer has its copy; ours would keep the pipe open past its EOF
        self._report_fd = self.proc.stdout.fileno()
        os.set_blocking(self._report_fd, False)
        self._report = b""
        self._pending = []     # a prediction's frame (header, payload), sent with its row
        self._next_check = 0.0
        self.failure = None
        self.closed = False

    def touch(self):
        """Create both files now (readers take samples.jsonl appearing as "the model is loaded")."""
        for path in self.paths:
            open(path, "a").close()

    def _write(self, parts):
        """Send ``parts`` (bytes) in one ``writev``; the rest, if a signal cut it short, in plain writes."""
        try:
            sent = os.writev(self._fd, parts)
            total = sum(len(p) for p in parts)
            if sent < total:
                view = memoryview(b"".join(parts))[sent:]
                while view:
                    view = view[os.write(self._fd, view):]
        except (BrokenPipeError, OSError):
            self._check(wait=True)
            raise WriteFailed(self.failure or {"type": "OSError", "message": "the result writer died"})

    def prediction(self, pred):
        """Take one prediction; it goes to the writer with its samples row (:meth:`row`), in one
        ``write`` (one system call and one wake-up of the writer per sample, not two).

        The prediction's own JSON errors (NaN) raise ValueError here or later."""
        try:
            payload, kind = marshal.dumps(pred), KIND_PRED
        except ValueError:     # an object marshal does not take (numpy float, OrderedDict): encode it here
            payload, kind = encode(pred).encode("utf-8"), KIND_JSON
        self._flush_pending()  # a prediction not followed by its row yet (never in the worker's loop)
        self._pending = [HEADER.pack(len(payload), kind), payload]

    def row(self, row):
        """Hand over a samples line given as a dict (a failed sample's)."""
        self._send_row(KIND_ROW, marshal.dumps(row))

    def measured(self, times):
        """Hand over the samples line of a sample that ran, as the tuple :func:`measured_row` takes."""
        self._send_row(KIND_TIMES, marshal.dumps(times))

    def _send_row(self, kind, payload):
        parts = self._pending + [HEADER.pack(len(payload), kind), payload]   # prediction first
        self._pending = []
        self._write(parts)
        now = perf_counter()
        if now >= self._next_check:      # not every sample: see the module docstring
            self._next_check = now + CHECK_EVERY_S
            self._check()

    def _flush_pending(self):
        if self._pending:
            parts, self._pending = self._pending, []
            self._write(parts)

    def _check(self, wait=False):
        if self.failure is None and not self.proc.stdout.closed:
            try:
                while True:
                    chunk = os.read(self._report_fd, 65536)
                    if not chunk:
                        break
                    self._report += chunk
            except BlockingIOError:
                pass
            if wait and not self._report and self.proc.poll() is None:
                self.proc.wait()
                return self._check()
            line = self._report.split(b"\n", 1)[0]
            if line.strip():
                try:
                    self.failure = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    self.failure = {"type": "OSError", "message": line.decode("utf-8", "replace")}
        if self.failure is not None:
            raise WriteFailed(self.failure)

    def close(self):
        """Stop handing over; wait until the writer has written everything (raises WriteFailed after a failure)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._flush_pending()
        except WriteFailed:
            pass               # reported below, from the writer's own report
        try:
            os.close(self._fd)   # the writer's EOF: it drains what is left and exits
        except OSError:
            pass
        code = self.proc.wait()
        os.set_blocking(self._report_fd, True)
        self._report += self.proc.stdout.read()
        self.proc.stdout.close()
        if code != 0 and not self._report.strip():
            self._report = json.dumps({"type": "OSError", "index": None,
                                       "message": "the result writer exited with code %s" % code}).encode()
        line = self._report.split(b"\n", 1)[0]
        if self.failure is None and line.strip():
            self.failure = json.loads(line.decode("utf-8", "replace"))
        if self.failure is not None:
            raise WriteFailed(self.failure)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)   # drain to EOF; the worker's end closing is the stop signal
    return run(argv[0], argv[1], sys.stdin.fileno(), sys.stdout, parent=os.getppid())


if __name__ == "__main__":
    sys.exit(main())
