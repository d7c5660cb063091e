"""``create_env``: the template that makes a model installed: env, repo, ops, smoke import, weights.

asv's ``Environment.create`` idea, with the info file as the only proof of completeness:

1. refuse early on a GPU the locked stack cannot run on (guard.py);
2. reuse ``ONLINEMAP_HOME/envs/<Model>-<lockhash>`` only when its info file matches the lock hash AND
   the smoke import passes; otherwise remove it (a half-built prefix from a crash too);
3. resolve the manager and hash every ``file://`` archive of the lock (integrity.py) BEFORE removing
   anything, then install the packages (installers.py: micromamba / conda / mamba / py-rattler; unlocked
   fallback);
4. check out the repo at the pinned commit (repo.py) and run the ``[ops] build`` argv lists in it with
   the env's python, ``TORCH_CUDA_ARCH_LIST`` from the GPU, ``FORCE_CUDA=1`` and ``CUDA_HOME``; each
   step leaves a marker in the prefix and is skipped when its marker exists;
5. smoke-import ``[smoke] imports`` with the env's python, through the manager's run command;
6. only then write ``.onlinemap-env.json`` atomically (last);
7. fetch and verify the weights (weights.py).

Any failure in 3-6 deletes the prefix, so nothing half-built ever looks ready, and raises one line
naming the step and the log file ``ONLINEMAP_HOME/logs/env-<Model>.log``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from onlinemap import paths
from onlinemap.environments.base import (ENV_INFO_FILE, ENV_INFO_SCHEMA, EnvHandle, launcher_exe, lock_hash,
                                         read_env_info, run_prefix_argv)
from onlinemap.environments.installers import (StepFailed, env_child_env, install_locked, install_unlocked,
                                              raise_if_interrupted, run_step)
from onlinemap.environments.integrity import verify_local_archives
from onlinemap.environments.lockfile import load_environment_yml, load_lock
from onlinemap.environments.managers import Manager, find_manager, manager_lock
from onlinemap.errors import MissingPrerequisiteError, UsageError
from onlinemap.fileio import write_json_atomic
from onlinemap.registry.spec import ModelSpec

__all__ = ["create_env", "CreateResult", "env_log_path", "smoke_import", "build_ops", "torch_cuda_arch_list",
           "find_cuda_home", "OPS_MARKER_DIR", "StepFailed"]

OPS_MARKER_DIR = ".onlinemap-ops"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class CreateResult:
    """What ``create_env`` did for one model."""

    model: str
    kind: str
    prefix: str | None = None
    manager: str | None = None
    reused: bool = False
    locked: bool = True
    repo: str | None = None
    weights: str | None = None
    log: str | None = None
    steps: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def env_log_path(spec: ModelSpec) -> Path:
    return paths.ensure_dir(paths.logs_dir()) / f"env-{spec.name}.log"


def _handle(spec: ModelSpec, prefix: Path, manager: Manager, digest: str, locked: bool) -> EnvHandle:
    return EnvHandle(model=spec.name, kind="conda", python=str(prefix / "bin" / "python"), prefix=prefix,
                     manager=manager.name, manager_exe=manager.exe, manager_version=manager.version,
                     lock_hash=digest, locked=locked)


def smoke_import(handle: EnvHandle, imports: list[str], *, log_path: Path, cwd: Path | None = None) -> bool:
    """``python -c "import a, b"`` in the env (through its manager's run command); True when it exits 0."""
    code = f"import {', '.join(imports)}" if imports else "pass"
    from onlinemap.proc import run_supervised

    out = run_supervised([*run_prefix_argv(handle), handle.python, "-c", code], env=env_child_env(handle.prefix),
                         cwd=cwd or handle.prefix, log_path=log_path, timeout_s=600)
    raise_if_interrupted(out, model=handle.model, step="smoke import", log_path=log_path)   # not "failed": keep the env
    return out.ok


def _python_version(handle: EnvHandle) -> str | None:
    try:
        out = subprocess.run([handle.python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=60, env=env_child_env(handle.prefix),
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def torch_cuda_arch_list(spec: ModelSpec, gpu: dict | None) -> str:
    """``TORCH_CUDA_ARCH_LIST`` for the ops build: the GPU's compute capability, clamped to the stack.

    Old stacks (max_compute < 9) reject "8.9" (``Unknown CUDA arch``, research/models.md §8.1) and run
    sm_86 cubins on Ada, so 8.9 becomes 8.6 there. Without a GPU: the A100 + Ampere pair "8.0;8.6".
    An explicit ``TORCH_CUDA_ARCH_LIST`` in the environment wins.
    """
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    cc = (gpu or {}).get("compute_capability") if (gpu or {}).get("available") else None
    if not cc:
        return "8.0;8.6"
    if cc == "8.9" and spec.gpu.max_compute < 9.0:
        return "8.6"
    return str(cc)


def find_cuda_home() -> str | None:
    """$CUDA_HOME / $CUDA_PATH, else the folder above ``nvcc`` on PATH, else /usr/local/cuda if it exists."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var) and Path(os.environ[var]).is_dir():
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc:
        return str(Path(nvcc).resolve().parent.parent)
    return "/usr/local/cuda" if Path("/usr/local/cuda").is_dir() else None


def build_ops(spec: ModelSpec, handle: EnvHandle, repo: Path, *, gpu: dict | None, log_path: Path,
              jobs: int | None = None, progress: Callable[[str], None] = _stderr, echo: bool = False) -> int:
    """Run ``spec.ops.build`` in ``repo`` with the env's python; skip steps whose marker exists. Returns steps run."""
    if not spec.ops.build:
        return 0
    markers = Path(handle.prefix) / OPS_MARKER_DIR
    markers.mkdir(exist_ok=True)
    extra = {"TORCH_CUDA_ARCH_LIST": torch_cuda_arch_list(spec, gpu), "FORCE_CUDA": "1"}
    cuda_home = find_cuda_home()
    if cuda_home:
        extra["CUDA_HOME"] = cuda_home
    if jobs:
        extra["MAX_JOBS"] = str(jobs)
    env = env_child_env(handle.prefix, extra)
    ran = 0
    for i, argv in enumerate(spec.ops.build, 1):
        key = hashlib.sha256(json.dumps([argv, spec.repo.commit if spec.repo else ""]).encode()).hexdigest()[:12]
        marker = markers / f"{i:02d}-{key}.ok"
        label = " ".join(argv)
        if marker.exists():
            progress(f"[{spec.name}] ops {i}/{len(spec.ops.build)}: {label} (done before, skipped)")
            continue
        progress(f"[{spec.name}] ops {i}/{len(spec.ops.build)}: {label} (TORCH_CUDA_ARCH_LIST={extra['TORCH_CUDA_ARCH_LIST']})")
        full = [handle.python if a == "python" and j == 0 else a for j, a in enumerate(argv)]
        run_step(f"ops build {i}/{len(spec.ops.build)}", [*run_prefix_argv(handle), *full], model=spec.name,
                 log_path=log_path, env=env, cwd=repo, echo=echo)
        marker.write_text(json.dumps({"argv": argv, "commit": spec.repo.commit if spec.repo else None}) + "\n")
        ran += 1
    return ran


def _remove_prefix(prefix: Path) -> None:
    if prefix.is_symlink() or prefix.is_file():
        prefix.unlink()
    elif prefix.exists():
        shutil.rmtree(prefix)


def _reusable(spec: ModelSpec, prefix: Path, digest: str, log_path: Path,
              progress: Callable[[str], None]) -> EnvHandle | None:
    info = read_env_info(prefix)
    if info is None:
        if prefix.exists():
            progress(f"[{spec.name}] env: {prefix} has no info file (half-built): removing it")
        return None
    if info.get("lock_hash") != digest or info.get("model") != spec.name:
        progress(f"[{spec.name}] env: {prefix} info does not match the lock: rebuilding")
        return None
    try:
        exe = launcher_exe(spec.name, prefix, info)
    except MissingPrerequisiteError as exc:
        progress(f"[{spec.name}] env: {exc.message}: rebuilding")
        return None
    handle = EnvHandle(model=spec.name, kind="conda", python=str(prefix / "bin" / "python"), prefix=prefix,
                       manager=info.get("manager"), manager_exe=exe,
                       manager_version=info.get("manager_version"), lock_hash=digest,
                       locked=bool(info.get("locked", True)), info=info)
    if not Path(handle.python).exists():
        progress(f"[{spec.name}] env: {prefix} has no bin/python: rebuilding")
        return None
    if not smoke_import(handle, spec.smoke.imports, log_path=log_path):
        progress(f"[{spec.name}] env: smoke import failed in {prefix}: rebuilding (see {log_path})")
        return None
    return handle


def create_env(spec: ModelSpec, *, manager: str | None = None, force: bool = False, jobs: int | None = None,
               skip_weights: bool = False, device: str = "cuda:0", gpu: dict | None = None,
               progress: Callable[[str], None] | None = None, echo: bool = False) -> CreateResult:
    """Make ``spec`` installed (env + repo + ops + weights) and return what was done.

    ``manager``: micromamba | mamba | conda | rattler | a path (default: the preferred one found).
    ``force``: rebuild the env even when a matching one passes its smoke import (the repo is kept).
    ``jobs``: parallel compile jobs for the ops build (``MAX_JOBS``). ``gpu``: a ``gpu_info`` dict
    (looked up on ``device`` when None). Raises OnlinemapError subclasses with one-line messages.
    """
    say = progress or _stderr
    if spec.env_kind == "host":
        say(f"[{spec.name}] runs in the driver's Python: nothing to create")
        return CreateResult(model=spec.name, kind="host")
    if spec.env_kind != "conda":
        raise UsageError(f"{spec.name}: env_kind {spec.env_kind!r} cannot be created", "use conda or host")
    from onlinemap.environments.guard import check_gpu_arch

    if gpu is None and str(device).startswith("cuda"):
        from onlinemap.telemetry.nvml import gpu_info

        gpu = gpu_info(device)
    check_gpu_arch(spec, device, gpu=gpu or {"available": False})

    digest, locked = lock_hash(spec)
    lock = load_lock(spec.lock_file) if locked else None       # a corrupt lock: SpecError (exit 4) before any work
    if not locked:
        load_environment_yml(spec.environment_file)               # likewise a broken environment.yml
    prefix = paths.ensure_dir(paths.envs_prefix_dir()) / f"{spec.name}-{digest}"
    log_path = env_log_path(spec)
    with open(log_path, "a") as fh:
        fh.write(f"\n=== onlinemap env create {spec.name} {_dt.datetime.now().isoformat(timespec='seconds')} ===\n")
    result = CreateResult(model=spec.name, kind="conda", prefix=str(prefix), locked=locked, log=str(log_path))

    with manager_lock(f"create-{spec.name}"):
        handle = None if force else _reusable(spec, prefix, digest, log_path, say)
        from onlinemap.environments.repo import ensure_repo

        if handle is not None:
            say(f"[{spec.name}] env: {prefix} ready ({handle.manager}, lock {digest}): reused")
            result.reused, result.manager = True, handle.manager
            repo = ensure_repo(spec, log_path=log_path, progress=say)
            result.repo = str(repo) if repo else None
        else:
            mgr = find_manager(manager, allow_rattler=locked)   # first: a wrong --manager must not cost a ready env
            checked = verify_local_archives(lock) if locked else 0   # likewise a tampered archive (every manager)
            _remove_prefix(prefix)
            if checked:
                say(f"[{spec.name}] env: {checked} local archives match the lock's sha256/md5")
            say(f"[{spec.name}] env: creating {prefix} with {mgr.describe()}")
            handle = _handle(spec, prefix, mgr, digest, locked)
            result.manager = mgr.name
            try:
                if locked:
                    install_locked(handle, mgr, lock, log_path=log_path, progress=say, echo=echo)
                else:
                    install_unlocked(handle, mgr, spec.environment_file, log_path=log_path, progress=say,
                                     warn=say, echo=echo)
                result.steps.append("install")
                if not Path(handle.python).exists():
                    raise StepFailed(f"{spec.name}: env step 'install' left no bin/python in {prefix}",
                                     f"the lock must include python; see {log_path}")
                repo = ensure_repo(spec, log_path=log_path, progress=say)
                result.repo = str(repo) if repo else None
                if repo is not None and build_ops(spec, handle, repo, gpu=gpu, log_path=log_path, jobs=jobs,
                                                  progress=say, echo=echo):
                    result.steps.append("ops")
                say(f"[{spec.name}] env: smoke import {', '.join(spec.smoke.imports) or '(nothing)'}")
                if not smoke_import(handle, spec.smoke.imports, log_path=log_path):
                    raise StepFailed(f"{spec.name}: env step 'smoke import' failed "
                                     f"(python -c \"import {', '.join(spec.smoke.imports)}\")", f"see {log_path}")
                info = {"schema_version": ENV_INFO_SCHEMA, "model": spec.name, "lock_hash": digest, "locked": locked,
                        "manager": mgr.name, "manager_exe": mgr.exe, "manager_version": mgr.version,
                        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                        "python": _python_version(handle), "smoke_imports": list(spec.smoke.imports)}
                write_json_atomic(prefix / ENV_INFO_FILE, info)      # LAST: from here on the env is ready
                result.steps.append("info")
                say(f"[{spec.name}] env: ready at {prefix}")
            except BaseException:
                _remove_prefix(prefix)
                with open(log_path, "a") as fh:
                    fh.write(f"onlinemap: env creation failed; removed {prefix}\n")
                raise

    if skip_weights:
        say(f"[{spec.name}] weights: skipped (--skip-weights)")
    else:
        from onlinemap.environments.weights import ensure_weights

        path = ensure_weights(spec, progress=say)
        result.weights = str(path) if path else None
    return result
