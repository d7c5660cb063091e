"""``create_env``: the template that makes a model installed: env, repo, ops, smoke import, weights.

asv's ``Environment.create`` idea, with the info file as the only proof of completeness:

1. refuse early on a GPU the locked stack cannot run on (guard.py);
2. reuse ``ONLINEMAP_HOME/envs/<Model>-<lockhash>`` only when its info file matches the lock hash AND
   the smoke import passes; otherwise remove it (a half-built prefix from a crash too);
3. resolve the manager and hash every ``file://`` archive of the lock (integrity.py) BEFORE removing
   anything, then install the packages (installers.py: micromamba / conda / mamba / py-rattler; unlocked
   fallback);
4. check out the repo at the pinned commit (repo.py); before any build step, the toolchain preflight
   (toolchain.py: nvcc and host gcc versions against the torch pin's CUDA) refuses in one line; then
   run the ``[ops] build`` argv lists in it with the env's python, ``TORCH_CUDA_ARCH_LIST`` covering
   the variant's GPUs (see :func:`torch_cuda_arch_list`), ``FORCE_CUDA=1`` and ``CUDA_HOME`` (the env's
   own toolkit first); each step leaves a marker in the prefix and is skipped when its marker exists.
   Steps that change the repo are idempotent, so a retry after a late failure works: a ``git clone``
   whose destination already holds the pinned commit is kept, any other destination is re-made;
5. smoke-import ``[smoke] imports``, ``[ops] cuda_ops`` (the compiled extensions) and the repo's
   ``[smoke] plugin`` (cwd = the checkout), plus ``[smoke] cuda_check`` when a GPU is visible;
6. only then write ``.onlinemap-env.json`` atomically (last), with the ops arch list it was built for;
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

__all__ = ["create_env", "CreateResult", "env_log_path", "smoke_import", "smoke_code", "smoke_modules", "build_ops",
           "torch_cuda_arch_list", "find_cuda_home", "OPS_MARKER_DIR", "StepFailed"]

OPS_MARKER_DIR = ".onlinemap-ops"
OPS_ARCH_FILE = ".onlinemap-ops-arch"   # in the repo checkout: the TORCH_CUDA_ARCH_LIST its in-place build outputs have


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
    variant: str = "paper"
    wheels: list = field(default_factory=list)     # [{package, version, key, wheel, cached}]
    plan: list = field(default_factory=list)       # --dry-run: what would be done, one line each

    def to_dict(self) -> dict:
        return asdict(self)


def env_log_path(spec: ModelSpec) -> Path:
    return paths.ensure_dir(paths.logs_dir()) / f"env-{spec.name}.log"


def _handle(spec: ModelSpec, prefix: Path, manager: Manager, digest: str, locked: bool) -> EnvHandle:
    return EnvHandle(model=spec.name, kind="conda", python=str(prefix / "bin" / "python"), prefix=prefix,
                     manager=manager.name, manager_exe=manager.exe, manager_version=manager.version,
                     lock_hash=digest, locked=locked)


def smoke_modules(spec: ModelSpec) -> list[str]:
    """``[smoke] imports`` then ``[ops] cuda_ops`` (the compiled extension modules), without repeats."""
    return list(dict.fromkeys([*spec.smoke.imports, *spec.ops.cuda_ops]))


def smoke_code(spec: ModelSpec) -> str:
    """The Python source the smoke step runs: every module, the plugin, the CUDA check when a GPU is seen.

    One import per line, so the traceback in the log names the module that failed.
    """
    lines = [f"import {m}" for m in smoke_modules(spec)]
    if spec.smoke.plugin:
        lines.append(f"import importlib; importlib.import_module({spec.smoke.plugin!r})")
    if spec.smoke.cuda_check.strip():
        body = "\n".join("    " + ln for ln in spec.smoke.cuda_check.strip().splitlines())
        lines += ["import torch", "if torch.cuda.is_available():", body]
    return "\n".join(lines) or "pass"


def smoke_import(handle: EnvHandle, imports: list[str] | str, *, log_path: Path, cwd: Path | None = None) -> bool:
    """``python -c "import a, b"`` (or the given code) in the env through its manager's run command; True on exit 0."""
    code = imports if isinstance(imports, str) else (f"import {', '.join(imports)}" if imports else "pass")
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


#: the archs every ops build of a cu11x stack covers: A100 (8.0) and Ampere/Ada (8.6 cubins run on 8.9),
#: so a network volume reused on another GPU type does not hit "no kernel image" (research/models.md §8)
BASE_ARCHS = ("8.0", "8.6")


def _gpu_arch(spec: ModelSpec, gpu: dict | None) -> str | None:
    """The GPU's compute capability as an arch the stack can compile ("8.9" -> "8.6" below Hopper stacks)."""
    cc = (gpu or {}).get("compute_capability") if (gpu or {}).get("available") else None
    if not cc:
        return None
    # old stacks reject "8.9" (``Unknown CUDA arch``, research/models.md §8.1) and run sm_86 cubins on Ada
    return "8.6" if str(cc) == "8.9" and spec.gpu.max_compute < 9.0 else str(cc)


def torch_cuda_arch_list(spec: ModelSpec, gpu: dict | None) -> str:
    """``TORCH_CUDA_ARCH_LIST`` for the ops build: every arch the variant is meant for, plus this GPU's.

    ``[gpu] archs`` when the variant names them, else :data:`BASE_ARCHS` within ``[gpu] min_compute..max_compute``, plus the GPU's own arch when it lies
    in that range too (a T4's 7.5, say). An explicit ``TORCH_CUDA_ARCH_LIST`` in the environment wins.
    """
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    archs = set(spec.gpu.archs) or {a for a in BASE_ARCHS if spec.gpu.supports(float(a))}
    own = _gpu_arch(spec, gpu)
    if own and spec.gpu.supports(float(own)) and not any(a.split("+")[0] == own for a in archs):
        archs.add(own)
    return ";".join(sorted(archs or set(BASE_ARCHS), key=lambda a: float(a.split("+")[0])))


def arch_covered(arch_list: str | None, spec: ModelSpec, gpu: dict | None) -> bool:
    """Does an ops build for ``arch_list`` run on this GPU? (True without a GPU or a recorded list.)"""
    own = _gpu_arch(spec, gpu)
    if not own or not arch_list:
        return True
    built = [a.strip().split("+")[0] for a in arch_list.replace(",", ";").split(";") if a.strip()]
    # a cubin for X.y runs on X.z with z >= y (same major); no PTX is embedded for later majors
    return any(b.split(".")[0] == own.split(".")[0] and float(b) <= float(own) for b in built)


def find_cuda_home(prefix: Path | None = None) -> str | None:
    """The env's own CUDA toolkit first, then $CUDA_HOME / $CUDA_PATH, ``nvcc`` on PATH, /usr/local/cuda.

    The env's toolkit: ``PREFIX/pkgs/cuda-toolkit`` (conda-forge cudatoolkit-dev installs the toolkit
    there and links nvcc into PREFIX/bin) or ``PREFIX/bin/nvcc`` (NVIDIA's cuda-nvcc packages). It wins
    over the pod's, whose CUDA 12 nvcc cannot build ops for a cu111 torch.
    """
    if prefix is not None:
        for home in (Path(prefix) / "pkgs" / "cuda-toolkit", Path(prefix)):
            if (home / "bin" / "nvcc").exists():
                return str(home)
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var) and Path(os.environ[var]).is_dir():
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc:
        return str(Path(nvcc).resolve().parent.parent)
    return "/usr/local/cuda" if Path("/usr/local/cuda").is_dir() else None


def build_ops(spec: ModelSpec, handle: EnvHandle, repo: Path, *, gpu: dict | None, log_path: Path,
              jobs: int | None = None, progress: Callable[[str], None] = _stderr, echo: bool = False,
              before_build: Callable[[], None] | None = None) -> int:
    """Run ``spec.ops.build`` in ``repo`` with the env's python; skip steps whose marker exists. Returns steps run.

    ``before_build`` (the variant's repo patches) runs once, after the leading ``git`` steps (which fetch
    side clones such as mmdetection3d) and before the first step that builds anything."""
    pending = [before_build] if before_build else []

    def patch_now():
        while pending:
            pending.pop()()

    if not spec.ops.build:
        patch_now()
        return 0
    markers = Path(handle.prefix) / OPS_MARKER_DIR
    markers.mkdir(exist_ok=True)
    env, cuda_home, arch = _build_env(spec, handle, gpu, jobs)
    from onlinemap.environments.toolchain import check_toolchain

    check_toolchain(spec, handle, env=env, cuda_home=cuda_home, log_path=log_path, progress=progress)
    _clean_stale_builds(spec, repo, arch, progress)
    ran = 0
    for i, argv in enumerate(spec.ops.build, 1):
        if argv[0] != "git":
            patch_now()
        key = hashlib.sha256(json.dumps([argv, spec.repo.commit if spec.repo else ""]).encode()).hexdigest()[:12]
        marker = markers / f"{i:02d}-{key}.ok"
        label = " ".join(argv)
        if marker.exists():
            progress(f"[{spec.name}] ops {i}/{len(spec.ops.build)}: {label} (done before, skipped)")
            continue
        if _keep_side_clone(spec, i, repo, progress):
            marker.write_text(json.dumps({"argv": argv, "kept": True}) + "\n")
            continue
        progress(f"[{spec.name}] ops {i}/{len(spec.ops.build)}: {label} (TORCH_CUDA_ARCH_LIST={arch})")
        full = [handle.python if a == "python" and j == 0 else a for j, a in enumerate(argv)]
        run_step(f"ops build {i}/{len(spec.ops.build)}", [*run_prefix_argv(handle), *full], model=spec.name,
                 log_path=log_path, env=env, cwd=repo, echo=echo)
        marker.write_text(json.dumps({"argv": argv, "commit": spec.repo.commit if spec.repo else None}) + "\n")
        ran += 1
    patch_now()
    (repo / OPS_ARCH_FILE).write_text(arch + "\n")
    return ran


def _clean_stale_builds(spec: ModelSpec, repo: Path, arch_list: str, progress: Callable[[str], None]) -> None:
    """Remove in-place build outputs left by a build for other archs (``pip install -e`` builds in the checkout).

    setuptools' build_ext compares file times, not flags: a ``build/`` and in-place ``*.so`` from an
    earlier arch list would be reused as they are, and a GPU they do not cover gets "no kernel image".
    """
    recorded = repo / OPS_ARCH_FILE
    try:
        before = recorded.read_text().strip()
    except OSError:
        before = None
    if before == arch_list:
        return
    stale = [p for p in repo.rglob("*.so") if ".git" not in p.relative_to(repo).parts]
    stale += [p for p in repo.rglob("build") if p.is_dir() and ".git" not in p.relative_to(repo).parts
              and any(c.name.startswith("temp.") for c in p.iterdir())]
    if stale:
        progress(f"[{spec.name}] ops: arch list {arch_list} differs from the last build's ({before or 'unknown'}): "
                 f"removing {len(stale)} stale build outputs in {repo}")
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    recorded.unlink(missing_ok=True)


def _pinned_after(build: list, i: int, dest: str) -> str | None:
    """The commit a later ``git -C <dest> ... checkout ... <sha>`` step pins ``dest`` to (None: no such step)."""
    for argv in build[i:]:
        if argv[:3] == ["git", "-C", dest] and "checkout" in argv:
            return argv[-1]
    return None


def _keep_side_clone(spec: ModelSpec, i: int, repo: Path, progress: Callable[[str], None]) -> bool:
    """Make step ``i`` (1-based) retry-safe when it is a ``git clone`` into the repo checkout.

    The step markers live in the prefix (deleted on failure) but the checkout is reused, so a retry
    would meet its own earlier clone ("destination path ... already exists"). A destination already at
    the commit the next checkout step pins is kept (True: skip the clone); any other one is removed so
    the clone re-makes it (False).
    """
    from onlinemap.environments.repo import git_head

    argv = spec.ops.build[i - 1]
    if argv[:2] != ["git", "clone"]:
        return False
    dest_arg = argv[-1]
    dest = (repo / dest_arg).resolve()
    if not dest.exists():
        return False
    if repo.resolve() not in dest.parents:
        raise StepFailed(f"{spec.name}: [ops] step {i} clones outside the repo checkout ({dest_arg})",
                         "clone into a folder inside the repo (fix model.toml [ops] build)")
    pinned = _pinned_after(spec.ops.build, i, dest_arg)
    if pinned and git_head(dest) == pinned:
        progress(f"[{spec.name}] ops {i}/{len(spec.ops.build)}: {dest_arg} already at {pinned[:12]} (kept)")
        return True
    progress(f"[{spec.name}] ops {i}/{len(spec.ops.build)}: {dest_arg} exists but is not at the pinned commit: re-cloning")
    shutil.rmtree(dest)
    return False


def _apply_variant_patches(spec: ModelSpec, handle: EnvHandle, log_path: Path, say, echo) -> list[dict]:
    """The variant's ``site`` patches into the freshly installed env (repo ones follow the checkout)."""
    if not spec.site_patches:
        return []
    from onlinemap.environments.patches import apply_patches, site_packages

    return apply_patches(spec, "site", site_packages(handle), log_path=log_path, env=env_child_env(handle.prefix),
                         progress=say, echo=echo)


def _install_wheels(spec: ModelSpec, handle: EnvHandle, gpu: dict | None, log_path: Path, jobs: int | None,
                    say, echo) -> list[dict]:
    """Each ``[[wheels]]`` entry from the built-wheel cache (built and cached first when missing)."""
    from onlinemap.environments.wheelcache import ensure_wheel

    env, _, arch = _build_env(spec, handle, gpu, jobs)
    return [ensure_wheel(w, handle, spec.folder.parent, arch_list=arch, log_path=log_path, env=env, progress=say,
                         echo=echo).to_dict() for w in spec.wheels]


def _remove_prefix(prefix: Path) -> None:
    if prefix.is_symlink() or prefix.is_file():
        prefix.unlink()
    elif prefix.exists():
        shutil.rmtree(prefix)


def _reusable(spec: ModelSpec, prefix: Path, digest: str, log_path: Path,
              progress: Callable[[str], None], gpu: dict | None = None) -> EnvHandle | None:
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
    if spec.ops.build and not arch_covered(info.get("ops_arch_list"), spec, gpu):
        progress(f"[{spec.name}] env: ops were built for {info.get('ops_arch_list')}, which does not cover this "
                 f"GPU ({(gpu or {}).get('compute_capability')}): rebuilding them cleanly")
        return None
    if not smoke_import(handle, smoke_code(spec), log_path=log_path, cwd=_smoke_cwd(spec)):
        progress(f"[{spec.name}] env: smoke import failed in {prefix}: rebuilding (see {log_path})")
        return None
    return handle


def _smoke_cwd(spec: ModelSpec) -> Path | None:
    from onlinemap.readiness import repo_dir

    repo = repo_dir(spec)
    return repo if repo is not None and repo.is_dir() else None


def plan_lines(spec: ModelSpec, gpu: dict | None) -> list[str]:
    """What ``create_env`` would do for this variant, one line a step (``env create --dry-run``)."""
    from onlinemap.readiness import repo_dir

    digest, locked = lock_hash(spec)
    lines = [f"variant {spec.variant} (compute {spec.gpu.min_compute:g}-{spec.gpu.max_compute:g}; "
             f"variants: {', '.join(spec.variant_names)})",
             f"env {paths.envs_prefix_dir() / f'{spec.env_key}-{digest}'} from "
             f"{spec.lock_file if locked else spec.environment_file}" + ("" if locked else " (UNLOCKED)")]
    repo = repo_dir(spec)
    if repo is not None:
        lines.append(f"repo {repo} at {spec.repo.commit[:12]}")
    for kind in ("site", "repo"):
        for pattern in (spec.site_patches if kind == "site" else spec.repo_patches):
            files = sorted(spec.folder.glob(pattern)) if any(c in pattern for c in "*?[") else [spec.folder / pattern]
            files = [f for f in files if f.is_file()]
            if not files:
                lines.append(f"{kind} patch {pattern}: MATCHES NO FILE (env create would stop here)")
            for f in files:
                lines.append(f"{kind} patch {os.path.relpath(f, spec.folder)}")
    arch = torch_cuda_arch_list(spec, gpu)
    for w in spec.wheels:
        lines.append(f"wheel {w.package}=={w.version} (built once, cached under ONLINEMAP_HOME/wheels; "
                     f"TORCH_CUDA_ARCH_LIST={arch}; patches: {', '.join(w.patches) or 'none'})")
    for i, argv in enumerate(spec.ops.build, 1):
        lines.append(f"ops {i}/{len(spec.ops.build)}: {' '.join(argv)} (TORCH_CUDA_ARCH_LIST={arch})")
    lines.append("smoke import " + ", ".join(smoke_modules(spec) + ([spec.smoke.plugin] if spec.smoke.plugin else [])))
    return lines


def create_env(spec: ModelSpec, *, manager: str | None = None, force: bool = False, jobs: int | None = None,
               skip_weights: bool = False, device: str = "cuda:0", gpu: dict | None = None,
               progress: Callable[[str], None] | None = None, echo: bool = False,
               variant: str | None = None, dry_run: bool = False) -> CreateResult:
    """Make ``spec`` installed (env + repo + ops + weights) and return what was done.

    ``manager``: micromamba | mamba | conda | rattler | a path (default: the preferred one found).
    ``force``: rebuild the env even when a matching one passes its smoke import (the repo is kept).
    ``jobs``: parallel compile jobs for the ops build (``MAX_JOBS``). ``gpu``: a ``gpu_info`` dict
    (looked up on ``device`` when None). ``variant``: the env variant (default: chosen from the GPU's
    compute capability, guard.choose_variant). ``dry_run``: return the plan, change nothing.
    Raises OnlinemapError subclasses with one-line messages.
    """
    say = progress or _stderr
    if spec.env_kind == "host":
        say(f"[{spec.name}] runs in the driver's Python: nothing to create")
        return CreateResult(model=spec.name, kind="host")
    if spec.env_kind != "conda":
        raise UsageError(f"{spec.name}: env_kind {spec.env_kind!r} cannot be created", "use conda or host")
    from onlinemap.environments.guard import check_gpu_arch, choose_variant

    if gpu is None and str(device).startswith("cuda"):
        from onlinemap.telemetry.nvml import gpu_info

        gpu = gpu_info(device)
    spec = choose_variant(spec, device, gpu or {"available": False}, variant)
    check_gpu_arch(spec, device, gpu=gpu or {"available": False})
    if dry_run:
        lines = plan_lines(spec, gpu)
        for line in lines:
            say(f"[{spec.name}] would: {line}")
        return CreateResult(model=spec.name, kind="conda", variant=spec.variant, plan=lines,
                            prefix=str(paths.envs_prefix_dir() / f"{spec.env_key}-{lock_hash(spec)[0]}"))

    if spec.repo_patches or spec.site_patches:       # a missing patch file: one line before any work
        from onlinemap.environments.patches import patch_files

        patch_files(spec, "repo"), patch_files(spec, "site")
    digest, locked = lock_hash(spec)
    lock = load_lock(spec.lock_file) if locked else None       # a corrupt lock: SpecError (exit 4) before any work
    if not locked:
        load_environment_yml(spec.environment_file)               # likewise a broken environment.yml
    prefix = paths.ensure_dir(paths.envs_prefix_dir()) / f"{spec.env_key}-{digest}"
    log_path = env_log_path(spec)
    with open(log_path, "a") as fh:
        fh.write(f"\n=== onlinemap env create {spec.name} {_dt.datetime.now().isoformat(timespec='seconds')} ===\n")
    result = CreateResult(model=spec.name, kind="conda", prefix=str(prefix), locked=locked, log=str(log_path),
                          variant=spec.variant)
    say(f"[{spec.name}] variant: {spec.variant}" + (" (--variant)" if variant else
                                                     " (chosen from the GPU)" if spec.variants else ""))

    with manager_lock(f"create-{spec.env_key}"):
        handle = None if force else _reusable(spec, prefix, digest, log_path, say, gpu=gpu)
        from onlinemap.environments.repo import ensure_repo

        if handle is not None:
            say(f"[{spec.name}] env: {prefix} ready ({handle.manager}, lock {digest}): reused")
            result.reused, result.manager = True, handle.manager
            repo = ensure_repo(spec, log_path=log_path, progress=say)
            result.repo = str(repo) if repo else None
            if repo is not None and spec.repo_patches:      # a re-made checkout gets them again (idempotent)
                from onlinemap.environments.patches import apply_patches

                apply_patches(spec, "repo", repo, log_path=log_path, env=env_child_env(prefix), progress=say, echo=echo)
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
                applied = _apply_variant_patches(spec, handle, log_path, say, echo)
                repo = ensure_repo(spec, log_path=log_path, progress=say)
                result.repo = str(repo) if repo else None
                patch_repo = None
                if repo is not None and spec.repo_patches:
                    from onlinemap.environments.patches import apply_patches

                    def patch_repo():
                        applied.extend(apply_patches(spec, "repo", repo, log_path=log_path, env=env_child_env(prefix),
                                                     progress=say, echo=echo))
                if spec.wheels:
                    result.wheels = _install_wheels(spec, handle, gpu, log_path, jobs, say, echo)
                    result.steps.append("wheels")
                if repo is not None and build_ops(spec, handle, repo, gpu=gpu, log_path=log_path, jobs=jobs,
                                                  progress=say, echo=echo, before_build=patch_repo):
                    result.steps.append("ops")
                modules = smoke_modules(spec) + ([spec.smoke.plugin] if spec.smoke.plugin else [])
                say(f"[{spec.name}] env: smoke import {', '.join(modules) or '(nothing)'}"
                    + (" + CUDA check" if spec.smoke.cuda_check.strip() else ""))
                if not smoke_import(handle, smoke_code(spec), log_path=log_path, cwd=repo):
                    raise StepFailed(f"{spec.name}: env step 'smoke import' failed "
                                     f"(import {', '.join(modules)})", f"the failing import is in {log_path}")
                info = {"schema_version": ENV_INFO_SCHEMA, "model": spec.name, "lock_hash": digest, "locked": locked,
                        "manager": mgr.name, "manager_exe": mgr.exe, "manager_version": mgr.version,
                        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                        "python": _python_version(handle), "smoke_imports": smoke_modules(spec),
                        "ops_arch_list": torch_cuda_arch_list(spec, gpu) if spec.ops.build or spec.wheels else None,
                        "variant": spec.variant, "patches": applied, "wheels": result.wheels}
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


def _build_env(spec, handle, gpu, jobs):
    """(environment, CUDA_HOME, TORCH_CUDA_ARCH_LIST) for compiling CUDA code in the env: the ops steps and the
    cached wheels build with the same one."""
    arch = torch_cuda_arch_list(spec, gpu)
    extra = {"TORCH_CUDA_ARCH_LIST": arch, "FORCE_CUDA": "1"}
    cuda_home = find_cuda_home(Path(handle.prefix))
    if cuda_home:
        extra["CUDA_HOME"] = cuda_home
    if jobs:
        extra["MAX_JOBS"] = str(jobs)
    return env_child_env(handle.prefix, extra), cuda_home, arch
