"""Data: the nuScenes root (or the synthetic dataset when none is given) and each model's info files.

``--dataroot DIR`` / ``NUSCENES_ROOT``: the layout is checked (``v1.0-*`` tables, ``samples/``,
``maps/``; CAN bus and map expansion where a model needs them). Without one, the synthetic nuScenes
v1.0-mini is written to ``ONLINEMAP_HOME/data/nuscenes-synth`` (via a temporary sibling, renamed
when complete, so an interrupted write never looks ready); it exercises the pipeline, not accuracy.

Info files (``model.toml [data] info_files``) are made with the model's own converter, run in the
model's env from its repo. The argv lists below come from each repo's docs (research/models.md §1.3,
§2.3, §3.3, §5.3) and are UNVERIFIED here (no env, no real nuScenes on this machine). TopoMLP's
OpenLane-V2 pickles come from the OpenLane-V2 devkit: the stage says so instead of guessing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from onlinemap import paths
from onlinemap.errors import DatasetError, MissingPrerequisiteError
from onlinemap.setup.stages import CheckResult, SetupContext, Stage, StageLog, fault_point

__all__ = ["CONVERTERS", "data_stage", "info_stage", "check_layout", "converter_argv", "SYNTH_SCENES"]

SYNTH_SCENES, SYNTH_SAMPLES = 2, 20     # what `onlinemap data synth` writes by default

#: model -> argv run with the env's python in the model's repo ({root}: dataroot, {canbus}: its parent)
CONVERTERS = {
    "MapTR": ["python", "tools/create_data.py", "nuscenes", "--root-path", "{root}", "--out-dir", "{out}",
              "--extra-tag", "nuscenes", "--version", "{version}", "--canbus", "{canbus}"],
    "PETR": ["python", "mmdetection3d/tools/create_data.py", "nuscenes", "--root-path", "{root}", "--out-dir",
             "{out}", "--extra-tag", "nuscenes", "--version", "{version}"],
    "StreamPETR": ["python", "tools/create_data_nusc.py", "--root-path", "{root}", "--out-dir", "{out}",
                   "--extra-tag", "nuscenes2d", "--version", "{version}"],
    "VAD": ["python", "tools/data_converter/vad_nuscenes_converter.py", "nuscenes", "--root-path", "{root}",
            "--out-dir", "{out}", "--extra-tag", "vad_nuscenes", "--version", "{version}", "--canbus", "{canbus}"],
}


def _synth_root() -> Path:
    return paths.data_dir() / "nuscenes-synth"


def check_layout(root: Path, needs: tuple = ("nuscenes",)) -> CheckResult:
    """Is ``root`` a nuScenes root with what ``needs`` lists (can_bus, map_expansion)?"""
    from onlinemap.harness import nuscenes_index

    root = Path(root)
    if "openlane_v2" in needs:
        return CheckResult(root.is_dir(), f"OpenLane-V2 root {root}" + ("" if root.is_dir() else " missing"),
                           None if root.is_dir() else "pass --dataroot DIR pointing at the OpenLane-V2 data")
    try:
        version = nuscenes_index.detect_version(str(root))
    except nuscenes_index.NotNuScenes as exc:
        return CheckResult(False, str(exc), "pass --dataroot DIR (or set NUSCENES_ROOT) pointing at a nuScenes root")
    missing = [d for d in ("samples", "maps") if not (root / d).is_dir()]
    if "can_bus" in needs and not (root / "can_bus").is_dir() and not (root.parent / "can_bus").is_dir():
        missing.append("can_bus (CAN bus expansion, beside or inside the root)")
    if "map_expansion" in needs and not (root / "maps" / "expansion").is_dir():
        missing.append("maps/expansion (map expansion)")
    if missing:
        return CheckResult(False, f"{root} ({version}) lacks {', '.join(missing)}",
                           "download the missing parts from nuscenes.org and unpack them into the root")
    return CheckResult(True, f"{root} ({version})")


def _check_data(ctx: SetupContext) -> CheckResult:
    if ctx.dataroot is not None:
        return check_layout(ctx.dataroot)
    root = _synth_root()
    if (root / "SYNTHETIC.json").is_file():
        return CheckResult(True, f"synthetic dataset at {root} (pipeline checks, not accuracy)")
    return CheckResult(False, f"no dataroot given and no synthetic dataset at {root}", "onlinemap setup stage data")


def _run_data(ctx: SetupContext, log: StageLog) -> None:
    if ctx.dataroot is not None:
        raise DatasetError(_check_data(ctx).detail, "pass --dataroot DIR pointing at a complete nuScenes root")
    from onlinemap.data.synth import write_synthetic_nuscenes

    root = _synth_root()
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"writing the synthetic nuScenes v1.0-mini ({SYNTH_SCENES} scenes x {SYNTH_SAMPLES} samples) to {root}")
    write_synthetic_nuscenes(tmp, scenes=SYNTH_SCENES, samples_per_scene=SYNTH_SAMPLES, seed=0)
    fault_point("data")          # tests: killed here, the half-written dataset is only ever the .partial folder
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    log("no --dataroot/NUSCENES_ROOT: the synthetic dataset is used; it exercises the pipeline, not accuracy")


def data_stage() -> Stage:
    return Stage("data", "check the nuScenes root, or write the synthetic dataset when none is given",
                 _check_data, _run_data)


def converter_argv(spec, root: Path, out: Optional[Path] = None) -> Optional[list]:
    argv = CONVERTERS.get(spec.name)
    if argv is None:
        return None
    from onlinemap.harness import nuscenes_index

    try:
        version = nuscenes_index.detect_version(str(root))
    except nuscenes_index.NotNuScenes:
        version = "v1.0"
    version = "v1.0-mini" if version == "v1.0-mini" else "v1.0"
    return [a.format(root=str(root), out=str(out or root), canbus=str(Path(root).parent), version=version) for a in argv]


def _check_info(ctx: SetupContext, spec) -> CheckResult:
    root = ctx.effective_dataroot()
    layout = check_layout(root, tuple(spec.data.needs))
    if not layout.ok:
        return layout
    missing = [f for f in spec.data.info_files if not (root / f).is_file()]
    if missing:
        return CheckResult(False, f"{root} lacks {', '.join(missing)}", f"onlinemap setup stage info --model {spec.name}")
    return CheckResult(True, f"{root}: {', '.join(spec.data.info_files)}")


def _run_info(ctx: SetupContext, log: StageLog, spec) -> None:
    from onlinemap.environments import resolve_environment
    from onlinemap.environments.installers import env_child_env, run_step
    from onlinemap.environments.base import run_prefix_argv
    from onlinemap.readiness import repo_dir

    root = ctx.effective_dataroot()
    layout = check_layout(root, tuple(spec.data.needs))
    if not layout.ok:
        raise DatasetError(f"{spec.name}: {layout.detail}", layout.fix)
    out = root / f".onlinemap-info-{spec.name}.partial"      # moved into the root only when the converter succeeded
    argv = converter_argv(spec, root, out)
    if argv is None:
        raise MissingPrerequisiteError(
            f"{spec.name}: no converter is known for {', '.join(spec.data.info_files)} ({spec.data.note or 'see docs'})",
            f"make the file(s) as envs/{spec.name}/README.md says and put them in {root}")
    handle = resolve_environment(spec)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    repo = repo_dir(spec)
    full = [handle.python if i == 0 and a == "python" else a for i, a in enumerate(argv)]
    log(f"converter: {' '.join(argv)} (in {repo})")
    run_step(f"info files ({spec.name})", [*run_prefix_argv(handle), *full], model=spec.name, log_path=log.path,
             env=env_child_env(handle.prefix), cwd=repo)
    for name in spec.data.info_files:
        if not (out / name).is_file():
            raise MissingPrerequisiteError(f"{spec.name}: the converter did not write {name}", f"see {log.path}")
        os.replace(out / name, root / name)
    shutil.rmtree(out, ignore_errors=True)


def info_stage(spec) -> Stage:
    argv = CONVERTERS.get(spec.name)
    how = f"`{' '.join(argv[:2])} …` in the model's env" if argv else "the model's own data tools (by hand)"
    title = f"make {', '.join(spec.data.info_files)} with {how}" if spec.data.info_files else "no info files"
    return Stage("info", title,
                 lambda ctx: _check_info(ctx, spec), lambda ctx, log: _run_info(ctx, log, spec),
                 lambda ctx: _skip_info(ctx, spec), model=spec.name, needs=("data", f"env:{spec.name}"))


def _skip_info(ctx: SetupContext, spec) -> Optional[str]:
    if not spec.data.info_files:
        return "the model needs no info files"
    if ctx.synthetic:
        return "synthetic dataset: converters run on real nuScenes only (pass --dataroot)"
    return None
