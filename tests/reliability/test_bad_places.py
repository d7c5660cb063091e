"""Bad numbers and unwritable places get one line, the documented exit code, and nothing half-made."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_pack, run_cli


@pytest.mark.parametrize("args", [["--min-duration", "nan"], ["--min-duration", "-1"], ["--timeout", "inf"],
                                  ["--timeout", "-1"], ["--timeout", "0"], ["--timeout", "nan"],
                                  ["--inactivity-timeout", "-inf"], ["--inactivity-timeout", "0"]],
                         ids=lambda a: " ".join(a))
def test_durations_that_are_not_finite_and_positive_are_refused_at_the_cli(om_home, args):
    for command in (["test", "--model", "reference"], ["bench", "--models", "reference"]):
        proc = run_cli(*command, "--device", "cpu", *args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "seconds" in proc.stderr
        assert not (om_home / "results").exists()


def test_the_api_refuses_them_too(om_home):
    import onlinemap as om
    from onlinemap.errors import UsageError

    with pytest.raises(UsageError, match="min_duration_s"):
        om.bench(["reference"], min_duration_s=float("nan"), device="cpu", progress=False)
    with pytest.raises(UsageError, match="timeout_s"):
        om.test("reference", timeout_s=-1, device="cpu")
    assert not (om_home / "results").exists()


def test_a_results_folder_that_cannot_be_created_is_one_line_exit_4(om_home, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("test", "--model", "reference", "-n", "1", "--device", "cpu",
                   env={"ONLINEMAP_RESULTS": str(blocker / "results")})
    assert proc.returncode == 4, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot create a run directory" in proc.stderr


@pytest.fixture
def small_mount(tmp_path):
    """Mount a tiny tmpfs (root and mount rights needed; skipped with the reason otherwise)."""
    mounted = []

    def mount(options: str) -> Path:
        mnt = tmp_path / f"mnt{len(mounted)}"
        mnt.mkdir()
        if shutil.which("mount") is None or os.geteuid() != 0:
            pytest.skip("cannot mount a tmpfs here (not root or no mount)")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_read_only_home_is_one_line_exit_4_and_leaves_nothing(om_home, small_mount):
    ro = small_mount("ro,size=64k")     # read-only even for root, as a volume mounted ro
    proc = run_cli("test", "--model", "reference", "-n", "1", "--device", "cpu", env={"ONLINEMAP_HOME": str(ro)})
    assert proc.returncode == 4, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Read-only file system" in proc.stderr
    assert list(ro.iterdir()) == []


def test_an_already_full_disk_is_one_line_exit_4_and_leaves_no_run_dir(om_home, small_mount):
    full = small_mount("size=256k")
    results = full / "results"
    results.mkdir()
    filler = full / "filler"
    with open(filler, "wb", buffering=0) as fh:        # fill it to the last block
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    proc = run_cli("test", "--model", "reference", "-n", "1", "--device", "cpu",
                   env={"ONLINEMAP_RESULTS": str(results)})
    assert proc.returncode == 4, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "No space left on device" in proc.stderr
    assert list(results.iterdir()) == [], "a half-made run directory was left behind"


def _run_dir(root: Path, run_id: str, **fields) -> None:
    d = root / run_id
    d.mkdir(parents=True)
    rec = {"run_id": run_id, "model": "x", "status": "ok", "schema_version": 1, "kind": "test",
           "created": "2099-01-01T00:00:00+00:00", **fields}
    (d / "run.json").write_text(json.dumps(rec))


def test_run_records_with_wrong_types_are_skipped_with_a_warning(om_home):
    assert run_cli("test", "--model", "reference", "-n", "1", "--warmup", "0", "--device", "cpu").returncode == 0
    results = om_home / "results"
    _run_dir(results, "20990101-000000-x-00000a", summary="oops")
    _run_dir(results, "20990101-000000-x-00000b", model=None)
    _run_dir(results, "20990101-000000-x-00000c", summary={"latency_ms": {"forward": 3}})
    proc = run_cli("results", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["model"] for r in json.loads(proc.stdout)] == ["reference"]
    for rid in ("00000a", "00000b", "00000c"):
        assert f"skipping 20990101-000000-x-{rid}" in proc.stderr
    assert run_cli("results").returncode == 0
    proc = run_cli("compare", "--latest")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    import onlinemap as om

    frame = om.results()
    assert list(frame["model"]) == ["reference"]


def test_one_malformed_model_toml_does_not_hide_the_good_models(om_home, tmp_path):
    envs = tmp_path / "envs"
    copy_pack("crashref", envs)
    bad = copy_pack("slowref", envs)
    (bad / "model.toml").write_text((bad / "model.toml").read_text().replace('task = "', 'task = "nonsense'))
    env = {"ONLINEMAP_ENVS": str(envs)}
    proc = run_cli("models", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert "crashref" in rows and "reference" in rows
    assert rows["slowref"]["checks"][0]["step"] == "model.toml" and not rows["slowref"]["ready"]
    assert run_cli("models", env=env).returncode == 0

    proc = run_cli("bench", "--models", "all", "-n", "1", "--warmup", "0", "--device", "cpu", "--json", env=env)
    assert proc.returncode == 0, proc.stderr     # --models all: every ready model ran; the rest are listed
    out = json.loads(proc.stdout)
    assert {r["model"]: r["status"] for r in out["runs"]} == {"crashref": "ok", "reference": "ok"}
    skipped = {s["model"]: s["reason"] for s in out["skipped"]}
    assert "model.toml" in skipped["slowref"]

    proc = run_cli("doctor", "--json", "--skip-weights", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert any(r["area"] == "slowref" and r["item"] == "model.toml" and r["status"] == "FAIL" for r in rows)
    assert any(r["area"] == "reference" for r in rows)


def test_doctor_says_when_the_home_is_not_writable(om_home, small_mount):
    ro = small_mount("ro,size=64k")
    proc = run_cli("doctor", "--json", "--models", "reference", "--skip-weights", env={"ONLINEMAP_HOME": str(ro)})
    rows = json.loads(proc.stdout)["rows"]
    row = next(r for r in rows if r["item"] == "home writable")
    assert row["status"] == "FAIL" and "not writable" in row["detail"] and proc.returncode == 1
