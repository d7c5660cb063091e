"""Clocks for the timed regions: wall clock bracketed by CUDA synchronisation, or CUDA events.

On CUDA the forward is bracketed by ``torch.cuda.synchronize()`` before and after (as mmdet3d's
benchmark.py), so the wall clock covers the GPU work that the forward queued. CUDA-event timing
(``timer = "cuda-events"``) is offered beside it for comparison; it measures GPU time between two
events on the current stream and is reported as ``forward_cuda_ms``.
"""
import time

perf = time.perf_counter


class Clock(object):
    """Times the regions of one sample; knows whether and how to synchronise the device."""

    def __init__(self, device, timer="wall"):
        self.torch = None
        self.cuda = False
        self.cuda_events = False
        if str(device).startswith("cuda"):
            try:
                import torch  # only present in envs that have it
            except ImportError:
                torch = None
            if torch is not None and torch.cuda.is_available():
                self.torch = torch
                self.cuda = True
                self.cuda_events = timer == "cuda-events"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def timed_forward(self, fn, arg):
        """Run ``fn(arg)`` synchronised; return (result, wall_ms, cuda_event_ms or None)."""
        start_ev = end_ev = None
        if self.cuda_events:
            start_ev = self.torch.cuda.Event(enable_timing=True)
            end_ev = self.torch.cuda.Event(enable_timing=True)
        self.sync()
        t0 = perf()
        if start_ev is not None:
            start_ev.record()
        out = fn(arg)
        if end_ev is not None:
            end_ev.record()
        self.sync()
        wall_ms = (perf() - t0) * 1000.0
        cuda_ms = start_ev.elapsed_time(end_ev) if start_ev is not None else None
        return out, wall_ms, cuda_ms
