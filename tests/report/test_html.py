"""The HTML dashboard: built from real runs plus nightly/backend/GPU copies, incremental, and loaded in Chromium.

The results folder holds the module's real runs (reference twice, crashref; evaluated) and copies
of the newest reference run re-labelled as six nightly runs on an "NVIDIA H200" with a TensorRT
backend, 40 samples each, the last one twice as slow (a planted latency regression).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")


def _nightly_copies(home: Path, ref: Path) -> list[Path]:
    out = []
    base = json.loads((ref / "run.json").read_text())
    for night in range(6):
        run_id = f"20991201-0{night}0000-reference-night{night}"
        d = home / "results" / run_id
        shutil.copytree(ref, d)
        slow = 2.0 if night == 5 else 1.0
        samples = [{"sample_token": f"tok{i}", "forward_ms": (10.0 + (i % 7) * 0.1 + night * 0.01) * slow,
                    "warmup": False, "ok": True} for i in range(40)]
        (d / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
        rec = json.loads(json.dumps(base))
        rec.update(run_id=run_id, kind="nightly", created=f"2099-12-0{night + 1}T02:00:00+00:00",
                   gpu={"available": True, "name": "NVIDIA H200"}, tags={"nightly": f"2099-12-0{night + 1}"})
        rec["settings"] = dict(rec.get("settings") or {}, device="cuda", options={"backend": "tensorrt"})
        fwd = sorted(s["forward_ms"] for s in samples)
        rec["summary"]["latency_ms"]["forward"].update(p50=fwd[20], p90=fwd[36], mean=sum(fwd) / 40)
        (d / "run.json").write_text(json.dumps(rec))
        out.append(d)
    return out


@pytest.fixture(scope="module")
def site_home(runs_home, tmp_path_factory):
    home = runs_home["home"]
    copies = _nightly_copies(home, runs_home["ref"])
    yield {**runs_home, "nightly": copies}
    for d in copies:
        shutil.rmtree(d, ignore_errors=True)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def _local_links(page: Path) -> list[Path]:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    assert not [u for u in parser.links if u.startswith(("http:", "https:", "//"))], f"{page.name} needs the network"
    return [(page.parent / u.split("#")[0]).resolve() for u in parser.links if not u.startswith("#")]


def test_site_pages_links_and_incremental_rebuild(site_home, monkeypatch, tmp_path):
    from onlinemap.dashboard import build_site

    monkeypatch.setenv("ONLINEMAP_HOME", str(site_home["home"]))
    monkeypatch.delenv("ONLINEMAP_RESULTS", raising=False)
    out = tmp_path / "site"
    first = build_site(out)
    assert first["runs"] == 9 and first["rebuilt"] == 9 and first["reused"] == 0
    index = (out / "index.html").read_text()
    assert "NVIDIA H200" in index and "no GPU (cpu)" in index
    assert "reference/default/tensorrt" in index and "crashref/default/pytorch" in index
    assert index.count('class="regression"') == 1          # the planted slow night, and only it
    assert 'class="pareto"' in index
    for page in [out / "index.html", *sorted((out / "runs").glob("*.html"))]:
        missing = [p for p in _local_links(page) if not p.exists()]
        assert not missing, f"{page.name} links to missing {missing}"
    assert len(list((out / "runs").glob("*.html"))) == 9

    again = build_site(out)
    assert again["rebuilt"] == 0 and again["reused"] == 9
    changed = site_home["nightly"][0] / "run.json"
    rec = json.loads(changed.read_text())
    rec["summary"]["latency_ms"]["forward"]["p50"] = 12.5
    changed.write_text(json.dumps(rec))
    third = build_site(out)
    assert third["rebuilt"] == 1 and third["reused"] == 8
    assert "12.5" in (out / "runs" / f"{site_home['nightly'][0].name}.html").read_text()


def test_report_html_cli(site_home, monkeypatch, tmp_path):
    monkeypatch.setenv("ONLINEMAP_HOME", str(site_home["home"]))
    monkeypatch.delenv("ONLINEMAP_RESULTS", raising=False)
    res = run_cli("report", "--html", str(tmp_path / "s"))
    assert res.returncode == 0, res.stderr
    assert "dashboard of 9 run(s)" in res.stdout and "9 run page(s) rebuilt" in res.stdout
    assert (tmp_path / "s" / "index.html").is_file()
    bad = run_cli("report", "--html", str(tmp_path / "s"), "--models", "reference")
    assert bad.returncode == 2 and "--html covers every run" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={cwd / 'chromium-profile'}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=cwd)


def _load_pages(chromium, urls, profile, timeout=120.0) -> dict:
    """Load each url in one headless Chromium driven over the DevTools pipe (fds 3/4).

    Returns {url: [problem, ...]}: console errors/warnings, exceptions, log errors (a missing
    resource is logged as "Failed to load resource: net::ERR_FILE_NOT_FOUND"), failed loads, or
    "did not finish loading".
    """
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def fds():
        a, b = os.dup(to_child_r), os.dup(from_child_w)   # out of the way of 3 and 4 first
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=fds, close_fds=False)
    os.close(to_child_r)
    os.close(from_child_w)
    state = {"seq": 0, "buf": b""}

    def send(method, params=None, sid=None):
        state["seq"] += 1
        msg = {"id": state["seq"], "method": method, "params": params or {}}
        if sid:
            msg["sessionId"] = sid
        os.write(to_child_w, json.dumps(msg).encode() + b"\0")
        return state["seq"]

    def until(done, seconds):
        """Read messages, passing each to ``done``, until it returns True or ``seconds`` pass."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([from_child_r], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(from_child_r, 1 << 16)
            if not chunk:
                return False
            state["buf"] += chunk
            while b"\0" in state["buf"]:
                raw, state["buf"] = state["buf"].split(b"\0", 1)
                if done(json.loads(raw)):
                    return True
        return False

    results: dict = {}
    try:
        got: dict = {}
        req = send("Target.createTarget", {"url": "about:blank"})
        until(lambda m: m.get("id") == req and got.setdefault("target", m["result"]["targetId"]), timeout)
        req = send("Target.attachToTarget", {"targetId": got["target"], "flatten": True})
        until(lambda m: m.get("id") == req and got.setdefault("session", m["result"]["sessionId"]), timeout)
        sid = got["session"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            send(domain + ".enable", sid=sid)
        for url in urls:
            problems: list = []
            results[url] = problems

            def watch(m, problems=problems):
                method, p = m.get("method"), m.get("params", {})
                if m.get("id") == nav and (m.get("result") or {}).get("errorText"):
                    problems.append("navigate: " + m["result"]["errorText"])
                    return True
                if method == "Runtime.exceptionThrown":
                    problems.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:300])
                elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                    problems.append("console: " + json.dumps(p.get("args"))[:300])
                elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                    problems.append("log: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
                elif method == "Network.loadingFailed":
                    problems.append("network: " + p.get("errorText", ""))
                return method == "Page.loadEventFired"

            nav = send("Page.navigate", {"url": url}, sid=sid)
            if not until(watch, timeout):
                problems.append("the page did not finish loading")
            until(watch, 0.5)   # late messages
    finally:
        try:
            send("Browser.close")
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_child_w)
        os.close(from_child_r)
    return results


@needs_chromium
@pytest.mark.timeout(900)
def test_every_page_loads_in_chromium_and_index_draws_a_chart(site_home, monkeypatch, tmp_path):
    from PIL import Image

    from onlinemap.dashboard import build_site
    from onlinemap.dashboard.svg import COLORS

    monkeypatch.setenv("ONLINEMAP_HOME", str(site_home["home"]))
    monkeypatch.delenv("ONLINEMAP_RESULTS", raising=False)
    out = tmp_path / "site"
    build_site(out)

    # the check itself can fail: a page with a missing image is caught
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><img src="nothere.png"></body></html>')
    pages = [out / "index.html", *sorted((out / "runs").glob("*.html"))]
    results = _load_pages(CHROMIUM, [broken.as_uri()] + [p.as_uri() for p in pages], tmp_path / "profile")
    assert any("ERR_FILE_NOT_FOUND" in p for p in results.pop(broken.as_uri())), results
    assert len(results) == len(pages) == 10
    assert not {url: p for url, p in results.items() if p}
    res = _chromium("--dump-dom", pages[1].as_uri(), cwd=tmp_path)
    assert res.returncode == 0 and "</svg>" in res.stdout, res.stderr[-2000:]

    shot = tmp_path / "index.png"
    res = _chromium(f"--screenshot={shot}", "--window-size=1400,1800", "--hide-scrollbars",
                    (out / "index.html").as_uri(), cwd=tmp_path)
    assert shot.is_file(), res.stderr[-2000:]
    keep = os.environ.get("ONLINEMAP_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        w, h = rgb.size
        palette = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in COLORS}
        counts = {}
        for color_count, color in rgb.getcolors(maxcolors=w * h):
            if color in palette:
                counts[color] = color_count
        non_bg = sum(n for n, c in rgb.getcolors(maxcolors=w * h) if c != (255, 255, 255))
    # drawn charts: series colours painted over hundreds of pixels, and far more than text on white
    assert sum(counts.values()) > 500, counts
    assert non_bg > 0.02 * w * h, non_bg
