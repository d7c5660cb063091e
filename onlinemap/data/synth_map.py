"""A synthetic nuScenes map expansion (v1.3 JSON) matching the synthetic dataset's road.

Why: MapTR's vectorised-map ground truth is built from ``maps/expansion/<location>.json`` through
``nuscenes.map_expansion.map_api.NuScenesMap``; without it no map evaluation can run here. The file
follows the real format layer for layer (geometric layers ``node``, ``line``, ``polygon``; polygon
layers ``drivable_area``, ``road_segment``, ``road_block``, ``lane``, ``ped_crossing``,
``walkway``, ``stop_line``, ``carpark_area``; line layers ``road_divider``, ``lane_divider``,
``traffic_light``; ``lane_connector``, ``arcline_path_3``, ``connectivity``, ``canvas_edge``,
``version``), so ``NuScenesMap`` loads it unchanged.

Layout (global metres; the synthetic ego drives along +x through y ~ 100, see synth.py):
- drivable area y in [85, 115] (the band of the semantic-prior mask), x in [ROAD_X0, ROAD_X1];
- road segments y in [90, 110] in blocks of ``BLOCK`` m; four lanes of 5 m;
- a road divider (y = 100) and two lane dividers (y = 95, 105) per block, each broken around the
  block's pedestrian crossing (4 m wide, across the whole road);
- walkways beside the road, y in [86, 90] and [110, 114];
- for each scene that turns left: a side road towards +y where its ego turns (``_side_road``).
A seed shifts the crossings along x so that different seeds give different maps.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

__all__ = ["write_map_expansion", "ROAD_Y", "DIVIDER_YS", "ROAD_X0", "ROAD_X1", "BLOCK", "CROSSING_WIDTH",
           "MAP_VERSION"]

MAP_VERSION = "1.3"
ROAD_X0, ROAD_X1 = -100.0, 700.0   # long enough for 100 samples at 6 m/s from x = 150
ROAD_Y = (90.0, 110.0)             # road segment (boundary) edges
DRIVABLE_Y = (85.0, 115.0)         # same band as the semantic-prior mask in synth.py
WALKWAY_YS = ((86.0, 90.0), (110.0, 114.0))
DIVIDER_YS = {"road_divider": (100.0,), "lane_divider": (95.0, 105.0)}
BLOCK = 50.0                       # road-segment length along x
CROSSING_WIDTH = 4.0
SIDE_Y1 = 320.0                    # side roads (turning scenes) run from the main road to here


def _token(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


class _MapWriter:
    """Collects records layer by layer and hands out node/line/polygon tokens."""

    def __init__(self, location: str, seed: int):
        self.loc, self.seed = location, seed
        self.layers: dict[str, list] = {name: [] for name in (
            "node", "line", "polygon", "drivable_area", "road_segment", "road_block", "lane", "ped_crossing",
            "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider", "traffic_light",
            "lane_connector")}
        self.n = 0

    def tok(self, kind: str) -> str:
        self.n += 1
        return _token("map", self.loc, self.seed, kind, self.n)

    def node(self, x: float, y: float) -> str:
        t = self.tok("node")
        self.layers["node"].append({"token": t, "x": float(x), "y": float(y)})
        return t

    def polygon(self, xy: Iterable[tuple[float, float]]) -> str:
        t = self.tok("polygon")
        self.layers["polygon"].append({"token": t, "exterior_node_tokens": [self.node(x, y) for x, y in xy],
                                       "holes": []})
        return t

    def rect(self, x0: float, y0: float, x1: float, y1: float) -> str:
        return self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def line(self, xy: Iterable[tuple[float, float]]) -> tuple[str, list[str]]:
        t = self.tok("line")
        nodes = [self.node(x, y) for x, y in xy]
        self.layers["line"].append({"token": t, "node_tokens": nodes})
        return t, nodes


def _build(location: str, seed: int, side_roads: Iterable[float] = ()) -> dict:
    rng = np.random.default_rng([seed, sum(map(ord, location))])
    w = _MapWriter(location, seed)
    L = w.layers
    drivable = w.tok("drivable_area")
    L["drivable_area"].append({"token": drivable, "polygon_tokens": [w.rect(ROAD_X0, DRIVABLE_Y[0], ROAD_X1,
                                                                            DRIVABLE_Y[1])]})
    for y0, y1 in WALKWAY_YS:
        L["walkway"].append({"token": w.tok("walkway"), "polygon_token": w.rect(ROAD_X0, y0, ROAD_X1, y1)})
    lane_ys = [(ROAD_Y[0] + 5.0 * i, ROAD_Y[0] + 5.0 * (i + 1)) for i in range(4)]
    connectivity: dict[str, dict] = {}
    arclines: dict[str, list] = {}
    prev_lanes: list[str] = []
    for b, x0 in enumerate(np.arange(ROAD_X0, ROAD_X1, BLOCK)):
        x1 = min(x0 + BLOCK, ROAD_X1)
        seg = w.tok("road_segment")
        L["road_segment"].append({"token": seg, "polygon_token": w.rect(x0, ROAD_Y[0], x1, ROAD_Y[1]),
                                  "is_intersection": False, "drivable_area_token": drivable})
        from_edge, _ = w.line([(x0, ROAD_Y[0]), (x0, ROAD_Y[1])])
        to_edge, _ = w.line([(x1, ROAD_Y[0]), (x1, ROAD_Y[1])])
        L["road_block"].append({"token": w.tok("road_block"), "polygon_token": w.rect(x0, ROAD_Y[0], x1, ROAD_Y[1]),
                                "from_edge_line_token": from_edge, "to_edge_line_token": to_edge,
                                "road_segment_token": seg})
        # one crossing per block, somewhere in its middle part
        cx = x0 + float(rng.uniform(10.0, BLOCK - 10.0 - CROSSING_WIDTH))
        crossing = w.tok("ped_crossing")
        L["ped_crossing"].append({"token": crossing, "road_segment_token": seg,
                                  "polygon_token": w.rect(cx, ROAD_Y[0], cx + CROSSING_WIDTH, ROAD_Y[1])})
        # dividers stop 1 m short of the crossing on either side
        pieces = ((x0, cx - 1.0), (cx + CROSSING_WIDTH + 1.0, x1))
        divider_nodes: dict[float, list[str]] = {}
        for layer, ys in DIVIDER_YS.items():
            for y in ys:
                for a, c in pieces:
                    line_tok, nodes = w.line([(a, y), ((a + c) / 2.0, y), (c, y)])
                    divider_nodes.setdefault(y, []).extend(nodes)
                    rec = {"token": w.tok(layer), "line_token": line_tok}
                    if layer == "road_divider":
                        rec["road_segment_token"] = seg
                    else:
                        rec["lane_divider_segments"] = [{"node_token": n, "segment_type": "DOUBLE_DASHED_WHITE"}
                                                        for n in nodes]
                    L[layer].append(rec)
        lanes = []
        for i, (ly0, ly1) in enumerate(lane_ys):
            lane = w.tok("lane")
            forward = ly0 >= 100.0  # lanes left of the road divider drive along +x (right-hand traffic)
            left_y = ly1 if forward else ly0
            right_y = ly0 if forward else ly1
            seg_of = lambda y: [{"node_token": n, "segment_type": "DOUBLE_DASHED_WHITE"}  # noqa: E731
                                for n in divider_nodes.get(y, [])]
            L["lane"].append({"token": lane, "polygon_token": w.rect(x0, ly0, x1, ly1), "lane_type": "CAR",
                              "from_edge_line_token": from_edge if forward else to_edge,
                              "to_edge_line_token": to_edge if forward else from_edge,
                              "left_lane_divider_segments": seg_of(left_y),
                              "right_lane_divider_segments": seg_of(right_y)})
            yc = (ly0 + ly1) / 2.0
            start, end = ([x0, yc, 0.0], [x1, yc, 0.0]) if forward else ([x1, yc, np.pi], [x0, yc, np.pi])
            arclines[lane] = [{"start_pose": [float(v) for v in start], "end_pose": [float(v) for v in end],
                               "shape": "LSR", "radius": 999.0, "segment_length": [0.0, float(x1 - x0), 0.0]}]
            connectivity[lane] = {"incoming": [], "outgoing": []}
            lanes.append(lane)
        for a, c in zip(prev_lanes, lanes):  # lane i of block b-1 continues as lane i of block b
            connectivity[a]["outgoing"].append(c)
            connectivity[c]["incoming"].append(a)
        prev_lanes = lanes
    side_roads = list(side_roads)
    for xc in side_roads:
        _side_road(w, float(xc), drivable, arclines, connectivity)
    return {"version": MAP_VERSION, "canvas_edge": [float(ROAD_X1), float(SIDE_Y1) if side_roads else 200.0], **L,
            "arcline_path_3": arclines, "connectivity": connectivity}


def _side_road(w: "_MapWriter", xc: float, drivable: str, arclines: dict, connectivity: dict) -> None:
    """A road leaving the main one towards +y at x = xc (where a turning scene's ego turns left into it).

    Same cross-section as the main road turned by 90 degrees: road x in [xc-10, xc+10], a road
    divider at xc, lane dividers at xc +- 5, walkways outside; lanes right of the divider (x > xc)
    drive towards +y. It starts at the main road's edge (y = ROAD_Y[1]) and runs to SIDE_Y1.
    """
    L = w.layers
    y0, y1 = ROAD_Y[1], SIDE_Y1
    L["drivable_area"].append({"token": w.tok("drivable_area"),
                               "polygon_tokens": [w.rect(xc - 15.0, DRIVABLE_Y[1], xc + 15.0, y1)]})
    for a, b in ((xc - 14.0, xc - 10.0), (xc + 10.0, xc + 14.0)):
        L["walkway"].append({"token": w.tok("walkway"), "polygon_token": w.rect(a, DRIVABLE_Y[1], b, y1)})
    seg = w.tok("road_segment")
    L["road_segment"].append({"token": seg, "polygon_token": w.rect(xc - 10.0, y0, xc + 10.0, y1),
                              "is_intersection": False, "drivable_area_token": drivable})
    from_edge, _ = w.line([(xc - 10.0, y0), (xc + 10.0, y0)])
    to_edge, _ = w.line([(xc - 10.0, y1), (xc + 10.0, y1)])
    L["road_block"].append({"token": w.tok("road_block"), "polygon_token": w.rect(xc - 10.0, y0, xc + 10.0, y1),
                            "from_edge_line_token": from_edge, "to_edge_line_token": to_edge,
                            "road_segment_token": seg})
    divider_nodes: dict[float, list[str]] = {}
    for layer, dx in (("road_divider", (0.0,)), ("lane_divider", (-5.0, 5.0))):
        for d in dx:
            line_tok, nodes = w.line([(xc + d, y0 + 2.0), (xc + d, (y0 + y1) / 2.0), (xc + d, y1)])
            divider_nodes[d] = nodes
            rec = {"token": w.tok(layer), "line_token": line_tok}
            if layer == "road_divider":
                rec["road_segment_token"] = seg
            else:
                rec["lane_divider_segments"] = [{"node_token": n, "segment_type": "DOUBLE_DASHED_WHITE"} for n in nodes]
            L[layer].append(rec)
    for i in range(4):
        lx0, lx1 = xc - 10.0 + 5.0 * i, xc - 5.0 + 5.0 * i
        forward = lx0 >= xc
        lane = w.tok("lane")
        left_d, right_d = (lx0 - xc, lx1 - xc) if forward else (lx1 - xc, lx0 - xc)
        segs = lambda d: [{"node_token": n, "segment_type": "DOUBLE_DASHED_WHITE"}  # noqa: E731
                          for n in divider_nodes.get(d, [])]
        L["lane"].append({"token": lane, "polygon_token": w.rect(lx0, y0, lx1, y1), "lane_type": "CAR",
                          "from_edge_line_token": from_edge if forward else to_edge,
                          "to_edge_line_token": to_edge if forward else from_edge,
                          "left_lane_divider_segments": segs(left_d), "right_lane_divider_segments": segs(right_d)})
        xm = (lx0 + lx1) / 2.0
        start, end = ([xm, y0, np.pi / 2], [xm, y1, np.pi / 2]) if forward else ([xm, y1, -np.pi / 2],
                                                                                  [xm, y0, -np.pi / 2])
        arclines[lane] = [{"start_pose": [float(v) for v in start], "end_pose": [float(v) for v in end],
                           "shape": "LSR", "radius": 999.0, "segment_length": [0.0, float(y1 - y0), 0.0]}]
        connectivity[lane] = {"incoming": [], "outgoing": []}


def write_map_expansion(root: Path, locations: Iterable[str], seed: int = 0,
                        side_roads: Optional[dict] = None) -> list[Path]:
    """Write ``root/maps/expansion/<location>.json`` for each location and return the paths.

    ``side_roads``: location -> x positions of roads branching off towards +y (turning scenes).
    """
    out_dir = Path(root) / "maps" / "expansion"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for loc in dict.fromkeys(locations):
        path = out_dir / f"{loc}.json"
        built = _build(loc, seed, (side_roads or {}).get(loc, ()))
        path.write_text(json.dumps(built, separators=(",", ":")), encoding="utf-8")
        paths.append(path)
    return paths
