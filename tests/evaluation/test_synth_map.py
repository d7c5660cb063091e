"""The synthetic map expansion loads in the devkit's NuScenesMap and has the promised layers."""
from __future__ import annotations

from onlinemap.data.synth_map import write_map_expansion


def test_map_expansion_loads_in_nuscenes_map(tmp_path):
    from nuscenes.map_expansion.map_api import NuScenesMap

    (path,) = write_map_expansion(tmp_path, ["boston-seaport"], seed=3)
    assert path == tmp_path / "maps" / "expansion" / "boston-seaport.json"
    m = NuScenesMap(dataroot=str(tmp_path), map_name="boston-seaport")
    assert m.version == "1.3"
    for layer in ("road_divider", "lane_divider", "ped_crossing", "road_segment", "lane", "drivable_area"):
        assert len(getattr(m, layer)) > 0, layer
    near = m.get_records_in_radius(200.0, 100.0, 20.0, ["ped_crossing", "lane", "road_divider"])
    assert near["lane"] and near["road_divider"]
    assert m.get_closest_lane(200.0, 102.5, radius=5) != ""
