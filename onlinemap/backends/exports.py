"""Export a model in its own env (harness/export.py) and find the export a backend run needs."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from onlinemap import paths
from onlinemap.errors import MissingPrerequisiteError, OnlinemapError, UsageError
from onlinemap.registry.spec import ModelSpec

__all__ = ["BACKENDS", "BACKEND_FORMAT", "FORMATS", "export_model", "export_dir_for", "find_export",
           "check_backend", "exports_dir", "job_settings", "launch_in_env"]

HARNESS = Path(__file__).resolve().parent.parent / "harness"
FORMATS = ("onnx", "pt2")
BACKENDS = ("torch", "onnxruntime", "pt2", "tensorrt")
BACKEND_FORMAT = {"onnxruntime": "onnx", "tensorrt": "onnx", "pt2": "pt2"}
DEFAULT_OPSET = 17
EXPORT_TIMEOUT_S = 1800.0


class ExportFailed(OnlinemapError):
    """The model could not be exported (no hook, an op with no symbolic, an exporter error)."""


def exports_dir() -> Path:
    return Path(os.environ.get("ONLINEMAP_EXPORTS") or paths.home() / "exports")


def check_backend(backend: str, device: str) -> str:
    """A known backend that can run on ``device``, or one line saying why not."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
    if backend == "tensorrt" and not str(device).startswith("cuda"):
        raise MissingPrerequisiteError("the tensorrt backend needs a CUDA GPU and the tensorrt package in the "
                                       "model env; this run is on cpu", "use --backend onnxruntime, or --device cuda:N "
                                       "on a machine with TensorRT")
    return backend


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checkpoint(spec: ModelSpec) -> tuple[str | None, str | None]:
    if spec.checkpoint is None or not spec.checkpoint.file:
        return None, None
    path = paths.weights_dir() / spec.checkpoint.file
    return str(path), (_sha256(path) if path.is_file() else None)


def _key(spec: ModelSpec, fmt: str, options: dict, lock_hash: str | None, ckpt_sha: str | None, opset: int) -> str:
    blob = json.dumps({"model": spec.name, "format": fmt, "options": options or {}, "lock_hash": lock_hash,
                       "checkpoint_sha256": ckpt_sha, "adapter_sha256": _sha256(spec.adapter_path),
                       "harness_sha256": _sha256(HARNESS / "export.py"), "opset": opset if fmt == "onnx" else None},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def export_dir_for(spec: ModelSpec, fmt: str, options: dict | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Where the export of ``spec`` in ``fmt`` with these options lives (whether or not it exists yet)."""
    from onlinemap.environments import resolve_environment

    env = resolve_environment(spec)
    _, ckpt_sha = _checkpoint(spec)
    return exports_dir() / f"{spec.name}-{_key(spec, fmt, options or {}, env.lock_hash, ckpt_sha, opset)}-{fmt}"


def find_export(spec: ModelSpec, backend: str, options: dict | None = None) -> Path:
    """The export a backend run needs, or one line naming the export command to run first."""
    fmt = BACKEND_FORMAT[backend]
    folder = export_dir_for(spec, fmt, options)
    if not (folder / "metadata.json").is_file():
        raise MissingPrerequisiteError(
            f"{spec.name} has no {fmt} export for its current adapter, env and checkpoint (looked in {folder})",
            f"onlinemap export --model {spec.name} --format {fmt}")
    return folder


def job_settings(spec: ModelSpec, device: str, root: Path, version: str, options: dict | None) -> dict:
    """The adapter settings a worker job carries (the same fields runner.py writes)."""
    from onlinemap.readiness import repo_dir

    ckpt, _ = _checkpoint(spec)
    repo = repo_dir(spec)
    config = spec.config.default if spec.config else None
    if config and repo is not None and not os.path.isabs(config):
        config = str(repo / config)
    return {"model": spec.name, "config": config, "checkpoint": ckpt, "dataroot": str(root), "version": version,
            "device": device, "repo": str(repo) if repo else None, "options": options or {}}


def launch_in_env(spec: ModelSpec, script: str, job: dict, job_path: Path, log_path: Path, device: str,
                  timeout_s: float) -> int:
    """Run ``harness/<script>`` on ``job`` in the model's env; returns its exit code, output in ``log_path``."""
    from onlinemap.environments import resolve_environment
    from onlinemap.runner import _child_env

    env = resolve_environment(spec)
    job_path.write_text(json.dumps(job, indent=1))
    argv = env.launch_argv(HARNESS / script, str(job_path))
    with open(log_path, "wb") as log:
        try:
            return subprocess.run(argv, env=_child_env(device), stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout_s, start_new_session=True).returncode
        except subprocess.TimeoutExpired:
            raise ExportFailed(f"{spec.name}: {script} did not finish within {timeout_s:.0f} s",
                               f"see {log_path}") from None


def _dataset(spec: ModelSpec, dataroot: Path | None, version: str | None):
    from onlinemap.data.selection import resolve_dataset
    from onlinemap.readiness import require_ready

    dataroot = Path(dataroot) if dataroot else paths.default_dataroot()
    require_ready(spec, dataroot)
    return resolve_dataset(dataroot, version)


def export_model(spec: ModelSpec, fmt: str, *, dataroot: Path | None = None, version: str | None = None,
                 device: str = "cpu", options: dict | None = None, opset: int = DEFAULT_OPSET,
                 sample_token: str | None = None, timeout_s: float = EXPORT_TIMEOUT_S) -> tuple[Path, dict]:
    """Export ``spec`` in ``fmt`` from one real sample; returns (export folder, metadata)."""
    from onlinemap.data.selection import select_samples
    from onlinemap.environments import resolve_environment
    from onlinemap.runner import check_device

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    device = check_device(device)
    root, version = _dataset(spec, dataroot, version)
    sample = select_samples(root, version, count=1, warmup=0,
                            sample_tokens=[sample_token] if sample_token else None)[0]
    env = resolve_environment(spec)
    ckpt, ckpt_sha = _checkpoint(spec)
    final = export_dir_for(spec, fmt, options, opset)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    job = {"adapter": str(spec.adapter_path), "settings": job_settings(spec, device, root, version, options),
           "sample": sample, "format": fmt, "opset": opset, "out_dir": str(work), "lock_hash": env.lock_hash,
           "checkpoint_sha256": ckpt_sha}
    code = launch_in_env(spec, "export.py", job, work / "job.json", work / "log.txt", device, timeout_s)
    try:
        result = json.loads((work / "result.json").read_text())
    except (OSError, ValueError):
        result = {"ok": False, "message": f"the export process exited with code {code} before writing its result"}
    if not result.get("ok"):
        log = final.parent / f"{final.name}.failed.log"
        shutil.copyfile(work / "log.txt", log)
        shutil.rmtree(work, ignore_errors=True)
        raise ExportFailed(f"{spec.name}: {fmt} export failed: {result.get('message')}", f"see {log}")
    if final.exists():
        shutil.rmtree(final)
    os.replace(work, final)
    return final, json.loads((final / "metadata.json").read_text())
