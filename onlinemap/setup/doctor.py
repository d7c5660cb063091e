"""``onlinemap doctor``: replay every setup check without changing anything, as a table.

Rows: GPU and driver, disk space, a writable ONLINEMAP_HOME, pod variables, micromamba, the driver venv, the data, and per model
the GPU-architecture verdict, env (lock hash matches + a smoke import run in the env), repo at the
pinned commit, weights sha256, info files and the last smoke test; cron when the nightly job is
installed or the cron module exists. A malformed model.toml is a failed row of its own (the good
models are still checked). Each failure carries the command that fixes it. A model this GPU
cannot run (or any GPU model on a machine without one) is shown as ``n/a`` with the reason and does
not count; the exit code is 1 when a check that a selected model needs fails.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from onlinemap.errors import OnlinemapError
from onlinemap.setup.stages import CheckResult, SetupContext

__all__ = ["Row", "doctor_rows", "doctor_exit_code", "render_table"]

OK, FAIL, WARN, NA = "ok", "FAIL", "warn", "n/a"


@dataclass
class Row:
    area: str
    item: str
    status: str
    detail: str
    fix: Optional[str] = None
    counts: bool = True           # a FAIL here makes doctor exit non-zero

    def to_dict(self) -> dict:
        return asdict(self)


def _row(area: str, item: str, chk: CheckResult, counts: bool = True) -> Row:
    return Row(area, item, OK if chk.ok else FAIL, chk.detail, None if chk.ok else chk.fix, counts)


def _safe(fn, *args) -> CheckResult:
    try:
        return fn(*args)
    except OnlinemapError as exc:
        return CheckResult(False, exc.message, exc.hint)
    except Exception as exc:
        return CheckResult(False, f"check raised {type(exc).__name__}: {exc}", "onlinemap doctor --debug")


def _home_writable() -> CheckResult:
    """Can runs be recorded? Create and remove a file in ONLINEMAP_HOME (and the results folder)."""
    from onlinemap import paths

    home = paths.home()
    for folder in (home, paths.results_dir()):
        probe = folder if folder.exists() else next((p for p in folder.parents if p.exists()), folder)
        try:
            with tempfile.NamedTemporaryFile(dir=probe, prefix=".onlinemap-doctor-"):
                pass
        except OSError as exc:
            return CheckResult(False, f"{probe} is not writable: {exc.strerror or exc}",
                               "make ONLINEMAP_HOME a writable folder with free space (ls -ld, df -h), or point "
                               "ONLINEMAP_HOME elsewhere")
    return CheckResult(True, f"{home} is writable")


def _env_smoke(spec) -> CheckResult:
    """Lock hash matches (resolve_environment) and the smoke imports pass inside the env."""
    from onlinemap.environments import resolve_environment
    from onlinemap.environments.create import smoke_import

    handle = resolve_environment(spec)
    if handle.kind == "host":
        return CheckResult(True, f"driver's Python imports {', '.join(spec.smoke.imports)}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "smoke.log"
        if not smoke_import(handle, spec.smoke.imports, log_path=log):
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            return CheckResult(False, f"smoke import failed in {handle.prefix}: {' '.join(tail)}",
                               f"onlinemap env create {spec.name} --force")
    return CheckResult(True, f"{handle.prefix} (lock {handle.lock_hash}, {handle.manager}); "
                             f"imports {', '.join(spec.smoke.imports)}")


def _repo(ctx: SetupContext, spec) -> Optional[CheckResult]:
    from onlinemap.environments.repo import git_head
    from onlinemap.readiness import check_model, repo_dir

    chk = next((c for c in check_model(spec, ctx.effective_dataroot()) if c.step == "repo"), None)
    if chk is None:
        return None
    if chk.ok:
        head = git_head(repo_dir(spec))
        if head != spec.repo.commit:
            return CheckResult(False, f"{repo_dir(spec)} HEAD is {str(head)[:12]}, pinned {spec.repo.commit[:12]}",
                               f"onlinemap env create {spec.name} --force")
    return CheckResult(chk.ok, chk.detail, chk.fix)


def doctor_rows(ctx: SetupContext) -> list[Row]:
    from onlinemap.environments.guard import check_gpu_arch
    from onlinemap.registry.discover import load_models_and_broken
    from onlinemap.setup import data as d
    from onlinemap.setup import models as m
    from onlinemap.setup.micromamba import check_micromamba
    from onlinemap.setup.system import driver_stage, system_facts, system_stage

    f = system_facts(ctx)
    gpu = f["gpu"]
    rows: list[Row] = []
    if gpu.get("available"):
        rows.append(Row("system", "GPU and driver", OK, f"{gpu.get('name')} compute {gpu.get('compute_capability')}, "
                        f"driver {gpu.get('driver_version')}, CUDA <= {gpu.get('cuda_driver_version')}"))
    else:
        rows.append(Row("system", "GPU and driver", WARN, f"no NVIDIA GPU: {gpu.get('reason')}",
                        "rent a GPU pod (docs/runpod.md) — only the reference model runs here", counts=False))
    sys_chk = _safe(system_stage().check, ctx)
    rows.append(Row("system", "disk", OK if sys_chk.ok else FAIL,
                    f"{f['home_free_gb']} GB free at {f['home']}; container disk {f['container_free_gb']} GB free"
                    + (f"; /workspace {f['workspace_free_gb']} GB free ({f['workspace_fstype']})" if f["workspace"] else ""),
                    sys_chk.fix))
    rows.append(_row("system", "home writable", _safe(_home_writable)))
    for w in sys_chk.warnings:
        rows.append(Row("system", "storage", WARN, w, "see docs/runpod.md (volume vs network disk)", counts=False))
    rows.append(Row("system", "pod", OK if f["pod"] else NA,
                    ", ".join(f"{k}={v}" for k, v in f["pod"].items()) or "not a RunPod pod (no RUNPOD_POD_ID)",
                    counts=False))
    mm = _safe(check_micromamba, ctx)
    if ctx.conda_models or mm.ok:
        rows.append(_row("setup", "micromamba", mm))
    else:
        rows.append(Row("setup", "micromamba", NA, f"not needed: no conda model selected ({mm.detail})", counts=False))
    rows.append(_row("setup", "driver venv", _safe(driver_stage().check, ctx)))
    rows.append(_row("data", "dataroot", _safe(d.data_stage().check, ctx)))

    selected = {s.name for s in ctx.models}
    specs, broken = load_models_and_broken()
    for name, exc in broken.items():
        rows.append(Row(name, "model.toml", FAIL, exc.message, exc.hint))
    for spec in specs:
        area = spec.name
        if spec.name not in selected:
            why = ctx.unselected.get(spec.name, "not selected (--models)")
            try:
                check_gpu_arch(spec, gpu=gpu)
                arch = Row(area, "gpu arch", NA, why, f"onlinemap setup run --models {spec.name}", counts=False)
            except OnlinemapError as exc:
                arch = Row(area, "gpu arch", FAIL, exc.message, exc.hint, counts=False)
            rows.append(arch)
            continue
        try:
            check_gpu_arch(spec, gpu=gpu)
            rows.append(Row(area, "gpu arch", OK if gpu.get("available") else NA,
                            f"supports compute {spec.gpu.min_compute:g}-{spec.gpu.max_compute:g}"
                            + ("" if gpu.get("available") else " (no GPU to check against)"), counts=False))
        except OnlinemapError as exc:
            rows.append(Row(area, "gpu arch", FAIL, exc.message, exc.hint))
        rows.append(_row(area, "env", _safe(_env_smoke, spec)))
        repo = _safe(_repo, ctx, spec) if spec.repo else None
        if repo is not None:
            rows.append(_row(area, "repo", repo))
        if spec.checkpoint is not None and spec.checkpoint.file:
            rows.append(_row(area, "weights", _safe(m._check_weights, ctx, spec), counts=not ctx.skip_weights))
        if spec.data.info_files and not ctx.synthetic:
            rows.append(_row(area, "info files", _safe(d._check_info, ctx, spec)))
        rows.append(_row(area, "smoke test", _safe(m._check_smoke, ctx, spec), counts=False))
    cron = _safe(m._check_cron, ctx)
    rows.append(Row("cron", "nightly job", OK if cron.ok else WARN, cron.detail, cron.fix, counts=False))
    return rows


def doctor_exit_code(rows: list[Row]) -> int:
    return 1 if any(r.status == FAIL and r.counts for r in rows) else 0


def render_table(rows: list[Row]) -> list[str]:
    wa = max(len(r.area) for r in rows)
    wi = max(len(r.item) for r in rows)
    out = [f"{'area':<{wa}}  {'check':<{wi}}  {'status':<6}  detail", f"{'-' * wa}  {'-' * wi}  ------  ------"]
    for r in rows:
        out.append(f"{r.area:<{wa}}  {r.item:<{wi}}  {r.status:<6}  {r.detail}")
        if r.fix and r.status in (FAIL, WARN):
            out.append(f"{'':<{wa}}  {'':<{wi}}  {'':<6}  fix: {r.fix}")
    return out
