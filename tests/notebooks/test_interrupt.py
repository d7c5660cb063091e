"""From a notebook kernel: a kernel interrupt (Ctrl-C) stops the model process group and keeps the samples.

The bench runs inside a real ipykernel (the kernel the notebook would use); the test sends the
interrupt the way Jupyter's stop button does (``KernelManager.interrupt_kernel``: SIGINT to the kernel).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

CODE = """
import onlinemap as om
res = om.bench(["slowref"], samples=38, warmup=0, device="cpu", inactivity_s=60)
print("RESULT", res.interrupted, [o.status for o in res], [str(o.run_dir) for o in res])
"""


def test_kernel_interrupt_stops_the_model_and_keeps_samples(om_home, test_kernel, monkeypatch):
    import queue

    from jupyter_client.manager import KernelManager

    monkeypatch.setenv("ONLINEMAP_TEST_SLEEP_S", "0.2")
    km = KernelManager(kernel_name=test_kernel, transport="ipc")   # IPC sockets: nothing listens on TCP
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute(CODE)
        results = om_home / "results"
        deadline = time.monotonic() + 60
        # stop waiting early if the cell already finished (a failure shows in out)
        samples = None
        out = ""
        while time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=0.1)
                if msg["msg_type"] in ("stream", "error"):
                    out += json.dumps(msg["content"])
                if "RESULT" in out or msg["msg_type"] == "error":
                    break
            except queue.Empty:
                pass
            found = list(results.glob("*/samples.jsonl")) if results.is_dir() else []
            if found and len(found[0].read_text().splitlines()) >= 3:
                samples = found[0]
                break
        assert samples is not None, f"the bench never started streaming samples: {out}"
        workers = [p for p in psutil.process_iter(["cmdline"])
                   if any("worker.py" in a for a in (p.info["cmdline"] or [])) and
                   any(str(samples.parent) in a for a in (p.info["cmdline"] or []))]
        km.interrupt_kernel()
        out, reply = "", None
        while reply is None:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                out += "ERROR " + msg["content"]["ename"]
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                reply = True
        assert "RESULT True ['interrupted']" in out, out
        run = json.loads((samples.parent / "run.json").read_text())
        assert run["status"] == "interrupted" and run["summary"]["samples"]["measured"] >= 3
        assert len(samples.read_text().splitlines()) >= 3
        time.sleep(0.5)
        assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
