"""Reference checks of the TopoMLP adapter against TopoMLP's and the OpenLane-V2 devkit's own code.

Usage: check_topomlp.py REPO CONFIG DATAROOT INFO_FILE TAP_DIR PREDICTIONS OUT.json (run in the verification
venv). Four checks, each with its max differences:

1. format_preds: each tapped raw output (``TopoMLP.forward_test``) through the repo's own
   ``OpenLaneV2SubsetADataset.format_preds`` (the submission format TopoMLP's ``evaluate`` scores) vs the
   adapter's ``convert_topology`` of the same output with nothing dropped: every lane, traffic element and
   matrix entry matched (upstream orders lanes by ascending confidence, the adapter by descending: lanes
   and elements are paired by content, then the matrices compared through that pairing).
2. The worker's own predictions (the adapter's defaults: top lanes / elements by score, packed float16
   matrices) are the highest-scored subset of (1), within float16's rounding on the matrices.
3. The devkit's ``openlanev2.evaluation.evaluate`` (OpenLane-V2 score and its parts) on the synthetic ground
   truth gives the same numbers for format_preds' submission and for one rebuilt from the adapter's
   conversion (random weights score ~0; equality is the point: order, ids, units and matrix orientation).
4. Frames and units against the synthetic ground truth: the dataset's GT lanes of every frame, made into
   control points by the repo's own ``CustomParameterizeLane`` (the config's bezier_Endpointfixed), its GT
   traffic elements and topology, fed to ``convert_topology`` as if the heads had predicted them: every
   converted lane point must lie on its synthetic centerline (read from the frame's info JSON at full
   resolution, ego frame, metres), every box equal the GT box with its attribute name, and both matrices
   equal the GT topology through the lane pairing.

``format_preds`` reads only ``self.data_infos[index]``; it is called with an object holding just the
tapped frames' identifiers, so one tapped frame is formatted at a time.
"""
import base64
import importlib.util
import json
import os
import sys
import types

from taps import load_predictions, load_taps  # verification/inenv/taps.py (this script's folder is on sys.path)

TOL_M = 1e-3          # GT lanes through the conversion vs the synthetic centerline
TOL_EXACT = 1e-5      # float32 arithmetic on both sides
# lane points: upstream samples the Bezier curve with a float32 einsum, the adapter in float64, on coordinates
# up to 51.2 m (float32 spacing there: 3.8e-6 m): a few float32 ulps
TOL_LANE_M = 5e-5
F16_TOL = 2.5e-4      # |x - float16(x)| for x in [0, 1]


def _check(name, passed, detail, max_diff=None):
    return {"name": name, "passed": bool(passed), "max_diff": max_diff, "detail": detail}


def _load_adapter(root):
    spec = importlib.util.spec_from_file_location("_onlinemap_adapter_TopoMLP",
                                                  os.path.join(root, "envs", "TopoMLP", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def _matrix(value):
    import numpy as np

    if isinstance(value, dict):
        assert value["encoding"] == "float16-base64", value.get("encoding")
        rows, cols = value["shape"]
        return np.frombuffer(base64.b64decode(value["data"]), dtype="<f2").astype(np.float64).reshape(rows, cols)
    arr = np.array(value, dtype=np.float64)
    return arr if arr.ndim == 2 else arr.reshape(len(value), 0)


def _pair(a, b):
    """Row i of ``a`` -> the index of its nearest row of ``b`` (max abs difference) and that difference."""
    import numpy as np

    if len(a) == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    d = np.abs(a[:, None, :] - b[None, :, :]).max(-1)
    j = d.argmin(1)
    return j, d[np.arange(len(a)), j]


def _upstream_prediction(dataset, identifier, raw):
    fake_self = types.SimpleNamespace(data_infos=[identifier])
    return type(dataset).format_preds(fake_self, raw)["results"][identifier]["predictions"]


def _compare(up, conv, demo, f16=False):
    """Adapter conversion ``conv`` (a prediction dict) vs upstream's formatted prediction ``up``."""
    import numpy as np

    lanes = conv["topology"]["lanes"]
    tes = conv["topology"]["traffic_elements"]
    u_pts = np.array([lc["points"] for lc in up["lane_centerline"]], dtype=np.float64).reshape(len(up["lane_centerline"]), -1)
    u_conf = np.array([float(lc["confidence"]) for lc in up["lane_centerline"]])
    a_pts = np.array([ln["points"] for ln in lanes], dtype=np.float64).reshape(len(lanes), -1)
    a_conf = np.array([ln["score"] for ln in lanes])
    li, lane_d = _pair(np.concatenate([a_pts, a_conf[:, None]], 1), np.concatenate([u_pts, u_conf[:, None]], 1))
    u_te = np.array([np.concatenate([np.asarray(t["points"], dtype=np.float64).ravel(), [float(t["attribute"]),
                                                                                        float(t["confidence"])]])
                     for t in up["traffic_element"]]).reshape(len(up["traffic_element"]), 6)
    names = list(demo.TE_ATTRIBUTES)
    a_te = np.array([t["box"] + [float(names.index(t["label"])), t["score"]] for t in tes]).reshape(len(tes), 6)
    ti, te_d = _pair(a_te, u_te)
    ll = _matrix(conv["topology"]["lane_lane"])
    lt = _matrix(conv["topology"]["lane_traffic"])
    u_ll = np.asarray(up["topology_lclc"], dtype=np.float64)
    u_lt = np.asarray(up["topology_lcte"], dtype=np.float64)
    ll_d = float(np.abs(ll - u_ll[np.ix_(li, li)]).max()) if ll.size else 0.0
    lt_d = float(np.abs(lt - u_lt[np.ix_(li, ti)]).max()) if lt.size else 0.0
    one_to_one = len(set(li.tolist())) == len(li) and len(set(ti.tolist())) == len(ti)
    # the kept lanes / elements are the top-scored ones, in descending order
    top = (np.sort(u_conf)[::-1][:len(a_conf)], np.sort(u_te[:, 5])[::-1][:len(tes)])
    top_d = max(float(np.abs(a_conf - top[0]).max()) if len(a_conf) else 0.0,
                float(np.abs(a_te[:, 5] - top[1]).max()) if len(tes) else 0.0)
    mtol = F16_TOL if f16 else TOL_EXACT
    diffs = {"lane_points_and_score": float(lane_d.max()) if len(lane_d) else 0.0,
             "traffic_element_box_attribute_score": float(te_d.max()) if len(te_d) else 0.0,
             "lane_lane": ll_d, "lane_traffic": lt_d, "top_scores": top_d}
    ok = (one_to_one and diffs["lane_points_and_score"] <= TOL_LANE_M and diffs["traffic_element_box_attribute_score"]
          <= TOL_EXACT and ll_d <= mtol and lt_d <= mtol and top_d <= TOL_EXACT and len(lanes) > 0 and len(tes) > 0)
    return ok, diffs, (len(lanes), len(up["lane_centerline"]), len(tes), len(up["traffic_element"]))


def _merge(acc, diffs):
    for k, v in diffs.items():
        acc[k] = max(acc.get(k, 0.0), v)
    return acc


def _devkit_submission(preds, identifiers, demo):
    """The adapter's predictions (all kept) rebuilt in the devkit's submission format."""
    import numpy as np

    names = list(demo.TE_ATTRIBUTES)
    results = {}
    for token, conv in preds.items():
        topo = conv["topology"]
        results[identifiers[token]] = {"predictions": {
            "lane_centerline": [{"id": ln["id"], "points": np.array(ln["points"], dtype=np.float32),
                                 "confidence": ln["score"]} for ln in topo["lanes"]],
            "traffic_element": [{"id": t["id"], "attribute": names.index(t["label"]),
                                 "points": np.array(t["box"], dtype=np.float32).reshape(2, 2),
                                 "confidence": t["score"]} for t in topo["traffic_elements"]],
            "topology_lclc": _matrix(topo["lane_lane"]), "topology_lcte": _matrix(topo["lane_traffic"])}}
    return {"method": "onlinemap", "authors": ["onlinemap"], "e-mail": "-", "institution / company": "-",
            "country / region": "China", "results": results}


def _flat_scores(metrics):
    out = {}
    for key, val in metrics.items():
        for k, v in val.items():
            out[key if k == "score" else k] = float(v)
    return out


def _segment_distance(points, line):
    """Largest distance of ``points`` (P, 3) from the polyline ``line`` (L, 3)."""
    import numpy as np

    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((points[:, None, :] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None], 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return float(np.linalg.norm(points[:, None, :] - closest, axis=-1).min(1).max())


def gt_check(dataset, cfg, demo, repo, dataroot, options):
    import numpy as np
    from projects.topomlp.datasets.pipelines.transforms import CustomParameterizeLane

    param = CustomParameterizeLane(method="bezier_Endpointfixed", method_para=dict(cfg.method_para))
    worst_lane = worst_box = worst_topo = 0.0
    labels = set()
    n_lanes = 0
    for idx, identifier in enumerate(dataset.data_infos):
        ann = dataset.get_ann_info(idx)
        ctrl = param({"gt_lc": ann["gt_lc"].copy()})["gt_lc"]
        te = np.concatenate([ann["gt_te"], ann["gt_te_labels"][:, None].astype(np.float32)], 1)
        fake = [{"pred_lc": (ctrl, np.ones((len(ctrl), 1), dtype=np.float32)),
                 "pred_te": (te, np.ones(len(te), dtype=np.float32)),
                 "pred_topology_lclc": ann["gt_topology_lclc"].astype(np.float32),
                 "pred_topology_lcte": ann["gt_topology_lcte"].astype(np.float32)}]
        conv = demo.convert_topology(fake, demo.frame_id(identifier), options=options)
        split, segment, ts = identifier
        with open(os.path.join(dataroot, split, segment, "info", "%s.json" % ts)) as fh:
            info = json.load(fh)
        gt_lines = [np.array(lc["points"], dtype=np.float64) for lc in info["annotation"]["lane_centerline"]]
        pairing = []
        for lane in conv["topology"]["lanes"]:
            pts = np.array(lane["points"], dtype=np.float64)
            dists = [_segment_distance(pts, line) for line in gt_lines]
            g = int(np.argmin(dists))
            pairing.append(g)
            worst_lane = max(worst_lane, dists[g])
            n_lanes += 1
        for t, gt in zip(conv["topology"]["traffic_elements"], info["annotation"]["traffic_element"]):
            worst_box = max(worst_box, float(np.abs(np.array(t["box"]) - np.array(gt["points"]).ravel()).max()))
            labels.add((t["label"], demo.TE_ATTRIBUTES[gt["attribute"]]))
        ll = _matrix(conv["topology"]["lane_lane"])
        lt = _matrix(conv["topology"]["lane_traffic"])
        gt_ll = np.array(info["annotation"]["topology_lclc"], dtype=np.float64)
        gt_lt = np.array(info["annotation"]["topology_lcte"], dtype=np.float64)
        worst_topo = max(worst_topo, float(np.abs(ll - gt_ll[np.ix_(pairing, pairing)]).max()),
                         float(np.abs(lt - gt_lt[pairing]).max()))
        if len(set(pairing)) != len(pairing) or len(pairing) != len(gt_lines):
            worst_lane = float("inf")
    ok = n_lanes > 0 and worst_lane <= TOL_M and worst_box <= TOL_EXACT and worst_topo == 0.0 and \
        all(a == b for a, b in labels)
    return _check("GT lanes, traffic elements and topology through the adapter's conversion match the synthetic "
                  "ground truth (ego frame, metres; front-camera pixels)", ok,
                  "%d GT lanes over %d frames (control points from the repo's CustomParameterizeLane); labels %s"
                  % (n_lanes, len(dataset.data_infos), sorted(labels)),
                  {"lane_point_to_centerline_m": worst_lane, "box_px": worst_box, "topology": worst_topo})


def main(repo, config, dataroot, info_file, tap_dir, predictions, out):
    from mmcv import Config
    from mmcv.utils import import_modules_from_strings

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    demo = _load_adapter(root)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    cfg = Config.fromfile(config)
    import_modules_from_strings(**cfg["custom_imports"])
    from mmdet3d.datasets import build_dataset
    from openlanev2.evaluation import evaluate
    from openlanev2.preprocessing import check_results

    dataroot = os.path.abspath(dataroot)
    cfg.data.test.test_mode = True
    cfg.data.test.data_root = dataroot
    cfg.data.test.meta_root = dataroot
    cfg.data.test.collection = info_file[:-len(".pkl")] if info_file.endswith(".pkl") else info_file
    dataset = build_dataset(cfg.data.test)
    identifiers = {demo.frame_id(k): k for k in dataset.data_infos}
    taps = load_taps(tap_dir)
    preds = load_predictions(predictions)
    everything = {"max_lanes": 0, "max_traffic_elements": 0, "pack_matrices_above": None}

    full_diff, worker_diff = {}, {}
    full_ok = worker_ok = bool(taps)
    sizes = []
    upstream_sub = {"method": "dummy", "authors": ["dummy"], "e-mail": "dummy", "institution / company": "dummy",
                    "country / region": "China", "results": {}}
    full_preds = {}
    for t in taps:
        token = t["sample"]["token"]
        identifier = identifiers[token]
        up = _upstream_prediction(dataset, identifier, t["raw"])
        upstream_sub["results"][identifier] = {"predictions": up}
        conv = demo.convert_topology(t["raw"], token, options=everything)
        full_preds[token] = conv
        ok, diffs, size = _compare(up, conv, demo)
        full_ok = full_ok and ok and size[0] == size[1] and size[2] == size[3]
        _merge(full_diff, diffs)
        ok, diffs, wsize = _compare(up, preds[token], demo, f16=True)
        worker_ok = worker_ok and ok
        _merge(worker_diff, diffs)
        sizes.append((size, wsize))
    checks = [
        _check("raw output through the repo's format_preds == the adapter's conversion (all kept)", full_ok,
               "%d frames; (adapter lanes, upstream lanes, adapter elements, upstream elements) per frame: %s"
               % (len(taps), [s[0] for s in sizes]), full_diff),
        _check("the worker's predictions are format_preds' top-scored lanes / elements (matrices to float16)",
               worker_ok, "(kept lanes, upstream lanes, kept elements, upstream elements) per frame: %s"
               % [s[1] for s in sizes], worker_diff),
    ]

    # 3. the devkit's own metric on both submissions, against the synthetic ground truth of the tapped frames
    import pickle

    with open(os.path.join(dataroot, cfg.data.test.collection + ".pkl"), "rb") as fh:
        gt_all = pickle.load(fh)
    gt = {k: gt_all[k] for k in upstream_sub["results"]}
    ours = _devkit_submission(full_preds, identifiers, demo)
    try:
        check_results(upstream_sub)
        check_results(ours)
        m_up = _flat_scores(evaluate(ground_truth=gt, predictions=upstream_sub, verbose=False))
        m_ours = _flat_scores(evaluate(ground_truth=gt, predictions=ours, verbose=False))
        worst = max(abs(m_up[k] - m_ours[k]) for k in m_up)
        checks.append(_check("the devkit's evaluate scores the adapter's conversion as format_preds' submission",
                             set(m_up) == set(m_ours) and worst <= 1e-6,
                             "format_preds: %s; adapter: %s" % ({k: round(v, 6) for k, v in m_up.items()},
                                                                {k: round(v, 6) for k, v in m_ours.items()}),
                             {"metric_abs": worst}))
    except Exception as exc:   # the devkit refusing a submission is a failed check, recorded
        checks.append(_check("the devkit's evaluate scores the adapter's conversion as format_preds' submission",
                             False, "%s: %s" % (type(exc).__name__, exc)))

    checks.append(gt_check(dataset, cfg, demo, repo, dataroot, everything))
    with open(out, "w") as fh:
        json.dump({"checks": checks}, fh, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
