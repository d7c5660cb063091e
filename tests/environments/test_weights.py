"""Checkpoint download: sha256 verification, resume of a .part, Google-Drive-only, unpinned sha256.
Served by an http.server on 127.0.0.1 in a thread (with Range support), never the internet."""
from __future__ import annotations

import hashlib
import http.server
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from onlinemap.environments.weights import WeightsError, ensure_weights
from onlinemap.errors import MissingPrerequisiteError

PAYLOAD = bytes(range(256)) * 4096          # 1 MiB


@pytest.fixture
def server():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Range"))
            body, status = PAYLOAD, 200
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                body, status = PAYLOAD[start:], 206
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}/ckpt.pth", "ranges": seen}
    httpd.shutdown()
    httpd.server_close()


def _spec(make_pack, **ck):
    spec = make_pack()
    return replace(spec, checkpoint=replace(spec.checkpoint, **ck))


def test_sha_mismatch_discards_file(make_pack, server, om_home):
    spec = _spec(make_pack, url=server["url"], sha256="f" * 64)
    with pytest.raises(WeightsError, match="does not match the pinned") as exc:
        ensure_weights(spec, progress=lambda s: None)
    assert "deleted and not used" in exc.value.one_line()
    assert not list((om_home / "weights").iterdir())          # neither the file nor a .part


def test_resume_part_with_range(make_pack, server, om_home):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    spec = _spec(make_pack, url=server["url"], sha256=good)
    part = om_home / "weights" / f"{spec.checkpoint.file}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:300_000])
    lines = []
    path = ensure_weights(spec, progress=lines.append)
    assert server["ranges"] == ["bytes=300000-"]
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert any("resuming" in line for line in lines)
    ensure_weights(spec, progress=lambda s: None)              # present and verified: no new request
    assert server["ranges"] == ["bytes=300000-"]


def test_existing_file_with_wrong_hash_is_replaced(make_pack, server, om_home):
    spec = _spec(make_pack, url=server["url"], sha256=hashlib.sha256(PAYLOAD).hexdigest())
    dest = om_home / "weights" / spec.checkpoint.file
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"corrupt")
    assert ensure_weights(spec, progress=lambda s: None).read_bytes() == PAYLOAD


def test_unpinned_sha_is_recorded_with_warning(make_pack, server, om_home):
    spec = _spec(make_pack, url=server["url"], sha256="")
    warnings = []
    path = ensure_weights(spec, progress=lambda s: None, warn=warnings.append)
    side = Path(str(path) + ".sha256")
    assert side.read_text().split()[0] == hashlib.sha256(PAYLOAD).hexdigest()
    assert any("not pinned" in w for w in warnings)


def test_google_drive_only_gives_the_command(make_pack, om_home):
    spec = _spec(make_pack, url="https://drive.google.com/file/d/abc123/view", gdrive_id="abc123")
    with pytest.raises(MissingPrerequisiteError) as exc:
        ensure_weights(spec, progress=lambda s: None)
    line = exc.value.one_line()
    assert f"gdown abc123 -O {om_home / 'weights' / spec.checkpoint.file}" in line and "pip install gdown" in line
    assert exc.value.exit_code == 3
