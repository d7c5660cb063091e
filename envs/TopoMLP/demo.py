"""TopoMLP adapter (wudongming97/TopoMLP, stack B: mmdet3d 1.0.0rc6, mmcv-full 1.5.2, OpenLane-V2 devkit v1).

Design note. TopoMLP works on OpenLane-V2 (subset A = Argoverse 2 for the released weights), not on
nuScenes: a frame is identified by ``(split, segment_id, timestamp)``. The harness sample's
``token`` is the frame id ``frame_id(identifier)`` (``"val_10000_315967376899927209"`` style; the
prediction schema's token pattern allows it), and ``scene_token`` is the segment id.

The model is built as the repo's ``tools/test.py`` does on its ``--launcher none`` path: the configs
use ``custom_imports = dict(imports=['projects.topomlp'])`` (no ``plugin`` flag), the test dataset is
``OpenLaneV2SubsetADataset`` over ``{meta_root}/{collection}.pkl`` and the images under
``data_root`` (both ``./data`` in the configs: here the OpenLane-V2 dataset folder passed as
``dataroot``). ``prepare`` runs the repo's test pipeline for one index, collates and scatters it;
``forward`` calls ``model(return_loss=False, rescale=True, **data)``.

Raw output (``TopoMLP.forward_test``, projects/topomlp/models/detectors/topomlp.py@8925967), one
dict per sample (batch 1):
  ``pred_lc``            (lanes (N, 3*K) Bezier control points, ego frame, metres; scores (N, 1)) numpy
  ``pred_te``            (boxes (M, 5) = x1, y1, x2, y2 in front-camera pixels + attribute id; scores (M,))
  ``pred_topology_lclc`` (N, N) sigmoid probabilities, row = from lane
  ``pred_topology_lcte`` (N, M) sigmoid probabilities
The dataset's ``format_preds`` (projects/topomlp/datasets/openlane_v2_dataset_subset_a.py) turns
K in {3, 4, 5} control points into 11 points with the Bernstein basis and reorders lanes and both
matrices with one index; ``convert_topology`` below does the same math (sorting by descending
confidence, where upstream uses ascending ``argsort`` order: only the common order matters).

Module-level imports are standard library only; Python 3.7 syntax.
"""
import math
import os
import re
import sys


def _adapterlib():
    """envs/_shared/onlinemap_adapterlib.py, the stdlib-only helpers shared by the adapters."""
    import importlib  # inside a function: this file's module-level imports stay the plain stdlib ones
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_shared"))
    return importlib.import_module("onlinemap_adapterlib")


lib = _adapterlib()

NAME = "TopoMLP"
DEFAULT_CONFIG = "projects/configs/topomlp_setA_r50_wo_yolov8.py"
DEFAULT_COLLECTION = "data_dict_subset_A_val"
# OpenLane-V2 data/README.md: traffic_element.attribute ids (13 classes, the te_head num_classes).
TE_ATTRIBUTES = ("unknown", "red", "green", "yellow", "go_straight", "turn_left", "turn_right",
                 "no_left_turn", "no_right_turn", "u_turn", "no_u_turn", "slight_left", "slight_right")
N_LANE_POINTS = 11
# Output size. The heads emit every query: 300 lanes (num_lanes_one2one) and the traffic head's
# num_query elements per frame (no top-k in LaneHead/TrafficHead._get_bboxes_single), so the full
# topology matrices are up to 300 x 300 and 300 x 100 (~1-2 MB of JSON per frame, GBs for the 4,806 val
# frames). By default the top ``max_lanes`` lanes and ``max_traffic_elements`` elements by score are
# kept, and a matrix with more than ``pack_matrices_above`` entries is written packed (float16, base64,
# see lib.pack_matrix_f16; onlinemap.evaluation.topology.matrix reads both forms).
# ``max_lanes`` / ``max_traffic_elements`` = 0 or None keep everything; ``pack_matrices_above`` = None
# writes nested lists always.
DEFAULTS = {"collection": DEFAULT_COLLECTION, "meta_root": None, "max_lanes": 100, "max_traffic_elements": 50,
            "lane_score_threshold": 0.0, "te_score_threshold": 0.0, "pack_matrices_above": 1024}
_TOKEN_BAD = re.compile(r"[^0-9a-zA-Z_-]")


# ----------------------------------------------------------------------------------------------
# pure conversion functions
# ----------------------------------------------------------------------------------------------

def frame_id(identifier):
    """OpenLane-V2 ``(split, segment_id, timestamp)`` -> a token matching the schema's pattern."""
    return "_".join(_TOKEN_BAD.sub("-", str(part)) for part in identifier)[:64]


def _tolist(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if hasattr(x, "tolist"):
        x = x.tolist()
    return x


def _binom(n, k):
    return math.factorial(n) // (math.factorial(k) * math.factorial(n - k))


def bezier_matrix(n_control, n_points=N_LANE_POINTS):
    """Bernstein basis (n_points x n_control) sampling a Bezier curve at uniform t in [0, 1]."""
    rows = []
    for i in range(n_points):
        t = i / float(n_points - 1)
        rows.append([_binom(n_control - 1, j) * (1 - t) ** (n_control - 1 - j) * t ** j for j in range(n_control)])
    return rows


def lane_points(flat_controls, n_points=N_LANE_POINTS):
    """One lane's flattened control points (3*K,) -> list of 3-D points.

    As upstream: K in {3, 4, 5} are Bezier control points sampled at ``n_points`` points; any other K
    is taken as the points themselves.
    """
    vals = [float(v) for v in flat_controls]
    if len(vals) % 3:
        raise ValueError("lane regression length %d is not a multiple of 3" % len(vals))
    ctrl = [vals[i:i + 3] for i in range(0, len(vals), 3)]
    if len(ctrl) not in (3, 4, 5):
        return ctrl
    basis = bezier_matrix(len(ctrl), n_points)
    return [[sum(b[j] * ctrl[j][d] for j in range(len(ctrl))) for d in range(3)] for b in basis]


def _clip01(v):
    v = float(v)
    if v != v:  # NaN
        return 0.0
    return min(max(v, 0.0), 1.0)


def unwrap_result(raw):
    """``[dict]`` (what forward_test returns for batch 1) or the dict itself."""
    if isinstance(raw, (list, tuple)):
        if len(raw) != 1:
            raise ValueError("expected the result of one frame (batch 1), got %d" % len(raw))
        raw = raw[0]
    return raw


def _matrix(rows, n_rows, n_cols, pack_above):
    """Nested lists, or the packed float16 form when the matrix has more than ``pack_above`` entries."""
    if pack_above is not None and n_rows * n_cols > int(pack_above):
        return lib.pack_matrix_f16(rows, n_rows, n_cols)
    return rows


def convert_topology(raw, token, model=NAME, options=None):
    """TopoMLP's raw output of one frame -> the standard prediction with its ``topology`` object."""
    opts = dict(DEFAULTS)
    opts.update(options or {})
    result = unwrap_result(raw)
    lanes_raw, lane_scores_raw = result["pred_lc"]
    lanes_raw = _tolist(lanes_raw)
    lane_scores = [row[0] if isinstance(row, (list, tuple)) else row for row in _tolist(lane_scores_raw)]
    te_boxes, te_scores = result["pred_te"]
    te_boxes, te_scores = _tolist(te_boxes), _tolist(te_scores)
    lclc = _tolist(result["pred_topology_lclc"])
    lcte = _tolist(result["pred_topology_lcte"])
    n, m = len(lanes_raw), len(te_boxes)
    if len(lane_scores) != n or len(lclc) != n or len(lcte) != n or len(te_scores) != m:
        raise ValueError("inconsistent TopoMLP output sizes: %d lanes, %d lane scores, %d lclc rows, %d lcte rows, "
                         "%d traffic elements, %d te scores" % (n, len(lane_scores), len(lclc), len(lcte), m, len(te_scores)))
    if any(len(row) != n for row in lclc) or any(len(row) != m for row in lcte):
        raise ValueError("topology matrices are not (N, N) and (N, M) with N=%d, M=%d" % (n, m))

    lane_order = sorted((i for i in range(n) if float(lane_scores[i]) >= float(opts["lane_score_threshold"])),
                        key=lambda i: -float(lane_scores[i]))
    if opts.get("max_lanes"):
        lane_order = lane_order[:int(opts["max_lanes"])]
    te_order = sorted((j for j in range(m) if float(te_scores[j]) >= float(opts["te_score_threshold"])),
                      key=lambda j: -float(te_scores[j]))
    if opts.get("max_traffic_elements"):
        te_order = te_order[:int(opts["max_traffic_elements"])]

    lanes = [{"id": 1000 + k, "score": _clip01(lane_scores[i]), "points": lane_points(lanes_raw[i])}
             for k, i in enumerate(lane_order)]
    elements = []
    for k, j in enumerate(te_order):
        box = [float(v) for v in te_boxes[j]]
        attr = int(round(box[4])) if len(box) > 4 else 0
        label = TE_ATTRIBUTES[attr] if 0 <= attr < len(TE_ATTRIBUTES) else str(attr)
        elements.append({"id": 2000 + k, "label": label, "score": _clip01(te_scores[j]), "box": box[:4]})
    lane_lane = _matrix([[_clip01(lclc[i][i2]) for i2 in lane_order] for i in lane_order],
                        len(lane_order), len(lane_order), opts.get("pack_matrices_above"))
    lane_traffic = _matrix([[_clip01(lcte[i][j]) for j in te_order] for i in lane_order],
                           len(lane_order), len(te_order), opts.get("pack_matrices_above"))
    return {"sample_token": token, "model": model,
            "topology": {"lanes": lanes, "traffic_elements": elements, "lane_lane": lane_lane,
                         "lane_traffic": lane_traffic},
            "extra": {"lane_frame": "ego", "traffic_element_frame": "front camera pixels",
                      "lane_points": N_LANE_POINTS}}


def frame_index(identifiers):
    """frame id -> dataset index for the collection's keys (``dataset.data_infos``)."""
    return {frame_id(key): i for i, key in enumerate(identifiers)}


# ----------------------------------------------------------------------------------------------
# the harness protocol
# ----------------------------------------------------------------------------------------------

class Adapter(object):
    """TopoMLP behind the harness protocol (single GPU, non-distributed, stateless)."""

    name = NAME

    def __init__(self, settings):
        self.settings = settings
        self.options = dict(DEFAULTS)
        self.options.update(settings.get("options") or {})
        self.device = settings.get("device") or "cuda:0"
        self.repo = os.path.abspath(settings.get("repo") or os.getcwd())
        self.model = None
        self.dataset = None
        self.index = {}

    def load(self):
        import torch
        from mmcv import Config

        checkpoint = lib.require_checkpoint(self.settings.get("checkpoint"),
                                            "TopoMLP needs settings['checkpoint'] (GitHub release v1.0 asset)")
        if self.repo not in sys.path:
            sys.path.insert(0, self.repo)
        config = lib.resolve_path(self.repo, self.settings.get("config") or DEFAULT_CONFIG)
        cfg = Config.fromfile(config)
        if cfg.get("custom_imports", None):
            from mmcv.utils import import_modules_from_strings
            import_modules_from_strings(**cfg["custom_imports"])

        from mmdet3d.datasets import build_dataset

        dataroot = os.path.abspath(self.settings["dataroot"])
        cfg.data.test.test_mode = True
        cfg.data.test.data_root = dataroot
        cfg.data.test.meta_root = os.path.abspath(self.options["meta_root"] or dataroot)
        cfg.data.test.collection = self.options["collection"]
        self.dataset = build_dataset(cfg.data.test)
        self.index = frame_index(self.dataset.data_infos)

        self.torch = torch
        self.model = lib.build_model_like_test_py(cfg, lib.resolve_path(self.repo, checkpoint), self.device,
                                                  self.dataset)

    def prepare(self, sample):
        token = sample["token"]
        if "identifier" in sample:
            token = frame_id(sample["identifier"])
        idx = self.index.get(token)
        if idx is None:
            raise KeyError("frame %s is not in collection %s" % (token, self.options["collection"]))
        return lib.collate_to_device(self.dataset[idx], self.device)

    def forward(self, inputs):
        with self.torch.no_grad():
            return self.model(return_loss=False, rescale=True, **inputs)

    def convert(self, raw, sample):
        token = frame_id(sample["identifier"]) if "identifier" in sample else sample["token"]
        return convert_topology(raw, token, NAME, self.options)


if __name__ == "__main__":
    import runpy
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(runpy.run_path(os.path.join(_here, "..", "..", "onlinemap", "harness", "standalone.py"))["main"](Adapter))
