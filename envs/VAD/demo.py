"""VAD adapter: hustvl/VAD inside its own conda env (mmdet3d 0.17.1, mmcv-full 1.4.0, torch 1.9.1).

Design note. The model is built as the repo's ``tools/test.py`` builds it on its single-GPU path
(``--launcher none``, which docs/train_eval.md says is the only accurate one): plugin import from
``cfg.plugin_dir``, ``pretrained = None``, ``wrap_fp16_model`` only when the config has ``fp16``,
``load_checkpoint`` on CPU, ``train_cfg = None``, ``CLASSES`` from the checkpoint meta; fp16 only on
CUDA). We collate and scatter one sample ourselves (what ``MMDataParallel`` does; unwrapped on the
CPU) and call ``VAD.forward_test``, which needs the GT fields the test pipeline loads (planning
metrics are computed inside the model). VAD is temporal (``video_test_mode=True``, prev_bev +
CAN-bus deltas).

Timed region. Upstream's test path also does ground-truth work whose only output is
``metric_results`` (which ``convert`` ignores): LiDAR loading and shapely map-GT vectorisation
(``is_vis_on_test``) in the data pipeline, the motion and planner metrics in ``simple_test_pts``.
By default (``options.gt_metrics = false``) the adapter skips them (``strip_gt_work``,
``is_vis_on_test = False``, ``skip_gt_metrics``), so ``data_ms`` and ``forward_ms`` hold only what
inference needs; ``gt_metrics = true`` runs them as tools/test.py does.

Conventions (checked against hustvl/VAD@1688c4b1 and open-mmlab/mmdetection3d@v0.17.1):
* Boxes: ``get_bboxes`` makes ``LiDARInstance3DBoxes`` (bottom centre, tensor ``x y z w l h yaw vx vy``).
  The info converter stores dims as nuScenes ``wlh`` and yaw as ``-yaw_nus - pi/2``
  (``tools/data_converter/vad_nuscenes_converter.py``), so ``output_to_nusc_box`` keeps the dims and
  turns the yaw back with ``-yaw - pi/2``; the centre is the gravity centre (z + h/2). We reproduce
  ``output_to_nusc_box`` + ``lidar_nusc_box_to_global`` (lidar -> ego, class range filter in ego
  x/y with ``vad_nusc_detection_cvpr_2019.json``: |x| <= 30, |y| <= 15, ego -> global) and
  ``_format_bbox``'s ``score_thresh=0.2`` and attribute rule.
* Map: same LiDAR-frame BEV patch as MapTR (``VectorizedLocalMap`` cut around lidar2global); moved
  to the ego frame with lidar2ego's yaw and x/y translation.
* Plan: ``ego_fut_preds`` (3 commands x 6 steps x 2) are per-step offsets of the LiDAR's future
  positions in the current LiDAR frame (converter: global sensor pose -> lcf, then diffs). The
  command is the GT one-hot ``ego_fut_cmd`` (0 right, 1 left, 2 straight), as ``simple_test_pts``
  picks it; cumulative sum -> positions; rotated into ego axes (no lever-arm shift: the waypoints are
  displacements from the current position); dt = 0.5 s (2 Hz keyframes).

Module-level imports are standard library only; torch, numpy and mmcv are imported inside functions.
"""
import math
import os
import sys


def _adapterlib():
    """envs/_shared/onlinemap_adapterlib.py, the stdlib-only helpers shared by the adapters."""
    import importlib  # inside a function: this file's module-level imports stay the plain stdlib ones
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_shared"))
    return importlib.import_module("onlinemap_adapterlib")


lib = _adapterlib()

# Shared with MapTR (envs/_shared/onlinemap_adapterlib.py); re-exported under the names used here.
quaternion_matrix = lib.quaternion_matrix
matrix_yaw = lib.matrix_yaw
rebase_nuscenes_path = lib.rebase_nuscenes_path
rebase_info_paths = lib.rebase_info_paths
needs_state_reset = lib.needs_state_reset
import_plugin = lib.import_plugin
collate_to_device = lib.collate_to_device

DEFAULT_CONFIG = "projects/configs/VAD/VAD_tiny_stage_2.py"
DEFAULT_INFO_FILE = "vad_nuscenes_infos_temporal_val.pkl"
CLASS_NAMES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
               "pedestrian", "traffic_cone")
MAP_CLASSES = ("divider", "ped_crossing", "boundary")
STANDARD_MAP_LABELS = {"divider": "divider", "ped_crossing": "ped_crossing", "boundary": "boundary",
                       "centerline": "centerline"}
# vad_nuscenes_converter.py: [1,0,0] turn right, [0,1,0] turn left, [0,0,1] go straight.
COMMANDS = ("turn_right", "turn_left", "go_straight")
# projects/mmdet3d_plugin/datasets/vad_nusc_detection_cvpr_2019.json (every class the same).
CLASS_RANGE_X = 30.0
CLASS_RANGE_Y = 15.0
DET_SCORE_THRESHOLD = 0.2          # nuscenes_vad_dataset.py _format_bbox(score_thresh=0.2)
PLAN_DT = 0.5                      # 2 Hz keyframes; VAD.py planning metric: 2 steps = 1 s
FUT_TS = 6                         # VAD_head fut_ts default (VAD_tiny_e2e.py does not override it)
# mmdet3d v0.17.1 NuScenesDataset.DefaultAttribute ('' -> None here).
DEFAULT_ATTRIBUTE = {"car": "vehicle.parked", "pedestrian": "pedestrian.moving", "trailer": "vehicle.parked",
                     "truck": "vehicle.parked", "bus": "vehicle.moving", "motorcycle": "cycle.without_rider",
                     "construction_vehicle": "vehicle.parked", "bicycle": "cycle.without_rider",
                     "barrier": None, "traffic_cone": None}
# docs/train_eval.md "Reproduce results with pre-trained weights" (hustvl/VAD#9).
CAFFE_IMG_NORM = {"mean": [103.530, 116.280, 123.675], "std": [1.0, 1.0, 1.0], "to_rgb": False}
# gt_metrics: False keeps VAD's own ground-truth work (LiDAR points and map-GT vectorisation in the
# data pipeline, the motion / planner metrics in simple_test_pts) out of data_ms and forward_ms: it only
# feeds ``metric_results``, which convert() does not read. True runs it exactly as tools/test.py does.
DEFAULTS = {"info_file": None, "map_ann_file": None, "caffe_img_norm": True, "det_score_threshold": DET_SCORE_THRESHOLD,
            "map_score_threshold": 0.0, "command": None, "gt_metrics": False}
# VAD methods that only compute metric_results from the GT inside simple_test_pts (VAD/VAD.py @1688c4b1).
GT_METRIC_METHODS = ("assign_pred_to_gt_vip3d", "compute_motion_metric_vip3d", "compute_planner_metric_stp3")


# ---------------------------------------------------------------------------------------------------
# Pure conversion functions (no torch / mmcv needed: they take tensors or arrays and use tolist()).
# ---------------------------------------------------------------------------------------------------

def _matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def _apply(r, v, t=(0.0, 0.0, 0.0)):
    return [sum(r[i][j] * v[j] for j in range(3)) + float(t[i]) for i in range(3)]


def _rot_z(yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    return [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]


def _as_list(value):
    """tolist() of a torch tensor / numpy array (or of a LiDARInstance3DBoxes' .tensor)."""
    if hasattr(value, "tensor") and not hasattr(value, "tolist"):
        value = value.tensor
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value)


def _flatten(value):
    out = []
    stack = [_as_list(value) if not isinstance(value, list) else value]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(list(item)))
        else:
            out.append(item)
    return out


def lidar_bev_to_ego(points, lidar2ego_rotation, lidar2ego_translation, translate=True):
    """Move [[x, y], ...] from the LiDAR BEV frame to ego axes (yaw of lidar2ego, plus its x/y shift if translate)."""
    yaw = matrix_yaw(quaternion_matrix(lidar2ego_rotation))
    c, s = math.cos(yaw), math.sin(yaw)
    tx, ty = (float(lidar2ego_translation[0]), float(lidar2ego_translation[1])) if translate else (0.0, 0.0)
    return [[c * x - s * y + tx, s * x + c * y + ty] for x, y in points]


def attribute_for(name, velocity_xy):
    """nuScenes attribute as nuscenes_vad_dataset.py _format_bbox assigns it (speed threshold 0.2 m/s)."""
    if math.hypot(velocity_xy[0], velocity_xy[1]) > 0.2:
        if name in ("car", "construction_vehicle", "bus", "truck", "trailer"):
            return "vehicle.moving"
        if name in ("bicycle", "motorcycle"):
            return "cycle.with_rider"
        return DEFAULT_ATTRIBUTE[name]
    if name == "pedestrian":
        return "pedestrian.standing"
    if name == "bus":
        return "vehicle.stopped"
    return DEFAULT_ATTRIBUTE[name]


def agent_trajectories(traj_row, center_xy, z, to_global):
    """One agent's ``trajs_3d`` row -> its modes as global [x, y] waypoints.

    ``traj_row`` is (fut_mode, fut_ts * 2) (or flat): per-step (dx, dy) offsets in the sample's LiDAR
    frame, the first from the agent's own box centre (vad_nuscenes_converter builds the targets that
    way; VAD.compute_motion_metric cumsums them and adds the predicted centre). ``to_global`` maps a
    LiDAR-frame point to the global frame.
    """
    flat = [float(v) for v in _flatten(traj_row)]
    steps = FUT_TS * 2
    if not flat or len(flat) % steps:
        raise ValueError("trajs_3d row has %d values, not a multiple of fut_ts*2 = %d" % (len(flat), steps))
    modes = []
    for m in range(len(flat) // steps):
        px, py, points = center_xy[0], center_xy[1], []
        for t in range(FUT_TS):
            px += flat[m * steps + 2 * t]
            py += flat[m * steps + 2 * t + 1]
            g = to_global([px, py, z])
            points.append([g[0], g[1]])
        modes.append(points)
    return modes


def lidar_boxes_to_global(box_tensor, scores, labels, lidar2ego_rotation, lidar2ego_translation,
                          ego2global_rotation, ego2global_translation, class_names=CLASS_NAMES,
                          score_threshold=DET_SCORE_THRESHOLD, range_x=CLASS_RANGE_X, range_y=CLASS_RANGE_Y,
                          trajs=None):
    """mmdet3d-0.17 LiDAR boxes (N, 9: bottom x y z, w l h, yaw, vx vy) -> standard boxes in the global frame.

    Mirrors output_to_nusc_box (gravity centre, dims kept as wlh, yaw_nus = -yaw - pi/2, velocity
    (vx, vy, 0)) and lidar_nusc_box_to_global (rotate+translate by lidar2ego, drop boxes outside the
    class range in ego x/y, rotate+translate by ego2global), then _format_bbox's score threshold.
    ``trajs``: VAD's ``trajs_3d`` (N, fut_mode, fut_ts*2), row-aligned with the boxes; each kept box
    gets its motion modes as ``trajectories`` (VAD outputs no per-mode score: ``scores`` is null).
    """
    r_le = quaternion_matrix(lidar2ego_rotation)
    r_eg = quaternion_matrix(ego2global_rotation)
    out = []
    rows = _as_list(box_tensor)
    traj_rows = _as_list(trajs) if trajs is not None else [None] * len(rows)
    if len(traj_rows) != len(rows):
        raise ValueError("trajs_3d has %d rows for %d boxes" % (len(traj_rows), len(rows)))
    for row, score, label, traj in zip(rows, _as_list(scores), _as_list(labels), traj_rows):
        x, y, z, w, l, h, yaw = [float(v) for v in row[:7]]
        vx, vy = (float(row[7]), float(row[8])) if len(row) >= 9 else (0.0, 0.0)
        name = class_names[int(label)]
        rot = _rot_z(-yaw - math.pi / 2.0)
        center = _apply(r_le, [x, y, z + h * 0.5], lidar2ego_translation)
        if abs(center[0]) > range_x or abs(center[1]) > range_y:
            continue
        if float(score) < float(score_threshold):
            continue
        rot = _matmul(r_eg, _matmul(r_le, rot))
        center = _apply(r_eg, center, ego2global_translation)
        vel = _apply(r_eg, _apply(r_le, [vx, vy, 0.0]))
        box = {"label": name, "score": min(max(float(score), 0.0), 1.0), "center": center,
               "size": [w, l, h], "yaw": matrix_yaw(rot), "velocity": [vel[0], vel[1]],
               "attribute": attribute_for(name, vel), "frame": "global"}
        if traj is not None:
            to_global = lambda p: _apply(r_eg, _apply(r_le, p, lidar2ego_translation), ego2global_translation)  # noqa: E731
            box["trajectories"] = {"modes": agent_trajectories(traj, (x, y), z + h * 0.5, to_global),
                                   "dt": PLAN_DT, "scores": None}
        out.append(box)
    return out


def convert_map_vectors(scores, labels, pts, lidar2ego_rotation, lidar2ego_translation,
                        map_classes=MAP_CLASSES, score_threshold=0.0):
    """Map head output (scores (N,), labels (N,), pts (N, P, 2) in the LiDAR BEV frame) -> ego-frame elements."""
    elements = []
    for score, label, line in zip(_as_list(scores), _as_list(labels), _as_list(pts)):
        name = STANDARD_MAP_LABELS.get(map_classes[int(label)])
        if name is None or float(score) < float(score_threshold):
            continue
        elements.append({"label": name, "score": min(max(float(score), 0.0), 1.0),
                         "points": lidar_bev_to_ego(line, lidar2ego_rotation, lidar2ego_translation),
                         "frame": "ego"})
    return elements


def select_command(ego_fut_cmd, override=None):
    """Index of the driving command: ``override`` if given, else the one-hot GT command (as simple_test_pts)."""
    if override is not None:
        return COMMANDS.index(override) if isinstance(override, str) else int(override)
    flat = [float(v) for v in _flatten(ego_fut_cmd)]
    if len(flat) < 3:
        raise ValueError("ego_fut_cmd must hold a one-hot of 3 commands, got %r" % (flat,))
    onehot = flat[:3]
    return max(range(3), key=lambda i: onehot[i])


def plan_waypoints(ego_fut_preds, command_index, lidar2ego_rotation):
    """Per-step LiDAR-frame offsets (modes x steps x 2) -> cumulative waypoints in ego axes for one command.

    VAD's target is the future LIDAR_TOP position in the current LiDAR frame; the schema's
    ``plan.waypoints`` keep that reference point (the LiDAR, not the ego origin) and only turn the
    axes by lidar2ego's yaw, which onlinemap/evaluation/planning.py undoes before scoring.
    """
    modes = _as_list(ego_fut_preds)
    steps = modes[command_index]
    acc_x, acc_y = 0.0, 0.0
    cumulative = []
    for dx, dy in steps:
        acc_x += float(dx)
        acc_y += float(dy)
        cumulative.append([acc_x, acc_y])
    return cumulative, lidar_bev_to_ego(cumulative, lidar2ego_rotation, (0.0, 0.0, 0.0), translate=False)


def convert_vad_outputs(result, sample_token, lidar2ego_rotation, lidar2ego_translation, ego2global_rotation,
                        ego2global_translation, class_names=CLASS_NAMES, map_classes=MAP_CLASSES,
                        det_score_threshold=DET_SCORE_THRESHOLD, map_score_threshold=0.0, command=None,
                        model="VAD"):
    """VAD's per-sample result -> the standard prediction (boxes global, map ego, plan ego).

    ``result`` is what ``VAD.simple_test`` puts under ``'pts_bbox'``: ``boxes_3d``
    (LiDARInstance3DBoxes or its (N, 9) tensor), ``scores_3d`` (N,), ``labels_3d`` (N,), ``trajs_3d``
    (N, 6 modes, 6 steps x 2: per-step offsets from each box centre, LiDAR frame), ``map_boxes_3d`` (M, 4), ``map_scores_3d`` (M,), ``map_labels_3d``
    (M,), ``map_pts_3d`` (M, 20, 2), ``ego_fut_preds`` (3, 6, 2), ``ego_fut_cmd`` (one-hot of 3,
    batch dims in front). The outer ``{'pts_bbox': ..., 'metric_results': ...}`` is accepted too.
    """
    if "pts_bbox" in result:
        result = result["pts_bbox"]
    dets = lidar_boxes_to_global(result["boxes_3d"], result["scores_3d"], result["labels_3d"], lidar2ego_rotation,
                                 lidar2ego_translation, ego2global_rotation, ego2global_translation,
                                 class_names=class_names, score_threshold=det_score_threshold,
                                 trajs=result.get("trajs_3d"))
    elements = convert_map_vectors(result["map_scores_3d"], result["map_labels_3d"], result["map_pts_3d"],
                                   lidar2ego_rotation, lidar2ego_translation, map_classes=map_classes,
                                   score_threshold=map_score_threshold)
    index = select_command(result["ego_fut_cmd"], command)
    lidar_waypoints, waypoints = plan_waypoints(result["ego_fut_preds"], index, lidar2ego_rotation)
    return {"sample_token": sample_token, "model": model, "detections_3d": dets, "map_elements": elements,
            "plan": {"waypoints": waypoints, "dt": PLAN_DT, "command": COMMANDS[index]},
            "extra": {"plan_lidar_frame": lidar_waypoints}}


def apply_caffe_img_norm(pipeline):
    """Set every NormalizeMultiviewImage in a pipeline config (nested 'transforms' too) to the caffe-style norm."""
    for step in pipeline:
        if step.get("type") == "NormalizeMultiviewImage":
            step.update({"mean": list(CAFFE_IMG_NORM["mean"]), "std": list(CAFFE_IMG_NORM["std"]),
                         "to_rgb": CAFFE_IMG_NORM["to_rgb"]})
        if "transforms" in step:
            apply_caffe_img_norm(step["transforms"])
    return pipeline


def strip_gt_work(pipeline):
    """Drop the LiDAR loading from a test pipeline config (``points`` only feeds VAD's GT metrics).

    Removes every ``LoadPointsFromFile`` step and the ``points`` key of every ``CustomCollect3D``
    (nested ``transforms`` too; CustomCollect3D raises KeyError on a missing key). The GT boxes,
    labels, attributes and ego futures stay: ``simple_test_pts`` indexes them before its metric calls.
    Returns the pipeline (changed in place).
    """
    pipeline[:] = [step for step in pipeline if step.get("type") != "LoadPointsFromFile"]
    for step in pipeline:
        if step.get("type") == "CustomCollect3D" and "points" in step.get("keys", ()):
            step["keys"] = [k for k in step["keys"] if k != "points"]
        if "transforms" in step:
            strip_gt_work(step["transforms"])
    return pipeline


def _no_metric(*args, **kwargs):
    """Stands in for VAD's GT metric methods: an empty metric dict (what metric_results then holds)."""
    return {}


def skip_gt_metrics(model):
    """Shadow VAD's GT metric methods on this model instance so simple_test_pts skips their work.

    Their results only go to ``metric_results``; the detections, map and plan are computed before
    them and are unchanged. ``assign_pred_to_gt_vip3d``'s result is only passed to the motion metric.
    """
    for name in GT_METRIC_METHODS:
        setattr(model, name, _no_metric)
    return model


# ---------------------------------------------------------------------------------------------------
# Adapter (runs inside the VAD env)
# ---------------------------------------------------------------------------------------------------

class Adapter(object):
    """VAD behind the harness protocol: load, prepare, forward, convert."""

    name = "VAD"

    def __init__(self, settings):
        self.settings = settings
        self.options = dict(DEFAULTS)
        self.options.update(settings.get("options") or {})
        self.device = settings.get("device") or "cuda:0"
        self.model = None
        self.dataset = None
        self.index = {}
        self.class_names = CLASS_NAMES
        self.map_classes = MAP_CLASSES
        self.previous = None

    def load(self):
        repo, config = lib.checkout_and_config(self.settings, self.name, DEFAULT_CONFIG)  # before the heavy imports
        from mmcv import Config
        from mmdet3d.datasets import build_dataset

        cfg = Config.fromfile(config)
        import_plugin(cfg, repo)  # before build_model (adapterlib): VAD registers into mmdet3d's registries

        dataroot = self.settings["dataroot"]
        test = cfg.data.test
        test.test_mode = True
        test.pop("samples_per_gpu", None)
        test.data_root = dataroot.rstrip("/") + "/"
        test.ann_file = self.options["info_file"] or os.path.join(dataroot, DEFAULT_INFO_FILE)
        test.map_ann_file = self.options["map_ann_file"] or os.path.join(dataroot, "nuscenes_map_anns_val.json")
        if self.options["caffe_img_norm"]:
            apply_caffe_img_norm(test.pipeline)
        if not self.options["gt_metrics"]:
            strip_gt_work(test.pipeline)
        lib.require_lidar_inputs(test.pipeline, dataroot, config)
        self.class_names = tuple(cfg.get("class_names", CLASS_NAMES))
        self.map_classes = tuple(cfg.get("map_classes", MAP_CLASSES))
        self.dataset = build_dataset(test)
        if not self.options["gt_metrics"]:
            self.dataset.is_vis_on_test = False   # prepare_test_data: no shapely map-GT vectorisation per sample
        for info in self.dataset.data_infos:
            rebase_info_paths(info, dataroot)
        self.index = {info["token"]: i for i, info in enumerate(self.dataset.data_infos)}

        self.model = lib.build_model_like_test_py(cfg, self.settings["checkpoint"], self.device, self.dataset)
        if not self.options["gt_metrics"]:
            skip_gt_metrics(self.model)

    def prepare(self, sample):
        idx = self.index.get(sample["token"])
        if idx is None:
            raise KeyError("sample %s is not in the VAD info file (%d samples)" % (sample["token"], len(self.index)))
        data = collate_to_device(self.dataset[idx], self.device)
        return {"data": data, "info": self.dataset.data_infos[idx], "reset": needs_state_reset(self.previous, sample),
                "sample": sample}

    def forward(self, inputs):
        import torch

        state = getattr(self.model, "prev_frame_info", None)
        if inputs["reset"] and state is not None:
            # forward_test resets only on a scene change; a skipped sample must not reuse prev_bev either.
            state["prev_bev"] = None
            state["scene_token"] = None
        self.previous = inputs["sample"]
        with torch.no_grad():
            result = self.model(return_loss=False, rescale=True, **inputs["data"])
        return {"result": result[0]["pts_bbox"], "info": inputs["info"]}

    def convert(self, raw, sample):
        info = raw["info"]
        return convert_vad_outputs(raw["result"], sample["token"], info["lidar2ego_rotation"],
                                   info["lidar2ego_translation"], info["ego2global_rotation"],
                                   info["ego2global_translation"], class_names=self.class_names,
                                   map_classes=self.map_classes,
                                   det_score_threshold=float(self.options["det_score_threshold"]),
                                   map_score_threshold=float(self.options["map_score_threshold"]),
                                   command=self.options["command"], model=self.name)


if __name__ == "__main__":
    import runpy
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(runpy.run_path(os.path.join(_here, "..", "..", "onlinemap", "harness", "standalone.py"))["main"](Adapter))
