"""Setup on the synthetic dataset: its size, and the info converters run on it as on real nuScenes."""
from __future__ import annotations

import pickle

import pytest

from tests.setup.test_stages import _converter_pack, _ctx, _run


def test_setup_writes_the_default_size_unless_told_smaller(monkeypatch):
    from onlinemap.data.synth import DEFAULT_SAMPLES_PER_SCENE, DEFAULT_SCENES
    from onlinemap.errors import UsageError
    from onlinemap.setup.data import synth_size

    monkeypatch.delenv("ONLINEMAP_SYNTH_SIZE", raising=False)
    assert synth_size() == (DEFAULT_SCENES, DEFAULT_SAMPLES_PER_SCENE)
    assert DEFAULT_SCENES * DEFAULT_SAMPLES_PER_SCENE >= 400        # the real v1.0-mini: 10 scenes, 404 samples
    monkeypatch.setenv("ONLINEMAP_SYNTH_SIZE", "2x5")
    assert synth_size() == (2, 5)
    for bad in ("11x40", "2x1", "two"):
        monkeypatch.setenv("ONLINEMAP_SYNTH_SIZE", bad)
        with pytest.raises(UsageError, match="ONLINEMAP_SYNTH_SIZE"):
            synth_size()


def test_info_stage_runs_the_converter_on_the_synthetic_dataset(om_home, fakeconda, make_pack, git_redirect,
                                                               monkeypatch):
    monkeypatch.delenv("NUSCENES_ROOT")                 # no dataroot: setup writes and uses the synthetic one
    monkeypatch.setenv("ONLINEMAP_SYNTH_SIZE", "1x3")
    _converter_pack(make_pack, needs=["nuscenes", "can_bus", "map_expansion"])
    res = _run(_ctx(models="FakeMap"))
    root = om_home / "data" / "nuscenes-synth"
    assert res["data"].status == "done" and len(list((root / "samples" / "CAM_FRONT").iterdir())) == 3
    assert res["info:FakeMap"].status == "done", res["info:FakeMap"].detail
    got = pickle.loads((root / "fake_infos_val.pkl").read_bytes())
    argv = got["argv"]
    assert argv[argv.index("--root-path") + 1] == str(root) and argv[argv.index("--version") + 1] == "v1.0-mini"
    assert argv[argv.index("--canbus") + 1] == str(root)   # synth writes can_bus/ inside its root


def test_setup_never_replaces_a_foreign_folder_at_the_synthetic_path(om_home, monkeypatch):
    monkeypatch.delenv("NUSCENES_ROOT")
    monkeypatch.setenv("ONLINEMAP_SYNTH_SIZE", "1x2")
    root = om_home / "data" / "nuscenes-synth"
    root.mkdir(parents=True)
    (root / "mine.txt").write_text("not synthetic")
    res = _run(_ctx(models="reference"))
    assert res["data"].status == "failed" and "not written by `onlinemap data synth`" in res["data"].detail
    assert (root / "mine.txt").read_text() == "not synthetic" and sorted(p.name for p in root.iterdir()) == ["mine.txt"]


def test_an_openlane_model_gets_the_synthetic_subset_a_too(om_home, fakeconda, make_pack, git_redirect, monkeypatch):
    monkeypatch.delenv("NUSCENES_ROOT")
    monkeypatch.delenv("OPENLANE_V2_ROOT", raising=False)
    monkeypatch.setenv("ONLINEMAP_SYNTH_SIZE", "1x2")
    make_pack("FakeLane", data={"needs": ["openlane_v2"], "info_files": ["data_dict_subset_A_val.pkl"]})
    res = _run(_ctx(models="FakeLane"))
    assert res["data"].status == "done", res["data"].detail
    olv2 = om_home / "data" / "openlane-v2-synth"
    assert (olv2 / "data_dict_subset_A_val.pkl").is_file() and not (olv2.parent / "openlane-v2-synth.partial").exists()
    assert res["info:FakeLane"].status == "ok", res["info:FakeLane"].detail   # the collection is its info file
