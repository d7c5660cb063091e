"""``verify``: PyTorch and a backend on the same samples, compared tensor by tensor and by metric.

The comparison itself runs in the model's env (harness/verify.py); this side picks the samples,
reads the pack's tolerances (``envs/<Model>/backends.toml``, else rtol 1e-3 / atol 1e-5, the
values mmdeploy's tests use) and evaluates both sides' converted predictions where an evaluator
applies (nuScenes detection mAP/NDS, map mAP), reporting the deltas.
"""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from onlinemap.errors import SpecError
from onlinemap.registry.spec import ModelSpec

__all__ = ["Tolerances", "load_tolerances", "verify_model", "TOLERANCES_FILE"]

TOLERANCES_FILE = "backends.toml"
VERIFY_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Tolerances:
    rtol: float = 1e-3
    atol: float = 1e-5


def load_tolerances(spec: ModelSpec, backend: str) -> Tolerances:
    """``[tolerance]`` of the pack's backends.toml, overridden per backend by ``[tolerance.<backend>]``."""
    import tomllib

    path = spec.folder / TOLERANCES_FILE
    if not path.is_file():
        return Tolerances()
    try:
        table = tomllib.loads(path.read_text()).get("tolerance") or {}
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: {exc}", "fix the TOML (see docs/backends.md)") from None
    values = {k: table[k] for k in ("rtol", "atol") if k in table}
    values.update({k: v for k, v in (table.get(backend) or {}).items() if k in ("rtol", "atol")})
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise SpecError(f"{path}: tolerance {key}={value!r} is not a non-negative number",
                            "give rtol/atol as numbers such as 1e-3")
    return Tolerances(**{k: float(v) for k, v in values.items()})


def _metric_deltas(torch_preds: Path, backend_preds: Path, root: Path, version: str) -> dict:
    from onlinemap.evaluation.detection import evaluate_detection, load_nuscenes
    from onlinemap.evaluation.mapping import evaluate_mapping
    from onlinemap.fileio import iter_jsonl

    a, b = list(iter_jsonl(torch_preds)), list(iter_jsonl(backend_preds))
    nusc = load_nuscenes(root, version)
    out = {}
    if any(p.get("detections_3d") for p in a):
        da, db = (evaluate_detection(p, root, version, nusc=nusc) for p in (a, b))
        for key in ("mAP", "NDS"):
            out[f"detection.{key}"] = {"torch": da[key], "backend": db[key],
                                       "delta": None if da[key] is None or db[key] is None else db[key] - da[key]}
    if any(p.get("map_elements") for p in a):
        ma, mb = (evaluate_mapping(p, root, version, nusc=nusc) for p in (a, b))
        out["map.mAP"] = {"torch": ma["mAP"], "backend": mb["mAP"], "delta": mb["mAP"] - ma["mAP"]}
    return out


def verify_model(spec: ModelSpec, backend: str, *, samples: int = 3, dataroot: Path | None = None,
                 version: str | None = None, device: str = "cpu", options: dict | None = None,
                 metrics: bool = True, timeout_s: float = VERIFY_TIMEOUT_S) -> dict:
    """Run the comparison; returns harness/verify.py's result plus ``metrics`` (deltas) and ``tolerances``."""
    from onlinemap.backends.exports import (ExportFailed, _dataset, check_backend, find_export, job_settings,
                                            launch_in_env)
    from onlinemap.data.selection import select_samples
    from onlinemap.runner import check_device

    device = check_device(device)
    check_backend(backend, device)
    if backend == "torch":
        from onlinemap.errors import UsageError

        raise UsageError("verify compares a backend against torch", "give --backend onnxruntime, pt2 or tensorrt")
    tol = load_tolerances(spec, backend)
    export_dir = find_export(spec, backend, options)
    root, version = _dataset(spec, dataroot, version)
    chosen = select_samples(root, version, count=samples, warmup=0)[:samples]
    work = Path(tempfile.mkdtemp(prefix=f"verify-{spec.name}-", dir=export_dir))
    job = {"adapter": str(spec.adapter_path), "settings": job_settings(spec, device, root, version, options),
           "samples": chosen, "backend": backend, "export_dir": str(export_dir), "rtol": tol.rtol, "atol": tol.atol,
           "result": str(work / "result.json"), "predictions_torch": str(work / "predictions.torch.jsonl"),
           "predictions_backend": str(work / "predictions.backend.jsonl")}
    code = launch_in_env(spec, "verify.py", job, work / "job.json", work / "log.txt", device, timeout_s)
    try:
        result = json.loads((work / "result.json").read_text())
    except (OSError, ValueError):
        raise ExportFailed(f"{spec.name}: verify exited with code {code} before writing its result",
                           f"see {work / 'log.txt'}") from None
    if "error" in result:
        raise ExportFailed(f"{spec.name}: verify on {backend} could not run: {result['error']}",
                           f"see {work / 'log.txt'}")
    result.update(folder=str(work), export_dir=str(export_dir), tolerances={"rtol": tol.rtol, "atol": tol.atol},
                  metrics=_metric_deltas(Path(job["predictions_torch"]), Path(job["predictions_backend"]), root,
                                         version) if metrics else {})
    (work / "verify.json").write_text(json.dumps(result, indent=1, default=str))
    return result
