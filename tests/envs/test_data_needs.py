"""What MapTR's and VAD's datasets open at construction, checked before launch (``[data] needs``).

Both test datasets build ``VectorizedLocalMap``, which opens ``NuScenesMap`` for all four locations
(hustvl/MapTR and hustvl/VAD at their pinned commits), and nuscenes-devkit's NuScenesMap raises for
a map version < 1.3. So ``map_expansion`` means four v1.3 files, not a folder.
"""
import json
import shutil

import pytest
from tests.envs.helpers import upstream_file

from onlinemap.setup.data import MAP_LOCATIONS, check_layout, map_expansion_problems


@pytest.fixture
def root(tmp_path, synth_root):
    dest = tmp_path / "nuscenes"
    shutil.copytree(synth_root, dest)
    expansion = dest / "maps" / "expansion"
    shutil.rmtree(expansion, ignore_errors=True)
    expansion.mkdir(parents=True)
    return dest


def _write(root, loc, version="1.3"):
    (root / "maps" / "expansion" / f"{loc}.json").write_text(json.dumps({"version": version, "polygon": []}))


@pytest.mark.parametrize("tarball, member", [
    ("hustvl+MapTR-a6872d8d.tar.gz", "projects/mmdet3d_plugin/datasets/nuscenes_map_dataset.py"),
    ("hustvl+VAD-1688c4b1.tar.gz", "projects/mmdet3d_plugin/datasets/nuscenes_vad_dataset.py")])
def test_the_four_locations_are_the_ones_the_datasets_open(tarball, member):
    src = upstream_file(tarball, member)
    assert "for loc in self.MAPS:" in src and "NuScenesMap(dataroot=self.data_root, map_name=loc)" in src
    for loc in MAP_LOCATIONS:
        assert f"'{loc}'" in src


def test_an_empty_or_partial_expansion_folder_is_not_ready(root):
    assert len(map_expansion_problems(root)) == 4
    res = check_layout(root, ("nuscenes", "map_expansion"))
    assert not res.ok and "maps/expansion/boston-seaport.json" in res.detail   # the folder alone used to pass
    for loc in MAP_LOCATIONS[:3]:
        _write(root, loc)
    assert map_expansion_problems(root) == [f"maps/expansion/{MAP_LOCATIONS[3]}.json (map expansion v1.3)"]
    _write(root, MAP_LOCATIONS[3], version="1.2")
    assert "map version 1.2" in map_expansion_problems(root)[0]
    _write(root, MAP_LOCATIONS[3])
    assert map_expansion_problems(root) == [] and check_layout(root, ("nuscenes", "map_expansion")).ok


def test_readiness_names_the_missing_map_files(root):
    from onlinemap.readiness import _check_data
    from onlinemap.registry.discover import find_model

    for name in ("MapTR", "VAD"):
        check = _check_data(find_model(name), root)
        assert not check.ok and "singapore-queenstown.json" in check.detail and "map expansion" in check.fix
    assert _check_data(find_model("PETR"), root).ok                  # PETR does not need the map
    for loc in MAP_LOCATIONS:
        _write(root, loc)
    assert _check_data(find_model("MapTR"), root).ok
