"""Stages in-process: --dry-run for all five models, failure paths of the network/GPU stages, doctor.

Nothing here reaches the network: micromamba is "downloaded" from a local file:// URL, envs are made by
the stand-in conda (tests/fixtures/fakeconda) from a local git repo, a GPU is a gpu_info-shaped dict.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.setup.conftest import NO_GPU

FIVE = ["MapTR", "PETR", "StreamPETR", "TopoMLP", "VAD"]
H100 = {"available": True, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
        "driver_version": "550.54", "cuda_driver_version": "12.4"}


def _ctx(lines=None, **kw):
    from onlinemap.setup.plan import build_context

    kw.setdefault("gpu", NO_GPU)
    return build_context(say=(lines.append if lines is not None else (lambda line: None)), **kw)


def _run(ctx):
    from onlinemap.setup.plan import setup

    return {r.key: r for r in setup(ctx)}


def _tree(root: Path) -> list:
    return sorted(str(p) for p in root.rglob("*")) if root.exists() else []


def _cli(*args):
    """The CLI in-process (click's runner), so the fixtures' stand-ins (free disk) apply to it."""
    from click.testing import CliRunner

    from onlinemap.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_dry_run_five_models_plans_every_stage_and_changes_nothing(tmp_path, monkeypatch):
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("ONLINEMAP_HOME", str(home))
    monkeypatch.delenv("NUSCENES_ROOT", raising=False)
    monkeypatch.delenv("ONLINEMAP_ENVS", raising=False)
    out = _cli("setup", "run", "--models", ",".join(FIVE), "--dry-run", "--json")
    assert out.exit_code == 0, out.output
    res = {r["key"]: r for r in json.loads(out.stdout)["results"]}
    assert not home.exists()                                                    # nothing created
    assert res["micromamba"]["status"] == "would run" and "1.5.8" in res["micromamba"]["detail"]
    assert res["data"]["status"] == "would run"
    for m in FIVE:
        assert res[f"env:{m}"]["status"] == "would run"
        assert f"onlinemap env create {m}" in res[f"env:{m}"]["detail"]
        assert res[f"weights:{m}"]["status"] == "would run"
        assert res[f"info:{m}"]["status"] == "would run", res[f"info:{m}"]   # the synthetic data gets info files too
        assert res[f"smoke:{m}"]["status"] == "would run"
    text = _cli("setup", "run", "--models", "MapTR", "--dry-run")
    assert text.exit_code == 0 and "dry run: nothing was changed" in text.output
    assert not home.exists()


def test_disk_shortfall_fails_the_system_stage_yet_the_dry_run_shows_the_whole_plan(tmp_path, monkeypatch):
    from onlinemap.setup import system

    home = tmp_path / "small-disk"
    monkeypatch.setenv("ONLINEMAP_HOME", str(home))
    monkeypatch.delenv("NUSCENES_ROOT", raising=False)
    monkeypatch.delenv("ONLINEMAP_ENVS", raising=False)
    monkeypatch.setattr(system, "disk_free_gb", lambda path: 40.0)            # five models need ~76 GB
    out = _cli("setup", "run", "--models", ",".join(FIVE), "--dry-run", "--json")
    assert out.exit_code == 1                                                   # the real run would fail
    res = {r["key"]: r for r in json.loads(out.stdout)["results"]}
    assert res["system"]["status"] == "failed" and "not enough disk" in res["system"]["detail"]
    assert "40.0 GB free" in res["system"]["detail"] and "need ~76" in res["system"]["detail"]
    assert "fewer --models" in res["system"]["fix"]
    env = res["env:MapTR"]                                                      # blocked, but the plan is still there
    assert env["status"] == "blocked" and "system" in env["detail"]
    assert "once fixed: would run" in env["detail"] and "onlinemap env create MapTR" in env["detail"]
    assert not home.exists()
    one = _cli("setup", "run", "--models", "MapTR", "--dry-run", "--json")      # ~16 GB: fits in 40
    assert one.exit_code == 0, one.output


def test_dry_run_with_real_dataroot_plans_converters(tmp_path, monkeypatch, synth_root):
    monkeypatch.setenv("ONLINEMAP_HOME", str(tmp_path / "h"))
    res = _run(_ctx(models=",".join(FIVE), dataroot=synth_root, dry_run=True))
    assert "create_data.py" in res["info:MapTR"].detail and "vad_nuscenes_converter" in res["info:VAD"].detail
    assert res["info:MapTR"].status == "would run"
    assert not (tmp_path / "h").exists()


def test_default_models_follow_the_gpu(tmp_path, monkeypatch):
    from onlinemap.setup.plan import select_models

    monkeypatch.delenv("ONLINEMAP_ENVS", raising=False)
    chosen, why = select_models(None, NO_GPU)
    assert [s.name for s in chosen] == ["reference"] and set(why) == set(FIVE)
    chosen, why = select_models(None, H100)            # paper stacks cannot run on sm_90: the modern variants do
    assert {s.name for s in chosen} == set(FIVE) | {"reference"} and not why
    assert {s.variant for s in chosen if s.name in FIVE} == {"modern"}
    chosen, why = select_models(None, {**H100, "name": "A100", "compute_capability": "8.0"})
    assert {s.name for s in chosen} == set(FIVE) | {"reference"} and not why
    assert {s.variant for s in chosen if s.name in FIVE} == {"paper"}
    chosen, why = select_models(None, {**H100, "name": "A100", "compute_capability": "8.0"}, "modern")
    assert {s.variant for s in chosen if s.name in FIVE} == {"modern"}
    chosen, why = select_models(None, {**H100, "name": "Tesla V100", "compute_capability": "7.0"})
    assert "StreamPETR" in why and "outside every env variant's range" in why["StreamPETR"]


def test_gpu_arch_refusal_is_clear_and_leaves_nothing(om_home, fakeconda, make_pack):
    make_pack("FakeMap")
    lines = []
    res = _run(_ctx(lines, models="FakeMap", gpu=H100))
    env = res["env:FakeMap"]
    assert env.status == "failed" and "cannot run on NVIDIA H100" in env.detail
    assert res["smoke:FakeMap"].status == "blocked" and res["weights:FakeMap"].status == "blocked"
    assert "onlinemap setup stage env --model FakeMap" in "\n".join(lines)       # the retry command
    assert not (om_home / "envs").exists() or not any((om_home / "envs").iterdir())


def test_env_failure_midway_removes_the_prefix(om_home, fakeconda, make_pack, git_redirect, monkeypatch):
    from onlinemap.environments import resolve_environment
    from onlinemap.errors import MissingPrerequisiteError

    spec = make_pack("FakeMap")
    monkeypatch.setenv("FAKECONDA_FAIL_AFTER", "1")
    lines = []
    res = _run(_ctx(lines, models="FakeMap"))
    assert res["env:FakeMap"].status == "failed" and "install" in res["env:FakeMap"].detail
    assert any("last lines of" in line for line in lines)
    with pytest.raises(MissingPrerequisiteError):
        resolve_environment(spec)                                               # nothing half-done looks ready
    assert not any(p.name.startswith("FakeMap-") for p in (om_home / "envs").iterdir())


def test_env_and_weights_stages_then_rerun_skips(om_home, fakeconda, make_pack, git_redirect, monkeypatch):
    from onlinemap.setup import system

    make_pack("FakeMap")
    res = _run(_ctx(models="FakeMap", skip_weights=False))
    assert res["env:FakeMap"].status == "done", res["env:FakeMap"].detail
    assert res["weights:FakeMap"].status == "done" and "verified" in res["weights:FakeMap"].detail
    assert "1 env(s) to create" in res["system"].detail
    monkeypatch.setattr(system, "disk_free_gb", lambda path: 5.0)              # the env filled the disk
    again = _run(_ctx(models="FakeMap"))                                        # ...a rerun still passes
    assert again["system"].status == "ok" and "0 env(s) to create" in again["system"].detail
    assert again["env:FakeMap"].status == "ok" and again["weights:FakeMap"].status == "ok"


def test_weights_mismatch_fails_and_keeps_no_file(om_home, fakeconda, make_pack, git_redirect):
    make_pack("FakeMap", ck_sha="0" * 64)
    res = _run(_ctx(models="FakeMap"))
    assert res["env:FakeMap"].status == "done"
    assert res["weights:FakeMap"].status == "failed" and "does not match" in res["weights:FakeMap"].detail
    assert not (om_home / "weights" / "FakeMap.pth").exists()
    assert res["smoke:FakeMap"].status == "blocked"


def _fake_micromamba(tmp_path: Path) -> Path:
    exe = tmp_path / "mm-src" / "micromamba-linux-64"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\necho 1.5.8\n")
    return exe


def test_micromamba_verified_install_from_local_file(tmp_path, om_home, monkeypatch):
    from onlinemap.setup.micromamba import check_micromamba
    from onlinemap.setup.plan import run_one_stage

    src = _fake_micromamba(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for var in ("MAMBA_EXE", "CONDA_EXE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ONLINEMAP_MICROMAMBA_URL", src.as_uri())
    monkeypatch.setenv("ONLINEMAP_MICROMAMBA_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    res = run_one_stage(_ctx(), "micromamba", None)
    assert res.status == "done", res.detail
    assert os.access(om_home / "bin" / "micromamba", os.X_OK)
    assert json.loads((om_home / "bin" / "micromamba.json").read_text())["verified"] is True
    assert check_micromamba().ok


@pytest.mark.parametrize("case", ["mismatch", "unreachable", "unpinned"])
def test_micromamba_failures_leave_nothing(tmp_path, om_home, monkeypatch, case):
    from onlinemap.setup.plan import run_one_stage

    src = _fake_micromamba(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for var in ("MAMBA_EXE", "CONDA_EXE", "ONLINEMAP_MICROMAMBA_SHA256"):
        monkeypatch.delenv(var, raising=False)
    url = (tmp_path / "nowhere" / "micromamba").as_uri() if case == "unreachable" else src.as_uri()
    monkeypatch.setenv("ONLINEMAP_MICROMAMBA_URL", url)
    if case != "unpinned":
        monkeypatch.setenv("ONLINEMAP_MICROMAMBA_SHA256", "f" * 64)
    res = run_one_stage(_ctx(), "micromamba", None)
    assert res.status == "failed"
    expected = {"mismatch": "does not match", "unreachable": "download of", "unpinned": "refusing an unverified"}
    assert expected[case] in res.detail
    left = [p.name for p in (om_home / "bin").iterdir()] if (om_home / "bin").exists() else []
    assert "micromamba" not in left and not any(n.endswith(".part") for n in left), left
    if case == "unpinned":                                                    # --allow-unverified accepts it
        res = run_one_stage(_ctx(allow_unverified=True), "micromamba", None)
        assert res.status == "done" and "UNVERIFIED" in res.detail


def test_cli_stage_failure_exit_code_and_retry_hint(om_home):
    out = run_cli("setup", "stage", "data", "--dataroot", str(om_home / "no-such-root"))
    assert out.returncode == 1
    assert "retry this stage alone: onlinemap setup stage data" in out.stdout
    bad = run_cli("setup", "stage", "bogus")
    assert bad.returncode == 2 and "unknown stage" in bad.stderr


def test_doctor_table_json_and_exit_codes(om_home, monkeypatch, synth_root):
    out = run_cli("doctor", "--json")                                            # synthetic root via NUSCENES_ROOT
    rows = json.loads(out.stdout)["rows"]
    by = {(r["area"], r["item"]): r for r in rows}
    assert by[("reference", "env")]["status"] == "ok"
    assert by[("reference", "smoke test")]["status"] == "FAIL"                   # never smoke-tested here…
    assert out.returncode == 0                                                   # …but that is not "broken"
    assert by[("MapTR", "gpu arch")]["status"] == "n/a"
    assert by[("cron", "nightly job")]["fix"]
    monkeypatch.delenv("NUSCENES_ROOT")
    broken = run_cli("doctor")
    assert broken.returncode == 1 and "fix: onlinemap setup stage data" in broken.stdout
    assert not (om_home / "data").exists()                                        # doctor changed nothing


def test_quick_test_models_script(script_env, synth_root):
    import subprocess

    from tests.setup.conftest import REPO

    env = {**script_env, "NUSCENES_ROOT": str(synth_root), "QUICK_TEST_SAMPLES": "2"}
    out = subprocess.run([str(REPO / "quick_test_models.sh"), "reference", "VAD"], capture_output=True, text=True,
                         env=env, timeout=120, stdin=subprocess.DEVNULL)
    lines = out.stdout.splitlines()
    assert out.returncode == 1, out.stdout + out.stderr
    ref = next(line for line in lines if line.startswith("reference"))
    assert " ok " in ref and "p50" in ref and "peak" in ref and "MiB" in ref
    assert next(line for line in lines if line.startswith("VAD")).split()[1] == "failed"
    ok = subprocess.run([str(REPO / "quick_test_models.sh"), "reference"], capture_output=True, text=True, env=env,
                        timeout=120, stdin=subprocess.DEVNULL)
    assert ok.returncode == 0, ok.stdout + ok.stderr


# A converter that behaves like the real ones: reads argparse-style flags, pickles the named info file into
# --out-dir (or the root, FAKE_CONVERTER_INTO=root, like StreamPETR's), recording the argv, cwd and
# PYTHONPATH it got. FAKE_CONVERTER_EXIT: its exit code after writing (upstream scripts fail on a missing
# v1.0-test after writing val); FAKE_CONVERTER_TORN=1: a pickle cut short (killed mid-write).
_CONVERTER = ("import os, pickle, sys; a = sys.argv; e = os.environ.get; "
              "d = a[a.index('--root-path' if e('FAKE_CONVERTER_INTO') == 'root' else '--out-dir') + 1]; "
              "b = pickle.dumps(dict(argv=a[1:], cwd=os.getcwd(), pythonpath=e('PYTHONPATH'))); "
              "open(os.path.join(d, 'fake_infos_val.pkl'), 'wb').write(b[:9] if e('FAKE_CONVERTER_TORN') else b); "
              "sys.exit(int(e('FAKE_CONVERTER_EXIT', '0')))")


def _converter_pack(make_pack, **data):
    return make_pack("FakeMap", data={
        "needs": ["nuscenes", "can_bus"], "info_files": ["fake_infos_val.pkl"],
        "converter": ["python", "-c", _CONVERTER, "nuscenes", "--root-path", "{root}", "--out-dir", "{out}",
                      "--version", "{version}", "--canbus", "{canbus}"], **data})


@pytest.fixture
def real_root(tmp_path, synth_root):
    """A writable copy of the synthetic root with a CAN bus folder beside it (the converter writes into it)."""
    import shutil

    root = tmp_path / "data" / "nuscenes"
    shutil.copytree(synth_root, root)
    shutil.move(root / "can_bus", tmp_path / "data" / "can_bus")   # synth writes it inside; real data has it beside
    return root


def _info(root: Path) -> dict:
    import pickle

    return pickle.loads((root / "fake_infos_val.pkl").read_bytes())


def test_info_stage_runs_the_packs_converter_in_its_env(om_home, fakeconda, make_pack, git_redirect, real_root):
    spec = _converter_pack(make_pack)
    res = _run(_ctx(models="FakeMap", dataroot=real_root))
    assert res["env:FakeMap"].status == "done", res["env:FakeMap"].detail
    assert res["info:FakeMap"].status == "done", res["info:FakeMap"].detail
    got = _info(real_root)
    assert got["argv"][got["argv"].index("--root-path") + 1] == str(real_root)
    assert got["argv"][got["argv"].index("--version") + 1] == "v1.0-mini"     # the synthetic root is a mini
    assert got["argv"][got["argv"].index("--canbus") + 1] == str(real_root.parent)  # the folder holding can_bus/
    from onlinemap.readiness import repo_dir

    assert got["cwd"] == str(repo_dir(spec)) and got["pythonpath"] == str(repo_dir(spec))
    assert not list(real_root.glob(".onlinemap-info-*"))                        # the staging folder is gone
    again = _run(_ctx(models="FakeMap", dataroot=real_root))
    assert again["info:FakeMap"].status == "ok"                                 # a rerun does not convert again


def test_a_converter_writing_into_the_root_from_a_subfolder(om_home, fakeconda, make_pack, git_redirect, real_root,
                                                            monkeypatch):
    """PETR's way: mmdet3d's script runs from <repo>/mmdetection3d and writes into the root itself."""
    from onlinemap.readiness import repo_dir

    from onlinemap.setup.plan import run_one_stage

    spec = _converter_pack(make_pack, converter_cwd="sub")
    assert run_one_stage(_ctx(models="FakeMap"), "env", "FakeMap").status == "done"          # the repo is checked out now
    (repo_dir(spec) / "sub").mkdir()
    monkeypatch.setenv("FAKE_CONVERTER_INTO", "root")
    res = _run(_ctx(models="FakeMap", dataroot=real_root))
    assert res["info:FakeMap"].status == "done", res["info:FakeMap"].detail
    assert _info(real_root)["cwd"] == _info(real_root)["pythonpath"] == str(repo_dir(spec) / "sub")


def test_a_nonzero_exit_after_complete_files_keeps_them(om_home, fakeconda, make_pack, git_redirect, real_root,
                                                        monkeypatch):
    """`--version v1.0` writes the val infos, then fails without v1.0-test: the val file is what we asked for."""
    _converter_pack(make_pack)
    monkeypatch.setenv("FAKE_CONVERTER_EXIT", "1")
    res = _run(_ctx(models="FakeMap", dataroot=real_root))
    assert res["info:FakeMap"].status == "done", res["info:FakeMap"].detail
    assert "exited 1" in Path(res["info:FakeMap"].log).read_text() and _info(real_root)["argv"]


@pytest.mark.parametrize("knobs, why", [({"FAKE_CONVERTER_TORN": "1", "FAKE_CONVERTER_EXIT": "3"}, "do not load"),
                                        ({"FAKE_CONVERTER_TORN": "1", "FAKE_CONVERTER_INTO": "root"}, "do not load")],
                         ids=["torn-in-staging", "torn-in-root"])
def test_a_torn_info_file_is_never_kept(om_home, fakeconda, make_pack, git_redirect, real_root, monkeypatch,
                                        knobs, why):
    _converter_pack(make_pack)
    for k, v in knobs.items():
        monkeypatch.setenv(k, v)
    lines = []
    res = _run(_ctx(lines, models="FakeMap", dataroot=real_root))
    info = res["info:FakeMap"]
    assert info.status == "failed" and why in info.detail and info.log.endswith("info-FakeMap.log")
    assert "retry this stage alone: onlinemap setup stage info --model FakeMap" in "\n".join(lines)
    assert not (real_root / "fake_infos_val.pkl").exists() and not list(real_root.glob(".onlinemap-info-*"))
    assert res["smoke:FakeMap"].status == "blocked"


def test_a_pack_without_converter_says_make_it_by_hand(om_home, fakeconda, make_pack, git_redirect, real_root):
    make_pack("FakeMap", data={"needs": ["nuscenes"], "info_files": ["fake_infos_val.pkl"]})
    res = _run(_ctx(models="FakeMap", dataroot=real_root))
    info = res["info:FakeMap"]
    assert info.status == "failed" and "no converter is known" in info.detail
    assert "README" in info.fix


@pytest.mark.parametrize("converter, why", [
    (["bash", "-c", "x"], "starting with \"python\""),
    (["python", "x.py", "--root", "{dataroot}"], "placeholders drawn from"),
    ("python x.py", "an argv list"),
])
def test_a_bad_converter_field_names_the_file_and_field(make_pack, converter, why):
    from onlinemap.errors import SpecError

    with pytest.raises(SpecError) as err:
        make_pack("FakeMap", data={"info_files": ["a.pkl"], "converter": converter})
    assert "[data]" not in err.value.message and "data.converter" in err.value.message and why in err.value.message


def test_a_converter_cwd_outside_the_repo_is_refused(make_pack):
    from onlinemap.errors import SpecError

    with pytest.raises(SpecError) as err:
        make_pack("FakeMap", data={"info_files": ["a.pkl"], "converter": ["python", "x.py"], "converter_cwd": "../up"})
    assert "data.converter_cwd" in err.value.message and "inside the repo" in err.value.message


def test_missing_opencv_system_libraries_fail_the_system_stage_with_the_apt_fix(tmp_path, monkeypatch):
    """opencv-python needs libGL / glib from the system; a minimal pod image lacks them (real dlopen here)."""
    from onlinemap.setup import system

    assert system.missing_system_libs(["libc.so.6", "libonlinemap-does-not-exist.so.9"]) == \
        ["libonlinemap-does-not-exist.so.9"]
    monkeypatch.setenv("ONLINEMAP_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("NUSCENES_ROOT", raising=False)
    monkeypatch.delenv("ONLINEMAP_ENVS", raising=False)
    monkeypatch.setattr(system, "disk_free_gb", lambda path: 500.0)
    monkeypatch.setattr(system, "MODEL_SYSTEM_LIBS", {"libGL-onlinemap-test.so.1": "libgl1"})
    out = _cli("setup", "run", "--models", "MapTR", "--dry-run", "--json")
    res = {r["key"]: r for r in json.loads(out.stdout)["results"]}
    assert out.exit_code == 1 and res["system"]["status"] == "failed"
    assert "libGL-onlinemap-test.so.1" in res["system"]["detail"] and "apt-get install -y libgl1" in res["system"]["fix"]
    monkeypatch.setattr(system, "MODEL_SYSTEM_LIBS", {"libc.so.6": "libc6"})
    assert _cli("setup", "run", "--models", "MapTR", "--dry-run", "--json").exit_code == 0
