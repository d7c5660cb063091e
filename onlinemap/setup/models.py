"""Per-model stages (env, weights, smoke, kernel) and the optional cron stage.

The work is done by the existing machinery, never re-implemented: ``create_env`` (env from the lock,
repo at the pinned commit, ops built, smoke import; it deletes a half-built prefix, so nothing
half-done looks ready), ``ensure_weights`` (resumable, sha256-verified), ``api.test`` (the smoke run),
and the ``onlinemap cron`` / ``onlinemap kernel`` commands (run as subprocesses, argv lists).
The smoke stage leaves ``ONLINEMAP_HOME/setup/smoke-<Model>.json`` naming what it tested (lock hash,
commit, weights, dataroot, interpreter); its check passes only while all of those are unchanged.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError, RunFailedError
from onlinemap.fileio import write_json_atomic
from onlinemap.setup.stages import CheckResult, SetupContext, Stage, StageLog, fault_point

__all__ = ["env_stage", "weights_stage", "smoke_stage", "kernel_stage", "cron_stage", "smoke_identity",
           "SMOKE_SAMPLES", "marker_dir"]

SMOKE_SAMPLES = 5


def marker_dir() -> Path:
    return paths.home() / "setup"


# -- env ---------------------------------------------------------------------------------------------

def _check_env(ctx: SetupContext, spec) -> CheckResult:
    from onlinemap.readiness import check_model

    checks = [c for c in check_model(spec, ctx.effective_dataroot()) if c.step in ("env", "repo")]
    bad = [c for c in checks if not c.ok]
    if bad:
        return CheckResult(False, "; ".join(c.detail for c in bad), bad[0].fix)
    return CheckResult(True, "; ".join(c.detail for c in checks))


def _run_env(ctx: SetupContext, log: StageLog, spec) -> None:
    from onlinemap.environments import create_env

    if spec.env_kind == "host":
        raise MissingPrerequisiteError(f"{spec.name} runs in the driver's Python, which cannot import "
                                       f"{', '.join(spec.smoke.imports)}", "./runpod_setup.sh (reinstalls the driver venv)")
    res = create_env(spec, manager=ctx.manager, skip_weights=True, jobs=None, variant=spec.variant,
                     gpu=ctx.gpu if ctx.gpu is not None else {"available": False}, progress=log)
    log(f"env: {res.prefix} ({'reused' if res.reused else 'created'}; log {res.log})")


def env_stage(spec) -> Stage:
    if spec.env_kind == "host":
        return Stage("env", "check the driver's Python imports " + ", ".join(spec.smoke.imports),
                     lambda ctx: _check_env(ctx, spec), None, model=spec.name, needs=("driver",))
    lock = "conda-lock.yml" if spec.lock_file.is_file() else "environment.yml (UNLOCKED: no conda-lock.yml yet)"
    ops = f", build {len(spec.ops.build)} op step(s)" if spec.ops.build else ""
    title = (("" if spec.variant == "paper" else f"[{spec.variant} variant] ") +
             f"create the env from {lock}, check out {spec.repo.url} at {spec.repo.commit[:12]}{ops}, "
             f"smoke-import {', '.join(spec.smoke.imports)} (onlinemap env create {spec.name}"
             + (f" --variant {spec.variant}" if spec.variant != "paper" else "") + ")")
    return Stage("env", title, lambda ctx: _check_env(ctx, spec), lambda ctx, log: _run_env(ctx, log, spec),
                 model=spec.name, needs=("system", "micromamba"))


# -- weights -----------------------------------------------------------------------------------------

def _check_weights(ctx: SetupContext, spec) -> CheckResult:
    from onlinemap.environments.weights import sha256_file
    from onlinemap.readiness import weights_path

    path = weights_path(spec)
    if not path.is_file():
        return CheckResult(False, f"{spec.checkpoint.file} not downloaded ({path})",
                           f"onlinemap setup stage weights --model {spec.name}")
    if spec.checkpoint.sha256:
        digest = sha256_file(path)
        if digest != spec.checkpoint.sha256:
            return CheckResult(False, f"{path} sha256 {digest[:12]}… != pinned {spec.checkpoint.sha256[:12]}…",
                               f"onlinemap setup stage weights --model {spec.name}")
        return CheckResult(True, f"{path} (sha256 verified)")
    return CheckResult(True, f"{path} (sha256 not pinned in model.toml)")


def _run_weights(ctx: SetupContext, log: StageLog, spec) -> None:
    from onlinemap.environments.weights import ensure_weights

    ensure_weights(spec, progress=log)


def _skip_weights(ctx: SetupContext, spec) -> Optional[str]:
    if spec.checkpoint is None or not spec.checkpoint.file:
        return "no checkpoint to download"
    if ctx.skip_weights:
        return "--skip-weights"
    return None


def weights_stage(spec) -> Stage:
    ck = spec.checkpoint
    src = (f"Google Drive id {ck.gdrive_id} (by hand: gdown)" if ck and ck.gdrive_id and "google" in (ck.url or "google")
           else (ck.url if ck else ""))
    title = f"download {ck.file} from {src} and verify its sha256" if ck and ck.file else "no checkpoint"
    return Stage("weights", title,
                 lambda ctx: _check_weights(ctx, spec), lambda ctx, log: _run_weights(ctx, log, spec),
                 lambda ctx: _skip_weights(ctx, spec), model=spec.name, needs=(f"env:{spec.name}",))


# -- smoke test --------------------------------------------------------------------------------------

def smoke_identity(ctx: SetupContext, spec) -> dict:
    """What a passing smoke test was run against; a change in any of it means: test again."""
    from onlinemap.environments.base import lock_hash
    from onlinemap.readiness import weights_path

    ident = {"model": spec.name, "dataroot": str(ctx.effective_dataroot()), "env_kind": spec.env_kind}
    if spec.env_kind == "host":
        ident["python_prefix"] = os.path.realpath(sys.prefix)   # the driver venv, however python was named
    else:
        ident["lock_hash"] = lock_hash(spec)[0]
        ident["commit"] = spec.repo.commit if spec.repo else None
        w = weights_path(spec)
        if w is not None and w.is_file():
            st = w.stat()
            ident["weights"] = [w.name, st.st_size, int(st.st_mtime)]
    return ident


def _smoke_marker(spec) -> Path:
    return marker_dir() / f"smoke-{spec.name}.json"


def _check_smoke(ctx: SetupContext, spec) -> CheckResult:
    try:
        rec = json.loads(_smoke_marker(spec).read_text())
    except (OSError, ValueError):
        return CheckResult(False, "no passing smoke test recorded", f"onlinemap setup stage smoke --model {spec.name}")
    if rec.get("identity") != smoke_identity(ctx, spec):
        return CheckResult(False, "the env, weights or dataroot changed since the last smoke test",
                           f"onlinemap setup stage smoke --model {spec.name}")
    return CheckResult(True, f"passed {rec.get('when')}: forward p50 {rec.get('p50_ms')} ms ({rec.get('run_dir')})")


def _run_smoke(ctx: SetupContext, log: StageLog, spec) -> None:
    import datetime as dt

    from onlinemap import api
    from onlinemap.cli.render import run_summary_lines

    _smoke_marker(spec).unlink(missing_ok=True)
    log(f"onlinemap test --model {spec.name} --samples {SMOKE_SAMPLES}" +
        (f" --dataroot {ctx.dataroot}" if ctx.dataroot else ""))
    outcome = api.test(spec.name, samples=SMOKE_SAMPLES, dataroot=ctx.effective_dataroot(), echo=False)
    fault_point("smoke")
    record = outcome.record.to_dict()
    for line in run_summary_lines(record, str(outcome.run_dir)):
        log(line)
    if outcome.status != "ok":
        err = record.get("error") or {}
        raise RunFailedError(f"{spec.name}: smoke test {outcome.status}: {err.get('message') or 'see the run log'}",
                             err.get("hint") or f"see {outcome.run_dir}/log.txt")
    fwd = ((record.get("summary") or {}).get("latency_ms") or {}).get("forward") or {}
    p50 = fwd.get("p50")
    paths.ensure_dir(marker_dir())
    write_json_atomic(_smoke_marker(spec), {
        "identity": smoke_identity(ctx, spec), "run_dir": str(outcome.run_dir),
        "p50_ms": round(p50, 1) if isinstance(p50, (int, float)) else None,
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})


def _skip_smoke(ctx: SetupContext, spec) -> Optional[str]:
    if ctx.skip_weights and spec.checkpoint is not None and spec.checkpoint.file:
        return "--skip-weights: no checkpoint to test with"
    return None


def smoke_stage(spec) -> Stage:
    return Stage("smoke", f"smoke test: onlinemap test --model {spec.name} --samples {SMOKE_SAMPLES}",
                 lambda ctx: _check_smoke(ctx, spec), lambda ctx, log: _run_smoke(ctx, log, spec),
                 lambda ctx: _skip_smoke(ctx, spec), model=spec.name,
                 needs=("driver", "data", f"env:{spec.name}", f"weights:{spec.name}", f"info:{spec.name}"))


# -- Jupyter kernel (--with-kernels) ----------------------------------------------------------------

def _om_argv(*args: str) -> list[str]:
    """This onlinemap's console script (not ``python -m``, which the cwd's clone folder can shadow) + args."""
    from onlinemap.nightly.cron import onlinemap_argv

    return [*onlinemap_argv(), *args]


def _run_logged(argv: list[str], log: StageLog, what: str, hint: str) -> None:
    from onlinemap.proc import run_supervised

    log(f"$ {' '.join(argv)}")
    out = run_supervised(argv, log_path=log.path, timeout_s=900)
    if not out.ok:
        raise OnlinemapError(f"{what} failed (exit {out.returncode})", hint)


def _check_kernel(ctx: SetupContext, spec) -> CheckResult:
    marker = marker_dir() / f"kernel-{spec.name}.json"
    if marker.is_file():
        return CheckResult(True, f"Jupyter kernel installed ({marker})")
    return CheckResult(False, "no Jupyter kernel installed", f"onlinemap kernel install {spec.name}")


def _run_kernel(ctx: SetupContext, log: StageLog, spec) -> None:
    _run_logged(_om_argv("kernel", "install", spec.name), log, f"onlinemap kernel install {spec.name}",
                f"see {log.path}; `onlinemap kernel --help`")
    write_json_atomic(paths.ensure_dir(marker_dir()) / f"kernel-{spec.name}.json", {"model": spec.name})


def kernel_stage(spec) -> Stage:
    return Stage("kernel", f"register a Jupyter kernel: onlinemap kernel install {spec.name}",
                 lambda ctx: _check_kernel(ctx, spec), lambda ctx, log: _run_kernel(ctx, log, spec),
                 model=spec.name, needs=(f"env:{spec.name}",), required=False)


# -- cron (--with-cron) ------------------------------------------------------------------------------

def _check_cron(ctx: Optional[SetupContext] = None) -> CheckResult:
    try:
        from onlinemap.nightly import cron as c
    except ImportError as exc:
        return CheckResult(False, f"onlinemap.nightly.cron is not importable ({exc})", "update the checkout")
    name, found = c.crontab_command()       # honours $ONLINEMAP_CRONTAB, as `onlinemap cron` does
    if found is None:
        return CheckResult(False, f"no `{name}` command: cron is not installed (pods do not ship it)",
                           "onlinemap setup stage cron --yes")
    try:
        st = c.status()
    except OnlinemapError as exc:
        return CheckResult(False, exc.message, exc.hint)
    if not st.installed:
        return CheckResult(False, "the nightly job is not in the crontab", "onlinemap cron install")
    if not st.daemon:
        return CheckResult(False, f"nightly job installed ({st.line}) but no cron daemon runs (after a pod restart)",
                           "service cron start")
    return CheckResult(True, f"{st.daemon} running; {st.line}")


def _run_cron(ctx: SetupContext, log: StageLog) -> None:
    from onlinemap.nightly import cron as c

    if c.crontab_command()[1] is None:
        if shutil.which("apt-get") is None:
            raise MissingPrerequisiteError("cron is not installed and apt-get is not available",
                                           "install cron with this system's package manager, then rerun")
        if not ctx.yes:
            raise MissingPrerequisiteError("cron is not installed; installing it needs apt-get",
                                           "rerun with --yes to let setup run `apt-get install -y cron`")
        _run_logged(["apt-get", "update"], log, "apt-get update", f"see {log.path}")
        _run_logged(["apt-get", "install", "-y", "cron"], log, "apt-get install cron", f"see {log.path}")
    if not c.status().daemon:
        _run_logged(["service", "cron", "start"], log, "service cron start",
                    "start cron by hand (`cron` as root) — pods have no systemd")
    argv = _om_argv("cron", "install")
    if ctx.dataroot:                       # --dataroot / NUSCENES_ROOT given to setup: cron must use it too
        argv += ["--dataroot", str(Path(ctx.dataroot).expanduser().absolute())]
    _run_logged(argv, log, "onlinemap cron install", f"see {log.path}")


def cron_stage() -> Stage:
    return Stage("cron", "install and start cron (pods do not run it) and register the nightly job "
                         "(onlinemap cron install)", _check_cron, _run_cron, needs=("driver",), required=False)
