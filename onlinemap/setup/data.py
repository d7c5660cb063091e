"""Data: the nuScenes root (or the synthetic dataset when none is given) and each model's info files.

``--dataroot DIR`` / ``NUSCENES_ROOT``: the layout is checked (``v1.0-*`` tables, ``samples/``,
``maps/``; CAN bus and map expansion where a model needs them). Without one, the synthetic nuScenes
v1.0-mini (the real mini's size; ``$ONLINEMAP_SYNTH_SIZE`` makes it smaller) is written to
``ONLINEMAP_HOME/data/nuscenes-synth`` (via a temporary sibling, renamed when complete, so an
interrupted write never looks ready; a folder there that synth did not write is refused, never
replaced); it exercises the pipeline, not accuracy. Info files are made on it too. When a
selected model reads OpenLane-V2 (TopoMLP) and ``OPENLANE_V2_ROOT`` is unset, a synthetic subset A
is written to ``ONLINEMAP_HOME/data/openlane-v2-synth`` as well (its collection pickle is that
model's info file).

Info files (``model.toml [data] info_files``) are made with the model's own converter (``[data]
converter``, an argv list checked against each repo's argparse at its pinned commit; see the pack's
README), run with the env's python in the model's repo; its files are kept only when all of them
exist and unpickle (see ``_run_info``). A pack with no converter (TopoMLP: its OpenLane-V2 pickle
comes from the OpenLane-V2 devkit) gets a clear "make it by hand" line instead.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Optional

from onlinemap import paths
from onlinemap.data.synth import DEFAULT_SAMPLES_PER_SCENE, DEFAULT_SCENES
from onlinemap.errors import DatasetError, MissingPrerequisiteError
from onlinemap.setup.stages import CheckResult, SetupContext, Stage, StageLog, fault_point

__all__ = ["data_stage", "info_stage", "check_layout", "map_expansion_problems", "MAP_LOCATIONS", "converter_argv", "canbus_parent", "SYNTH_SCENES"]

# what `onlinemap data synth` writes by default: the real v1.0-mini's size, so every README command runs on it
SYNTH_SCENES, SYNTH_SAMPLES = DEFAULT_SCENES, DEFAULT_SAMPLES_PER_SCENE
#: a smaller synthetic dataset for tests and quick trials, e.g. ONLINEMAP_SYNTH_SIZE=2x20 (scenes x samples)
SYNTH_SIZE_ENV = "ONLINEMAP_SYNTH_SIZE"


def synth_size() -> tuple[int, int]:
    """(scenes, samples per scene) the data stage writes: the default, or ``$ONLINEMAP_SYNTH_SIZE``."""
    from onlinemap.errors import UsageError

    raw = os.environ.get(SYNTH_SIZE_ENV, "").strip()
    if not raw:
        return SYNTH_SCENES, SYNTH_SAMPLES
    try:
        scenes, samples = (int(v) for v in raw.lower().split("x"))
    except ValueError:
        scenes = samples = 0
    if not (1 <= scenes <= 10 and samples >= 2):
        raise UsageError(f"{SYNTH_SIZE_ENV}={raw!r} is not SCENESxSAMPLES with 1-10 scenes and >= 2 samples",
                         f"unset it (default {SYNTH_SCENES}x{SYNTH_SAMPLES}) or set e.g. {SYNTH_SIZE_ENV}=2x20")
    return scenes, samples

def _synth_root() -> Path:
    return paths.data_dir() / "nuscenes-synth"


#: the four nuScenes map locations: MapTR's and VAD's test datasets open NuScenesMap for every one of
#: them in their constructor (VectorizedLocalMap), whatever locations the samples use.
MAP_LOCATIONS = ("boston-seaport", "singapore-hollandvillage", "singapore-onenorth", "singapore-queenstown")
_MAP_VERSION = re.compile(rb'"version"\s*:\s*"([0-9.]+)"')


def map_expansion_problems(root: Path) -> list[str]:
    """What is wrong with ``root/maps/expansion`` for NuScenesMap: each missing, empty or pre-1.3 location file.

    nuscenes-devkit's NuScenesMap opens ``maps/expansion/<location>.json`` and raises for a map
    version < 1.3. The version is read from the first and last 64 KiB of each file (the files are
    up to ~100 MB); where it is not found there, the file is not judged.
    """
    problems = []
    for loc in MAP_LOCATIONS:
        path = Path(root) / "maps" / "expansion" / f"{loc}.json"
        try:
            size = path.stat().st_size
        except OSError:
            problems.append(f"maps/expansion/{loc}.json (map expansion v1.3)")
            continue
        with open(path, "rb") as fh:
            head = fh.read(65536)
            fh.seek(max(0, size - 65536))
            found = _MAP_VERSION.findall(head + fh.read())
        if size == 0 or (found and tuple(int(v) for v in found[-1].split(b".") if v) < (1, 3)):
            problems.append(f"maps/expansion/{loc}.json is {'empty' if size == 0 else 'map version ' + found[-1].decode()} "
                            f"(map expansion v1.3 needed)")
    return problems


def check_layout(root: Path, needs: tuple = ("nuscenes",)) -> CheckResult:
    """Is ``root`` a nuScenes root with what ``needs`` lists (can_bus, map_expansion)?"""
    from onlinemap.harness import nuscenes_index

    root = Path(root)
    if "openlane_v2" in needs:
        from onlinemap.harness import openlane_index

        try:
            return CheckResult(True, f"OpenLane-V2 {root} ({openlane_index.detect_collection(str(root))})")
        except openlane_index.NotOpenLane as exc:
            return CheckResult(False, str(exc), "set OPENLANE_V2_ROOT to the OpenLane-V2 folder that holds the "
                                                "collection pickle (see envs/TopoMLP/README.md)")
    try:
        version = nuscenes_index.detect_version(str(root))
    except nuscenes_index.NotNuScenes as exc:
        return CheckResult(False, str(exc), "pass --dataroot DIR (or set NUSCENES_ROOT) pointing at a nuScenes root")
    missing = [d for d in ("samples", "maps") if not (root / d).is_dir()]
    if "can_bus" in needs and not (root / "can_bus").is_dir() and not (root.parent / "can_bus").is_dir():
        missing.append("can_bus (CAN bus expansion, beside or inside the root)")
    if "map_expansion" in needs:
        missing.extend(map_expansion_problems(root))
    if missing:
        return CheckResult(False, f"{root} ({version}) lacks {', '.join(missing)}",
                           "download the missing parts from nuscenes.org and unpack them into the root")
    return CheckResult(True, f"{root} ({version})")


def _synth_openlane_root() -> Path:
    return paths.data_dir() / "openlane-v2-synth"


def _wants_openlane(ctx: SetupContext) -> bool:
    """A selected model reads OpenLane-V2 and no real one is named: the synthetic subset A is written too."""
    from onlinemap.data.selection import OPENLANE_ROOT_ENV

    return (not os.environ.get(OPENLANE_ROOT_ENV)
            and any("openlane_v2" in spec.data.needs for spec in ctx.models))


def _synth_ready(root: Path) -> bool:
    from onlinemap.data.synth import marker_file

    return marker_file(root) is not None and _synth_marker(root).get("complete", True)


def _check_data(ctx: SetupContext) -> CheckResult:
    if ctx.dataroot is not None:
        return check_layout(ctx.dataroot)
    root = _synth_root()
    if not _synth_ready(root):
        return CheckResult(False, f"no dataroot given and no synthetic dataset at {root}", "onlinemap setup stage data")
    if _wants_openlane(ctx) and not _synth_ready(_synth_openlane_root()):
        return CheckResult(False, f"no synthetic OpenLane-V2 subset A at {_synth_openlane_root()} (and no "
                                  "OPENLANE_V2_ROOT)", "onlinemap setup stage data")
    return CheckResult(True, f"synthetic dataset at {root} (pipeline checks, not accuracy)"
                       + (f"; OpenLane-V2 at {_synth_openlane_root()}" if _wants_openlane(ctx) else ""))


def _synth_marker(root: Path) -> dict:
    import json

    from onlinemap.data.synth import marker_file

    try:
        return json.loads(marker_file(root).read_text(encoding="utf-8"))
    except (OSError, ValueError, AttributeError):
        return {}


def _run_data(ctx: SetupContext, log: StageLog) -> None:
    if ctx.dataroot is not None:
        raise DatasetError(_check_data(ctx).detail, "pass --dataroot DIR pointing at a complete nuScenes root")
    from onlinemap.data.synth import write_synthetic_nuscenes
    from onlinemap.data.synth_openlane import write_synthetic_openlane

    if not _synth_ready(_synth_root()):
        scenes, samples = synth_size()
        log(f"writing the synthetic nuScenes v1.0-mini ({scenes} scenes x {samples} samples) to {_synth_root()}")
        _write_via_partial(_synth_root(), lambda tmp: write_synthetic_nuscenes(tmp, scenes=scenes,
                                                                               samples_per_scene=samples, seed=0))
    if _wants_openlane(ctx) and not _synth_ready(_synth_openlane_root()):
        log(f"writing a synthetic OpenLane-V2 subset A (2 segments x 10 frames) to {_synth_openlane_root()}")
        _write_via_partial(_synth_openlane_root(), lambda tmp: write_synthetic_openlane(tmp, seed=0))
    log("no --dataroot/NUSCENES_ROOT: the synthetic dataset is used; it exercises the pipeline, not accuracy")


def _write_via_partial(root: Path, write) -> None:
    """Write into ``<root>.partial``, then swap it in: an interrupted write never looks ready."""
    from onlinemap.data.synth import NotSyntheticError, check_target

    try:
        check_target(root)    # a folder of the user's own at this path is never replaced
    except NotSyntheticError as exc:
        raise DatasetError(str(exc), "move it away, or pass --dataroot DIR (or set NUSCENES_ROOT) to use it") from None
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    fault_point("data")          # tests: killed here, the half-written dataset is only ever the .partial folder
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)


def data_stage() -> Stage:
    return Stage("data", "check the nuScenes root, or write the synthetic dataset when none is given",
                 _check_data, _run_data)


def canbus_parent(root: Path) -> Path:
    """The folder that holds ``can_bus/``: inside the root or beside it (both layouts are in use)."""
    root = Path(root)
    return root if (root / "can_bus").is_dir() else root.parent


def converter_argv(spec, root: Path, out: Optional[Path] = None) -> Optional[list]:
    """``[data] converter`` with its placeholders filled, or None when the pack names no converter.

    ``{version}`` is the nuScenes devkit convention the converters share: ``v1.0`` (trainval, whose
    val split gives the *_val.pkl) or ``v1.0-mini``.
    """
    if not spec.data.converter:
        return None
    from onlinemap.harness import nuscenes_index

    try:
        version = nuscenes_index.detect_version(str(root))
    except nuscenes_index.NotNuScenes:
        version = "v1.0"
    version = "v1.0-mini" if version == "v1.0-mini" else "v1.0"
    values = {"root": str(root), "out": str(out or root), "canbus": str(canbus_parent(root)), "version": version}
    return [a.format(**values) for a in spec.data.converter]


def _info_root(ctx: SetupContext, spec) -> Path:
    """Where a model's info files live: the nuScenes root, or (OpenLane-V2 models) $OPENLANE_V2_ROOT / the synthetic one."""
    if "openlane_v2" in spec.data.needs:
        from onlinemap.data.selection import default_dataroot_for

        return default_dataroot_for(spec.data.needs)
    return ctx.effective_dataroot()


def _check_info(ctx: SetupContext, spec) -> CheckResult:
    root = _info_root(ctx, spec)
    layout = check_layout(root, tuple(spec.data.needs))
    if not layout.ok:
        return layout
    missing = [f for f in spec.data.info_files if not (root / f).is_file()]
    if missing:
        return CheckResult(False, f"{root} lacks {', '.join(missing)}", f"onlinemap setup stage info --model {spec.name}")
    return CheckResult(True, f"{root}: {', '.join(spec.data.info_files)}")


#: run with the env's python: every info file must unpickle (a converter killed mid-write leaves a torn one)
_LOAD_CHECK = "import pickle, sys\nfor p in sys.argv[1:]:\n    with open(p, 'rb') as fh:\n        pickle.load(fh)\n"


def _run_info(ctx: SetupContext, log: StageLog, spec) -> None:
    """Run the pack's converter; keep its info files only when every one of them exists and loads.

    Converters write into ``{out}`` (a staging folder inside the root, moved in at the end) or, where
    the script ignores or must not get a separate ``--out-dir`` (StreamPETR, mmdet3d 0.17.1 for PETR),
    straight into the root. A non-zero exit is accepted when every info file loads: with ``--version
    v1.0`` the upstream scripts write the val infos, then fail on a missing ``v1.0-test``.
    """
    from onlinemap.environments import resolve_environment
    from onlinemap.environments.base import run_prefix_argv
    from onlinemap.environments.installers import env_child_env
    from onlinemap.proc import run_supervised
    from onlinemap.readiness import repo_dir

    root = _info_root(ctx, spec)
    layout = check_layout(root, tuple(spec.data.needs))
    if not layout.ok:
        raise DatasetError(f"{spec.name}: {layout.detail}", layout.fix)
    out = root / f".onlinemap-info-{spec.name}.partial"
    argv = converter_argv(spec, root, out)
    if argv is None:
        raise MissingPrerequisiteError(
            f"{spec.name}: no converter is known for {', '.join(spec.data.info_files)} ({spec.data.note or 'see docs'})",
            f"make the file(s) as envs/{spec.name}/README.md says and put them in {root}")
    if "nuscenes" in spec.data.needs and not (root / "samples" / "LIDAR_TOP").is_dir():
        raise DatasetError(f"{spec.name}: {root}/samples/LIDAR_TOP is missing, and the nuScenes converters check "
                           "that every LiDAR file exists (even for camera-only models)",
                           "download the LiDAR blobs of the split too, then rerun this stage")
    handle = resolve_environment(spec)
    cwd = repo_dir(spec) / spec.data.converter_cwd
    full = [handle.python if i == 0 and a == "python" else a for i, a in enumerate(argv)]
    env = env_child_env(handle.prefix)
    env["PYTHONPATH"] = str(cwd)  # converters import `tools.data_converter…` from their own tree
    before = {name for name in spec.data.info_files if (root / name).exists()}
    log(f"converter: {' '.join(argv)} (in {cwd})")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    kept = False
    try:
        res = run_supervised([*run_prefix_argv(handle), *full], env=env, cwd=cwd, log_path=log.path)
        if res.interrupted:   # Ctrl-C / SIGTERM stops the whole setup; a rerun resumes at this stage
            raise KeyboardInterrupt
        found = {name: (out / name if (out / name).is_file() else root / name) for name in spec.data.info_files}
        missing = [name for name, path in found.items() if not path.is_file()]
        if missing:
            raise MissingPrerequisiteError(f"{spec.name}: the converter (exit {res.returncode}) did not write "
                                           f"{', '.join(missing)}", f"see {log.path}")
        check = run_supervised([*run_prefix_argv(handle), handle.python, "-c", _LOAD_CHECK,
                                *map(str, found.values())], env=env, cwd=cwd, log_path=log.path)
        if not check.ok:
            raise MissingPrerequisiteError(f"{spec.name}: the converter (exit {res.returncode}) wrote "
                                           f"{', '.join(found)}, but they do not load", f"see {log.path}")
        if res.returncode != 0:
            log(f"warning: the converter exited {res.returncode}, but every info file it was run for "
                f"({', '.join(found)}) was written and loads: kept")
        for name, path in found.items():
            if path.parent == out:
                os.replace(path, root / name)
        kept = True
    finally:  # a failed or interrupted converter leaves nothing that looks like an info file
        shutil.rmtree(out, ignore_errors=True)
        if not kept:
            for name in set(spec.data.info_files) - before:
                (root / name).unlink(missing_ok=True)


def info_stage(spec) -> Stage:
    argv = spec.data.converter
    how = f"`{' '.join(argv[:2])} …` in the model's env" if argv else "the model's own data tools (by hand)"
    title = f"make {', '.join(spec.data.info_files)} with {how}" if spec.data.info_files else "no info files"
    return Stage("info", title,
                 lambda ctx: _check_info(ctx, spec), lambda ctx, log: _run_info(ctx, log, spec),
                 lambda ctx: _skip_info(ctx, spec), model=spec.name, needs=("data", f"env:{spec.name}"))


def _skip_info(ctx: SetupContext, spec) -> Optional[str]:
    # the synthetic dataset gets its info files too: it has everything the converters read
    # (can_bus/ inside the root, maps/expansion for all four locations, 1600x900 images)
    if not spec.data.info_files:
        return "the model needs no info files"
    return None
