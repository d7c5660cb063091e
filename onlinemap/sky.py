"""SkyPilot fan-out: one task YAML per model (``onlinemap sky tasks``), and merging what comes back.

Each task rents one pod with a GPU the model's locked stack can run on (from ``[gpu]
min_compute..max_compute`` in its model.toml), syncs this checkout as the workdir, runs
``./runpod_setup.sh --models X`` as setup and ``onlinemap bench --models X …`` as the job. Results
are one folder per run, so bringing them home is copying folders: ``sky rsync-down`` (or scp) the
pod's ``results`` folder, then ``onlinemap sky merge DIR…`` copies every run folder that is not
already in ONLINEMAP_HOME/results and refuses one whose run.json is invalid.

SkyPilot is an optional extra (``pip install "skypilot[runpod]"``; research/runpod-eval.md §1.4):
nothing here imports it. On RunPod, SkyPilot keeps no volume disk, so envs are rebuilt per launch
unless a network volume is attached (``ONLINEMAP_HOME`` on it).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from onlinemap import paths

__all__ = ["GPU_COMPUTE", "accelerators_for", "task_for", "write_tasks", "merge_results", "MergeReport"]

# SkyPilot accelerator names (RunPod catalogue) -> CUDA compute capability; cheapest-first order
GPU_COMPUTE = {"RTX3090": 8.6, "A6000": 8.6, "RTX4090": 8.9, "A100": 8.0, "A100-80GB": 8.0, "L40S": 8.9,
               "H100": 9.0}
DEFAULT_ACCELERATORS = ("RTX3090", "A6000", "RTX4090", "A100")   # when a spec allows everything (reference)
REMOTE_HOME = "~/onlinemap-home"


def accelerators_for(spec) -> dict[str, int]:
    """``{name: 1}`` for every catalogue GPU inside the spec's compute range (SkyPilot: any one of them)."""
    lo = getattr(spec.gpu, "min_compute", None)
    hi = getattr(spec.gpu, "max_compute", None)
    names = [n for n, cc in GPU_COMPUTE.items() if (lo is None or cc >= lo) and (hi is None or cc <= hi)]
    if hi is None or hi >= 90:
        names = [n for n in names if n in DEFAULT_ACCELERATORS] or names
    return {n: 1 for n in names}


def task_for(model: str, *, samples: int = 200, warmup: int = 5, cloud: str = "runpod",
             extra_args: list[str] | None = None) -> dict:
    """The SkyPilot task (as a dict ready for yaml.safe_dump) that benchmarks ``model`` on one pod."""
    import shlex

    from onlinemap.registry import find_model

    spec = find_model(model)
    bench = ["onlinemap", "bench", "--models", spec.name, "--samples", str(samples), "--warmup", str(warmup),
             "--device", "cuda:0", *(extra_args or [])]
    return {
        "name": f"onlinemap-{spec.name.lower()}",
        "workdir": str(paths.repo_root()),
        "resources": {"cloud": cloud, "accelerators": accelerators_for(spec), "disk_size": 200},
        "envs": {"ONLINEMAP_HOME": REMOTE_HOME, "ONLINEMAP_MODEL": spec.name},
        "setup": f"set -e\n./runpod_setup.sh --models {shlex.quote(spec.name)}\n",
        "run": (f"set -e\nexport PATH=\"$PWD/.venv/bin:$PATH\"\n{shlex.join(bench)}\n"
                f"echo \"results: $ONLINEMAP_HOME/results (sky rsync-down <cluster> $ONLINEMAP_HOME/results ./returned)\"\n"),
    }


def write_tasks(models: list[str], out_dir: Path, **kwargs) -> list[Path]:
    """One ``sky-<model>.yaml`` per model under ``out_dir``; returns the paths."""
    import yaml

    out_dir = paths.ensure_dir(Path(out_dir))
    written = []
    for model in models:
        task = task_for(model, **kwargs)
        path = out_dir / f"sky-{task['name'][len('onlinemap-'):]}.yaml"
        header = (f"# SkyPilot task written by `onlinemap sky tasks` for {model}; regenerate with that command.\n"
                  f"# Launch: sky launch -c {task['name']} {path.name}   (needs: pip install 'skypilot[runpod]')\n")
        path.write_text(header + yaml.safe_dump(task, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


@dataclass
class MergeReport:
    copied: list = field(default_factory=list)
    present: list = field(default_factory=list)
    refused: list = field(default_factory=list)     # (path, reason)

    def to_dict(self) -> dict:
        return {"copied": self.copied, "present": self.present,
                "refused": [{"path": p, "reason": r} for p, r in self.refused]}


def _run_dirs(source: Path) -> list[Path]:
    if (source / "run.json").exists():
        return [source]
    return sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")) if source.is_dir() else []


def merge_results(sources: list[Path | str], *, dest: Path | None = None) -> MergeReport:
    """Copy each run folder under ``sources`` into ``dest`` (ONLINEMAP_HOME/results) unless already there.

    A folder without a valid run.json (missing, corrupt, newer schema, run_id not the folder's
    name) is refused and listed; the others are still merged. Each copy goes to a temp folder
    next to the destination and is renamed into place, so a reader never sees half a run.
    """
    from onlinemap.errors import ResultsError
    from onlinemap.runs.store import load_run

    dest = paths.ensure_dir(Path(dest) if dest else paths.results_dir())
    report = MergeReport()
    for source in map(Path, sources):
        if not source.is_dir():
            report.refused.append((str(source), "not a directory"))
            continue
        for run_dir in _run_dirs(source):
            try:
                paths.check_safe_name(run_dir.name, "run folder")
                rec = load_run(run_dir)
                if rec.run_id != run_dir.name:
                    raise ResultsError(f"run_id {rec.run_id!r} is not the folder name {run_dir.name!r}")
            except Exception as exc:  # noqa: BLE001 - UsageError/ResultsError: refuse this folder only
                report.refused.append((str(run_dir), getattr(exc, "message", str(exc))))
                continue
            target = dest / run_dir.name
            if target.exists():
                report.present.append(run_dir.name)
                continue
            tmp = Path(tempfile.mkdtemp(prefix=f".merge-{run_dir.name}-", dir=dest))
            try:
                shutil.copytree(run_dir, tmp / "run", symlinks=True)
                os.rename(tmp / "run", target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            report.copied.append(run_dir.name)
    return report
