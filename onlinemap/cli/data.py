"""``onlinemap data synth DIR``: the synthetic nuScenes-format dataset used by tests and the README."""
from __future__ import annotations

from pathlib import Path

import click

from onlinemap.cli.options import positive_int
from onlinemap.data.synth import DEFAULT_SAMPLES_PER_SCENE, DEFAULT_SCENES

OPENLANE_SEGMENTS, OPENLANE_FRAMES = 2, 10


@click.group("data")
def data():
    """Datasets: write the synthetic nuScenes-format dataset."""


@data.command("synth")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
@click.option("--scenes", type=positive_int, default=None,
              help=f"scenes to write (1-10; names follow the official mini split, mini_val first) "
                   f"[default: {DEFAULT_SCENES}; --openlane: segments, 1-20, default {OPENLANE_SEGMENTS}]")
@click.option("--samples-per-scene", type=positive_int, default=None,
              help=f"key frames per scene, 2 Hz [default: {DEFAULT_SAMPLES_PER_SCENE}; --openlane: "
                   f"{OPENLANE_FRAMES}]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--openlane", is_flag=True,
              help="write an OpenLane-V2 subset A (val collection, for TopoMLP) instead; DIRECTORY defaults "
                   "to ONLINEMAP_HOME/data/openlane-v2-synth")
def synth(directory, scenes, samples_per_scene, seed, openlane):
    """Write a synthetic nuScenes v1.0-mini dataset into DIRECTORY.

    DIRECTORY defaults to ONLINEMAP_HOME/data/nuscenes-synth, the dataroot run commands use when
    no --dataroot or NUSCENES_ROOT is given. `nuscenes.NuScenes("v1.0-mini", DIRECTORY)` loads it.
    The default size is the real v1.0-mini's (10 scenes x 40 samples; ONLINEMAP_SYNTH_SIZE=SxN, as
    for `onlinemap setup`, makes it S x N), with 1600x900 images, map
    expansion for all four locations and DIRECTORY/can_bus/. The content is random (seeded): use
    it to exercise the pipeline, never to judge accuracy.

    With --openlane it writes a synthetic OpenLane-V2 subset A (the val collection pickle TopoMLP
    reads, images, info JSONs) instead.

    DIRECTORY must be missing, empty, or an earlier synthetic dataset (its SYNTHETIC.json marker;
    SYNTHETIC.txt with --openlane, as the OpenLane-V2 devkit reads every *.json at the root):
    anything else is refused, so a real dataset is never overwritten.
    """
    from onlinemap import paths
    from onlinemap.data.synth import NotSyntheticError, write_synthetic_nuscenes
    from onlinemap.errors import UsageError

    if openlane:
        from onlinemap.data.synth_openlane import write_synthetic_openlane

        root = Path(directory) if directory else paths.data_dir() / "openlane-v2-synth"
        try:
            info = write_synthetic_openlane(root, segments=scenes or OPENLANE_SEGMENTS,
                                            frames_per_segment=samples_per_scene or OPENLANE_FRAMES, seed=seed)
        except NotSyntheticError as exc:
            raise UsageError(str(exc), "pass an empty or new DIRECTORY (nothing in it was changed)") from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            from onlinemap.errors import OnlinemapError

            raise OnlinemapError(f"cannot write {root}: {exc.strerror or exc}",
                                 "check the path and free disk space") from None
        click.echo(f"wrote {info['frames']} frames in {info['segments']} segments to {root} "
                   f"(OpenLane-V2 subset A, {info['collection']}.pkl)")
        return
    from onlinemap.setup.data import synth_size

    root = Path(directory) if directory else paths.data_dir() / "nuscenes-synth"
    if not (scenes and samples_per_scene):
        default_scenes, default_samples = synth_size()    # ONLINEMAP_SYNTH_SIZE, as for setup's data stage
        scenes, samples_per_scene = scenes or default_scenes, samples_per_scene or default_samples
    try:
        info = write_synthetic_nuscenes(root, scenes=scenes, samples_per_scene=samples_per_scene, seed=seed)
    except NotSyntheticError as exc:
        raise UsageError(str(exc), "pass an empty or new DIRECTORY (nothing in it was changed)") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        from onlinemap.errors import OnlinemapError

        raise OnlinemapError(f"cannot write {root}: {exc.strerror or exc}", "check the path and free disk space") from None
    click.echo(f"wrote {info['samples']} samples in {info['scenes']} scenes ({info['annotations']} boxes) "
               f"to {root} ({info['version']})")
