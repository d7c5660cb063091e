"""Measure the model, not the launcher: the host tree is rooted at the worker's pid (its `started` event).

A stand-in launcher that holds 1 GiB sits between the driver and the worker, as `conda run` (a
~60 MiB Python) and its bash do. Rooted at what was launched, the host RSS would include it.
"""
from __future__ import annotations

import sys

from onlinemap.environments.base import EnvHandle
from tests.conftest import read_jsonl

FAT_LAUNCHER = ("import subprocess, sys\n"
                "ballast = bytearray(1 << 30)\n"        # 1 GiB, zero-filled: resident
                "sys.exit(subprocess.call(sys.argv[1:]))\n")


def test_host_figures_are_the_workers_whatever_the_launcher(om_home, monkeypatch):
    import onlinemap as om

    real = EnvHandle.launch_argv

    def through_fat_launcher(self, script, *args):
        return [sys.executable, "-c", FAT_LAUNCHER, *real(self, script, *args)]

    monkeypatch.setattr(EnvHandle, "launch_argv", through_fat_launcher)
    out = om.test("reference", samples=3, warmup=0, device="cpu", echo=False)
    assert out.status == "ok", out.record.error
    tel = out.record.summary["telemetry"]
    worker = next(e["pid"] for e in read_jsonl(out.run_dir / "events.jsonl") if e["event"] == "started")
    assert tel["host_root_pid"] == worker
    assert tel["host_rss_peak_mb"] is not None and tel["host_rss_peak_mb"] < 1024, tel
