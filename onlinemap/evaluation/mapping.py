"""MapTR's vectorised-map Chamfer AP (divider, ped_crossing, boundary) in the ego frame.

Design note: written from MapTR's definitions (hustvl/MapTR ``projects/mmdet3d_plugin/datasets/``
``nuscenes_map_dataset.py`` ``VectorizedLocalMap`` / ``_evaluate_single``, ``map_utils/mean_ap.py``,
``map_utils/tpfp.py``, ``map_utils/tpfp_chamfer.py``), not copied from them; docs/evaluation.md
cites each choice. Two deliberate differences from MapTR's numbers, both documented there:

- The ground-truth *window* is MapTR's (a 30 m x 60 m patch centred on the LiDAR, 30 m across and
  60 m along the LiDAR's forward axis), but the polylines are returned in the **ego** frame of the
  standard prediction schema (x forward, y left). Chamfer distance is invariant under the rigid
  LiDAR -> ego transform (``lidar_bev_to_ego``, the adapters' own), so scores equal MapTR's.
- A class with no ground truth in the evaluated samples gets AP ``None`` and is left out of mAP
  (MapTR averages a 0 for it, which makes small subsets look worse than they are); ``mAP_maptr``
  reports MapTR's convention as well.

The numbers equal MapTR ``main`` at the pinned commit (a6872d8d), GT included: the polygons are
clipped one by one before the union, as MapTR does, and every prediction is resampled to 100 points
(tests/evaluation/test_mapping_vs_maptr.py runs MapTR's own code as the oracle).

Matching (per sample and class, as ``custom_tpfp_gen``): predictions in descending score order;
each takes the GT with the smallest Chamfer distance; it is a true positive when that distance is
<= the threshold and that GT is still free, else a false positive. A pair only counts as a
candidate when the two polylines, buffered by 2 m (flat caps, mitre joins), intersect, as
``custom_polyline_score`` does; otherwise its distance is treated as 100 m.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from onlinemap.errors import DatasetError, ResultsError

if TYPE_CHECKING:  # pragma: no cover
    from nuscenes import NuScenes

__all__ = ["CLASSES", "THRESHOLDS", "PC_RANGE", "NUM_SAMPLE_POINTS", "MapGroundTruth", "lidar_bev_to_ego",
           "resample_polyline", "chamfer_matrix", "average_precision", "evaluate_mapping"]

log = logging.getLogger(__name__)

CLASSES = ("divider", "ped_crossing", "boundary")
THRESHOLDS = (0.5, 1.0, 1.5)
# LiDAR frame: x across (right), y along (forward) -- MapTR configs maptr_tiny_r50_24e.py point_cloud_range
PC_RANGE = (-15.0, -30.0, -2.0, 15.0, 30.0, 2.0)
PATCH_SIZE = (PC_RANGE[4] - PC_RANGE[1], PC_RANGE[3] - PC_RANGE[0])   # (along = 60, across = 30), MapTR's (h, w)
NUM_SAMPLE_POINTS = 100   # mean_ap.py format_res_gt_by_classes: num_fixed_sample_pts = 100
BUFFER_WIDTH = 2.0        # tpfp.py: custom_polyline_score(..., linewidth=2.)
NO_MATCH = 100.0          # tpfp_chamfer.py fills non-candidate pairs with -100 (score = -chamfer)
LINE_LAYERS = ("road_divider", "lane_divider")
POLYGON_LAYERS = ("road_segment", "lane")


# --------------------------------------------------------------------------------------------- GT
class MapGroundTruth:
    """Builds each sample's GT polylines from the nuScenes map expansion, in the ego frame.

    One ``NuScenesMap`` per location is loaded lazily, and every layer's geometry is extracted once
    into an STRtree, so a sample costs a window query rather than a scan of the whole map.
    """

    def __init__(self, nusc: "NuScenes", dataroot: Path):
        self.nusc = nusc
        self.dataroot = Path(dataroot)
        self._maps: dict[str, dict] = {}

    def _map(self, location: str) -> dict:
        if location not in self._maps:
            path = self.dataroot / "maps" / "expansion" / f"{location}.json"
            if not path.is_file():
                raise DatasetError(f"no map expansion for {location} ({path})",
                                   hint="unpack nuScenes-map-expansion-v1.3 into <dataroot>/maps/expansion/")
            from nuscenes.map_expansion.map_api import NuScenesMap
            from shapely.strtree import STRtree

            m = NuScenesMap(dataroot=str(self.dataroot), map_name=location)
            layers = {}
            for name in LINE_LAYERS:
                geoms = [m.extract_line(r["line_token"]) for r in getattr(m, name)]
                layers[name] = [g for g in geoms if not g.is_empty]
            for name in POLYGON_LAYERS + ("ped_crossing",):
                geoms = [m.extract_polygon(r["polygon_token"]) for r in getattr(m, name)]
                layers[name] = [g for g in geoms if g.is_valid]  # MapTR skips invalid polygons too
            self._maps[location] = {name: (geoms, STRtree(geoms)) for name, geoms in layers.items()}
        return self._maps[location]

    def sample_frames(self, sample_token: str):
        """(location, lidar2global 4x4, lidar2ego 4x4) of a sample's LIDAR_TOP."""
        from pyquaternion import Quaternion

        nusc = self.nusc
        sample = nusc.get("sample", sample_token)
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        l2e = np.eye(4)
        l2e[:3, :3] = Quaternion(cs["rotation"]).rotation_matrix
        l2e[:3, 3] = cs["translation"]
        e2g = np.eye(4)
        e2g[:3, :3] = Quaternion(pose["rotation"]).rotation_matrix
        e2g[:3, 3] = pose["translation"]
        scene = nusc.get("scene", sample["scene_token"])
        location = nusc.get("log", scene["log_token"])["location"]
        return location, e2g @ l2e, l2e

    def polylines(self, sample_token: str) -> dict[str, list[np.ndarray]]:
        """GT polylines of one sample: ``{class: [array (N, 2) in metres, ego frame]}``."""
        from shapely import affinity, ops
        from shapely.geometry import LinearRing, LineString, MultiLineString, box

        location, l2g, l2e = self.sample_frames(sample_token)
        layers = self._map(location)
        px, py = l2g[0, 3], l2g[1, 3]
        angle = float(np.degrees(np.arctan2(l2g[1, 0], l2g[0, 0])))   # LiDAR yaw in the map
        half_across, half_along = PATCH_SIZE[1] / 2.0, PATCH_SIZE[0] / 2.0
        # NuScenesMapExplorer.get_patch_coord((px, py, h=60, w=30), angle): w along the LiDAR x axis
        patch = affinity.rotate(box(px - half_across, py - half_along, px + half_across, py + half_along), angle,
                                origin=(px, py))

        def to_lidar(geom):
            geom = affinity.rotate(geom, -angle, origin=(px, py))
            return affinity.affine_transform(geom, [1.0, 0.0, 0.0, 1.0, -px, -py])

        def clipped(name):
            geoms, tree = layers[name]
            out = []
            for i in sorted(int(j) for j in tree.query(patch)):   # table order, as MapTR iterates
                g = geoms[int(i)].intersection(patch)
                if not g.is_empty:
                    out.append(to_lidar(g))
            return out

        def parts(geom) -> list:
            if geom.is_empty:
                return []
            if isinstance(geom, LineString):
                return [geom]
            if isinstance(geom, MultiLineString):
                return list(geom.geoms)
            return [g for sub in getattr(geom, "geoms", []) for g in parts(sub)]

        def clipped_polygons(name):
            # get_contour_line / get_ped_crossing_line: each valid polygon clipped to the patch and
            # moved to the LiDAR patch frame on its own; the union comes after (MapTR's order, which
            # decides where each outline ring starts and so where its resampled points fall)
            return [p for g in clipped(name) for p in _polygon_parts(g)]

        def outlines(groups, margin: float) -> list:
            # VectorizedLocalMap.poly_geoms_to_instances / ped_poly_geoms_to_instances: union per layer,
            # then of the layers; exteriors clockwise and holes counter-clockwise (a ring is reversed
            # in place, so it keeps its start vertex); each ring clipped to the local patch +- margin
            # and line-merged. Zero-area holes that the union leaves are kept, as MapTR keeps them.
            unions = [ops.unary_union(g) for g in groups]
            polys = _polygon_parts(ops.unary_union(unions) if len(unions) > 1 else unions[0])
            local = box(-half_across + margin, -half_along + margin, half_across - margin, half_along - margin)
            rings = [(poly.exterior, False) for poly in polys] + [(r, True) for poly in polys for r in poly.interiors]
            out = []
            for ring, want_ccw in rings:
                coords = list(ring.coords)
                if LinearRing(coords).is_ccw != want_ccw:
                    coords = coords[::-1]
                lines = LinearRing(coords).intersection(local)
                if isinstance(lines, MultiLineString):
                    lines = ops.linemerge(lines)
                out.extend(parts(lines))
            return out

        lidar_lines = {
            "divider": [p for name in LINE_LAYERS for g in clipped(name) for p in parts(g)],
            "ped_crossing": outlines([clipped_polygons("ped_crossing")], margin=-0.2),
            "boundary": outlines([clipped_polygons(name) for name in POLYGON_LAYERS], margin=0.2),
        }
        rot, trans = lidar_bev_to_ego(l2e)
        return {cls: [np.asarray(line.coords, dtype=float)[:, :2] @ rot.T + trans
                      for line in lines if len(line.coords) >= 2]
                for cls, lines in lidar_lines.items()}


def _polygon_parts(geom) -> list:
    """The polygons in ``geom`` (Polygon, MultiPolygon or a collection); lines and points dropped."""
    from shapely.geometry import Polygon

    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    return [p for g in getattr(geom, "geoms", []) for p in _polygon_parts(g)]


def lidar_bev_to_ego(l2e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2x2 rotation, 2-vector) taking MapTR's LiDAR patch frame to the schema's ego frame: the yaw of
    lidar2ego and its x/y translation, exactly what the MapTR and VAD adapters apply
    (``lidar_bev_to_ego`` in envs/MapTR/demo.py and envs/VAD/demo.py). A rigid 2-D transform, so
    Chamfer distances and AP equal MapTR's in its own frame; the 2x2 block of the full rotation
    would not be rigid on a tilted LiDAR."""
    yaw = float(np.arctan2(l2e[1, 0], l2e[0, 0]))
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s], [s, c]]), np.asarray(l2e[:2, 3], dtype=float)


# ---------------------------------------------------------------------------------------- metric
def resample_polyline(points: np.ndarray, num: int = NUM_SAMPLE_POINTS) -> np.ndarray:
    """``num`` points evenly spaced by arc length along ``points`` (ends included), as shapely's
    ``LineString.interpolate`` over ``np.linspace(0, length, num)`` in mean_ap.py."""
    pts = np.asarray(points, dtype=float)[:, :2]
    seg = np.hypot(*np.diff(pts, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= 0.0:
        return np.repeat(pts[:1], num, axis=0)
    s = np.linspace(0.0, cum[-1], num)
    return np.stack([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])], axis=1)


def chamfer_matrix(preds: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """Chamfer distance of every (pred, gt) pair: (P, K, 2) x (G, K, 2) -> (P, G), metres.

    ``(mean over pred points of the distance to the nearest GT point + the same GT -> pred) / 2``
    (tpfp_chamfer.py ``custom_polyline_score``).
    """
    preds = np.asarray(preds, dtype=float)
    gts = np.asarray(gts, dtype=float)
    if len(preds) == 0 or len(gts) == 0:
        return np.empty((len(preds), len(gts)))
    return _pair_chamfer(preds, gts, np.array([(i, j) for i in range(len(preds)) for j in range(len(gts))])
                         ).reshape(len(preds), len(gts))


def _pair_chamfer(preds: np.ndarray, gts: np.ndarray, pairs: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Chamfer distance of the listed (pred index, gt index) pairs."""
    out = np.empty(len(pairs))
    for i in range(0, len(pairs), chunk):
        pp = preds[pairs[i:i + chunk, 0]]                      # n, Kp, 2
        gg = gts[pairs[i:i + chunk, 1]]                        # n, Kg, 2
        sq = ((pp ** 2).sum(-1)[:, :, None] + (gg ** 2).sum(-1)[:, None, :]
              - 2.0 * np.matmul(pp, gg.transpose(0, 2, 1)))
        d = np.sqrt(np.maximum(sq, 0.0))
        out[i:i + chunk] = (d.min(2).mean(1) + d.min(1).mean(1)) / 2.0
    return out


def _buffers_intersect(preds: np.ndarray, gts: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Do the 2 m flat-cap, mitre-join buffers of each listed pair intersect (tpfp_chamfer.py)?

    Each line is buffered once, however many pairs it is in.
    """
    import shapely

    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)

    def buffers(lines, idx):
        uniq, inv = np.unique(idx, return_inverse=True)
        geoms = shapely.linestrings(lines[uniq])
        return shapely.buffer(geoms, BUFFER_WIDTH, cap_style="flat", join_style="mitre")[inv]

    return shapely.intersects(buffers(preds, pairs[:, 0]), buffers(gts, pairs[:, 1]))


def _sample_tpfp(preds: np.ndarray, scores: np.ndarray, gts: np.ndarray) -> dict[float, np.ndarray]:
    """True-positive flags of one sample's predictions of one class, per threshold (tpfp.py)."""
    n_pred = len(preds)
    if n_pred == 0:
        return {t: np.zeros(0, dtype=bool) for t in THRESHOLDS}
    if len(gts) == 0:
        return {t: np.zeros(n_pred, dtype=bool) for t in THRESHOLDS}
    # Only pairs within the largest threshold can ever match, and the Chamfer distance is at least
    # the gap between the two bounding boxes: skip the pairs whose boxes are farther apart. This
    # changes no result (a prediction whose best GT is beyond 1.5 m is a false positive anyway).
    reach = max(THRESHOLDS)
    plo, phi = preds.min(1), preds.max(1)
    glo, ghi = gts.min(1), gts.max(1)
    gap = np.maximum(np.maximum(glo[None] - phi[:, None], plo[:, None] - ghi[None]), 0.0)   # P, G, 2
    pairs = np.argwhere(np.hypot(gap[..., 0], gap[..., 1]) <= reach)
    dist_cand = np.full((n_pred, len(gts)), NO_MATCH)
    if len(pairs):
        d = _pair_chamfer(preds, gts, pairs)
        near = pairs[d <= reach]
        d = d[d <= reach]
        ok = _buffers_intersect(preds, gts, near)   # custom_polyline_score's 2 m buffer test
        dist_cand[near[ok, 0], near[ok, 1]] = d[ok]
    best = dist_cand.argmin(axis=1)
    best_dist = dist_cand[np.arange(n_pred), best]
    order = np.argsort(-scores, kind="stable")
    out = {}
    for t in THRESHOLDS:
        tp = np.zeros(n_pred, dtype=bool)
        covered = np.zeros(len(gts), dtype=bool)
        for i in order:
            if best_dist[i] <= t and not covered[best[i]]:
                covered[best[i]] = True
                tp[i] = True
        out[t] = tp
    return out


def average_precision(tp: np.ndarray, scores: np.ndarray, num_gts: int) -> float:
    """Area under the interpolated precision-recall curve (mean_ap.py ``average_precision``, 'area')."""
    if num_gts == 0:
        raise ValueError("AP is undefined without ground truth")
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(float)
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1.0 - tp)
    eps = np.finfo(np.float32).eps
    recall = ctp / max(num_gts, eps)
    precision = ctp / np.maximum(ctp + cfp, eps)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def evaluate_mapping(predictions: Iterable[dict], dataroot: Path, version: str, *,
                     nusc: "NuScenes | None" = None, ground_truth: MapGroundTruth | None = None) -> dict:
    """MapTR Chamfer AP of ``predictions`` (their ``map_elements``) on exactly their samples.

    Returns ``{"mAP", "AP": {cls: AP averaged over thresholds}, "AP_thr": {cls: {"0.5": …}},
    "mAP_thr": {"0.5": …}, "num_gts": {cls: n}, "num_preds": {cls: n}, "samples", …}``.
    """
    from onlinemap.evaluation.detection import load_nuscenes

    preds = list(predictions)
    if not preds:
        raise ResultsError("no predictions to evaluate", hint="check that the run wrote predictions.jsonl")
    if nusc is None:
        nusc = load_nuscenes(dataroot, version)
    gt_builder = ground_truth or MapGroundTruth(nusc, dataroot)
    by_token: dict[str, list] = {}
    for p in preds:
        by_token.setdefault(p["sample_token"], []).extend(p.get("map_elements") or ())
    missing = [t for t in by_token if t not in nusc._token2ind["sample"]]
    if missing:
        raise DatasetError(f"{len(missing)} predicted sample token(s) are not in {version} at {dataroot}, "
                           f"e.g. {missing[0]}", hint="evaluate against the dataroot/version the run used")

    tps = {c: {t: [] for t in THRESHOLDS} for c in CLASSES}
    scores = {c: [] for c in CLASSES}
    num_gts = {c: 0 for c in CLASSES}
    ignored = 0
    for token, elements in by_token.items():
        gt = gt_builder.polylines(token)
        for cls in CLASSES:
            gts = np.array([resample_polyline(g) for g in gt[cls]]).reshape(-1, NUM_SAMPLE_POINTS, 2)
            mine = [e for e in elements if e["label"] == cls and len(e["points"]) >= 2]
            pr = np.array([_pred_points(e["points"]) for e in mine]).reshape(-1, NUM_SAMPLE_POINTS, 2)
            sc = np.array([float(e["score"]) for e in mine])
            for t, flags in _sample_tpfp(pr, sc, gts).items():
                tps[cls][t].append(flags)
            scores[cls].append(sc)
            num_gts[cls] += len(gts)
        ignored += sum(1 for e in elements if e["label"] not in CLASSES)

    ap_thr: dict[str, dict[str, float | None]] = {}
    for cls in CLASSES:
        sc = np.concatenate(scores[cls]) if scores[cls] else np.zeros(0)
        ap_thr[cls] = {str(t): (average_precision(np.concatenate(tps[cls][t]), sc, num_gts[cls])
                                if num_gts[cls] else None) for t in THRESHOLDS}
    ap = {c: (float(np.mean(list(v.values()))) if num_gts[c] else None) for c, v in ap_thr.items()}
    valid = [c for c in CLASSES if num_gts[c]]
    map_thr = {str(t): (float(np.mean([ap_thr[c][str(t)] for c in valid])) if valid else None) for t in THRESHOLDS}
    return {
        "mAP": float(np.mean([ap[c] for c in valid])) if valid else None,
        # MapTR's own table (_evaluate_single: cls_aps.mean(0).mean()): a class without GT counts 0
        "mAP_maptr": float(np.mean([ap[c] if num_gts[c] else 0.0 for c in CLASSES])),
        "AP": ap, "AP_thr": ap_thr, "mAP_thr": map_thr,
        "num_gts": num_gts, "num_preds": {c: int(sum(len(s) for s in scores[c])) for c in CLASSES},
        "classes_without_gt": [c for c in CLASSES if not num_gts[c]],
        "ignored_elements": ignored, "samples": len(by_token), "thresholds_m": list(THRESHOLDS),
        "frame": "ego", "range_m": {"x": [PC_RANGE[1], PC_RANGE[4]], "y": [PC_RANGE[0], PC_RANGE[3]],
                                    "centre": "LIDAR_TOP"},
    }


def _pred_points(points) -> np.ndarray:
    # mean_ap.py get_cls_results at the pinned MapTR (main): every prediction is resampled to 100
    # points by arc length, even one that already has 100 (only the maptrv2 branch keeps those)
    return resample_polyline(np.asarray(points, dtype=float)[:, :2])
