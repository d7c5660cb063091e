"""The setup as a list of stages, each with its own executable success check.

A :class:`Stage` is ``name`` (+ ``model``), a ``check`` that only looks (never changes anything), a
``run`` that makes the check pass, and ``skip_reason`` saying why it does not apply here (no conda
model selected, ``--skip-weights``, a synthetic dataroot). :func:`run_stages` drives them:

  skip_reason -> "skipped" | check passes -> "ok" (nothing done) | --dry-run -> "would run"
  | run, then the check again -> "done" or "failed"

so a rerun skips every stage whose check passes and an interrupted run resumes at the first stage
whose check fails. A stage whose ``needs`` failed is "blocked" (the others go on). ``onlinemap doctor``
replays the same checks (doctor.py). Each run writes ``ONLINEMAP_HOME/logs/setup/<stage>[-<model>].log``;
a failure prints the log's last lines and the command that retries that stage alone.
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from onlinemap import paths
from onlinemap.errors import OnlinemapError

__all__ = ["CheckResult", "Stage", "StageResult", "SetupContext", "StageLog", "run_stages", "stage_log_path",
           "STATUS_OK", "STATUS_DONE", "STATUS_SKIPPED", "STATUS_WOULD_RUN", "STATUS_FAILED", "STATUS_BLOCKED",
           "FAULT_ENV", "fault_point"]

STATUS_OK = "ok"              # the check passed: nothing to do
STATUS_DONE = "done"          # ran, and the check now passes
STATUS_SKIPPED = "skipped"    # does not apply here (reason given)
STATUS_WOULD_RUN = "would run"  # --dry-run
STATUS_FAILED = "failed"
STATUS_BLOCKED = "blocked"    # a stage it needs failed
BAD = (STATUS_FAILED, STATUS_BLOCKED)

#: fault injection for tests of interrupted runs: ``<stage key>`` makes that stage SIGKILL itself mid-run
FAULT_ENV = "ONLINEMAP_SETUP_FAULT"


def fault_point(key: str) -> None:
    """Kill this process (SIGKILL: no cleanup, like a pod stop) when ``$ONLINEMAP_SETUP_FAULT`` names ``key``."""
    if os.environ.get(FAULT_ENV) == key:
        import signal

        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class CheckResult:
    """What a check saw: ``ok``, one line of ``detail``, the command that fixes a failure."""

    ok: bool
    detail: str
    fix: Optional[str] = None
    warnings: list = field(default_factory=list)


@dataclass
class SetupContext:
    """Everything the stages need to know; built once per ``onlinemap setup`` call."""

    models: list = field(default_factory=list)        # ModelSpecs selected
    unselected: dict = field(default_factory=dict)    # model name -> why it is not set up here
    dataroot: Optional[Path] = None                   # None: the synthetic dataset under ONLINEMAP_HOME
    dry_run: bool = False
    skip_weights: bool = False
    jobs: int = 1
    with_cron: bool = False
    with_kernels: bool = False
    yes: bool = False
    allow_unverified: bool = False
    manager: Optional[str] = None
    gpu: Optional[dict] = None                        # a telemetry.nvml.gpu_info dict
    say: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    @property
    def conda_models(self) -> list:
        return [s for s in self.models if s.env_kind == "conda"]

    def spec(self, name: str):
        return next(s for s in self.models if s.name == name)

    def effective_dataroot(self) -> Path:
        return Path(self.dataroot) if self.dataroot else paths.data_dir() / "nuscenes-synth"

    @property
    def synthetic(self) -> bool:
        return self.dataroot is None


@dataclass
class Stage:
    """One step of the setup. ``check`` must not change anything; ``run`` may assume the check failed."""

    name: str
    title: str                                                  # what ``run`` does (shown by --dry-run)
    check: Callable[[SetupContext], CheckResult]
    run: Optional[Callable[[SetupContext, "StageLog"], None]] = None   # None: check-only (fix by hand)
    skip_reason: Callable[[SetupContext], Optional[str]] = lambda ctx: None
    model: Optional[str] = None
    needs: tuple = ()                                           # keys of stages that must not have failed
    required: bool = True                                       # doctor: a failure makes it exit non-zero

    @property
    def key(self) -> str:
        return f"{self.name}:{self.model}" if self.model else self.name

    def retry_command(self) -> str:
        return f"onlinemap setup stage {self.name}" + (f" --model {self.model}" if self.model else "")


@dataclass
class StageResult:
    key: str
    name: str
    model: Optional[str]
    status: str
    detail: str
    fix: Optional[str] = None
    log: Optional[str] = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def stage_log_path(stage: Stage) -> Path:
    name = f"{stage.name}-{stage.model}" if stage.model else stage.name
    return paths.logs_dir() / "setup" / f"{name}.log"


class StageLog:
    """A stage's log file plus the console: ``log(line)`` writes both; ``path`` for subprocess output."""

    def __init__(self, path: Path, say: Callable[[str], None], prefix: str):
        self.path = path
        self._say = say
        self._prefix = prefix
        self._lock = threading.Lock()
        paths.ensure_dir(path.parent)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"\n=== {prefix} {_dt.datetime.now().isoformat(timespec='seconds')} ===\n")

    def __call__(self, line: str) -> None:
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line.rstrip("\n") + "\n")
        self._say(f"   {line}")

    def tail(self, n: int = 15) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
        except OSError:
            return []


def _safe_check(stage: Stage, ctx: SetupContext) -> CheckResult:
    try:
        return stage.check(ctx)
    except OnlinemapError as exc:
        return CheckResult(False, exc.message, exc.hint)
    except Exception as exc:  # a check must never crash the setup or the doctor
        return CheckResult(False, f"check raised {type(exc).__name__}: {exc}", stage.retry_command())


def run_stage(stage: Stage, ctx: SetupContext) -> StageResult:
    """Run one stage through skip -> check -> (dry-run | run -> check again)."""
    import time

    t0 = time.monotonic()
    res = StageResult(stage.key, stage.name, stage.model, STATUS_SKIPPED, "")
    reason = stage.skip_reason(ctx)
    if reason:
        res.detail = reason
        return res
    chk = _safe_check(stage, ctx)
    if chk.ok:
        res.status, res.detail = STATUS_OK, chk.detail
        return res
    if stage.run is None:
        res.status, res.detail, res.fix = STATUS_FAILED, chk.detail, chk.fix or stage.retry_command()
        return res
    if ctx.dry_run:
        res.status, res.detail = STATUS_WOULD_RUN, f"{stage.title} (now: {chk.detail})"
        return res
    log = StageLog(stage_log_path(stage), ctx.say, stage.key)
    res.log = str(log.path)
    log(f"{stage.key}: {stage.title} (because: {chk.detail})")
    try:
        stage.run(ctx, log)
    except OnlinemapError as exc:
        log(f"error: {exc.one_line()}")
        res.status, res.detail, res.fix = STATUS_FAILED, exc.message, exc.hint
    except (KeyboardInterrupt, SystemExit):
        log("interrupted: a rerun resumes here")
        raise
    except Exception as exc:
        with open(log.path, "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        res.status, res.detail = STATUS_FAILED, f"{type(exc).__name__}: {exc}"
    else:
        after = _safe_check(stage, ctx)
        if after.ok:
            res.status, res.detail = STATUS_DONE, after.detail
        else:
            res.status, res.detail, res.fix = STATUS_FAILED, f"ran, but the check still fails: {after.detail}", after.fix
    res.seconds = round(time.monotonic() - t0, 1)
    if res.status == STATUS_FAILED:
        res.fix = res.fix or stage.retry_command()
        lines = log.tail()
        ctx.say(f"!! {stage.key} failed: {res.detail}")
        ctx.say(f"   last lines of {log.path}:")
        for line in lines:
            ctx.say(f"   | {line}")
        ctx.say(f"   retry this stage alone: {stage.retry_command()}")
        if res.fix and res.fix != stage.retry_command():
            ctx.say(f"   fix: {res.fix}")
    return res


def _run_chain(stages: list[Stage], ctx: SetupContext, done: dict, lock: threading.Lock) -> None:
    for stage in stages:
        with lock:
            bad = [n for n in stage.needs if n in done and done[n].status in BAD]
        if bad:
            res = StageResult(stage.key, stage.name, stage.model, STATUS_BLOCKED, f"blocked: {', '.join(bad)} failed",
                              fix=done[bad[0]].fix)
            if ctx.dry_run:  # a plan that stops at the first failure hides the rest of the plan: show it anyway
                plan = run_stage(stage, ctx)
                res.detail += f"; once fixed: {plan.status}: {plan.detail}"
                ctx.say(f"== {stage.key}: {res.detail}")
        else:
            ctx.say(f"== {stage.key}: {stage.title}")
            res = run_stage(stage, ctx)
            ctx.say(f"   {res.status}: {res.detail}")
        with lock:
            done[stage.key] = res


def run_stages(stages: list[Stage], ctx: SetupContext) -> list[StageResult]:
    """Run global stages in order, then each model's chain (``ctx.jobs`` models at once), then the rest."""
    done: dict = {}
    lock = threading.Lock()
    before = [s for s in stages if s.model is None and not s.name.startswith(("cron", "kernel"))]
    after = [s for s in stages if s.model is None and s.name.startswith(("cron", "kernel"))]
    chains: dict = {}
    for s in stages:
        if s.model is not None:
            chains.setdefault(s.model, []).append(s)
    _run_chain(before, ctx, done, lock)
    if ctx.jobs > 1 and len(chains) > 1 and not ctx.dry_run:
        with ThreadPoolExecutor(max_workers=ctx.jobs) as pool:
            for fut in [pool.submit(_run_chain, chain, ctx, done, lock) for chain in chains.values()]:
                fut.result()
    else:
        for chain in chains.values():
            _run_chain(chain, ctx, done, lock)
    _run_chain(after, ctx, done, lock)
    return [done[s.key] for s in stages if s.key in done]
