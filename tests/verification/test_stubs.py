"""The lane's compiled-op stubs import, record every call and fail it (verification/stubs/)."""
import json
import subprocess
import sys
from pathlib import Path

STUBS = Path(__file__).resolve().parents[2] / "verification" / "stubs"

PROGRAM = r"""
import sys
sys.path.insert(0, sys.argv[1])
import _onlinemap_verify_stubs as stubs
import json  # a real module is never shadowed
from fake_pkg.ops import fake_ext          # a stubbed submodule of a stubbed package
import flash_attn.flash_attn_interface as fai
assert hasattr(fake_ext, "nms_forward")     # what mmcv's ext_loader asserts
class Sub(fai.FlashAttnFunc):               # subclassing a stub attribute works at import time
    pass
try:
    fake_ext.nms_forward(1, 2)
except stubs.StubCalled as exc:
    print("raised", exc)
try:
    import not_stubbed_at_all
except ImportError:
    print("unknown names still fail")
"""


def test_stub_import_is_silent_and_every_call_is_recorded_and_raises(tmp_path):
    log = tmp_path / "calls.jsonl"
    env = {"ONLINEMAP_VERIFY_STUBS": "fake_pkg*,flash_attn*,json", "ONLINEMAP_VERIFY_STUB_LOG": str(log),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(STUBS)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "raised fake_pkg.ops.fake_ext.nms_forward is a compiled op" in out.stdout
    assert "unknown names still fail" in out.stdout
    records = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [r["name"] for r in records if r["kind"] == "call"]
    imports = [r["name"] for r in records if r["kind"] == "import"]
    assert calls == ["fake_pkg.ops.fake_ext.nms_forward"]
    assert "json" not in imports and "flash_attn.flash_attn_interface" in imports
