"""StreamPETR adapter (exiawsh/StreamPETR, stack B: mmdet3d 1.0.0rc6, mmcv-full 1.6.0, flash-attn 0.2.2).

Design note. The repo's ``tools/test.py`` asserts on its non-distributed branch and only runs
``custom_multi_gpu_test`` under ``dist_test.sh``; this adapter avoids all of that. It builds the
model the way tools/test.py does up to the launcher (config -> plugin import -> build_dataset ->
build_model -> load_checkpoint), and feeds one sample at a time: ``prepare`` runs the repo's test
pipeline for the dataset index of the sample, collates it and moves it to the device with
``mmcv.parallel.scatter`` (what MMDataParallel does), ``forward`` makes the ``model(return_loss=False,
rescale=True, **data)`` call the test loop makes.

Streaming state. ``Petr3D.simple_test_pts`` (projects/mmdet3d_plugin/models/detectors/petr3d.py
@95f6470) compares ``img_metas[0]['scene_token']`` with ``self.prev_scene_token``: on a change it
sets ``prev_exists = 0`` and calls ``pts_bbox_head.reset_memory()``, otherwise the object-query memory
of the previous frame is propagated (ego-motion compensated with ``ego_pose``/``timestamp``). So frames
must arrive in scene order. The adapter additionally forces that reset (by clearing
``model.prev_scene_token``) when the harness skips frames inside a scene or restarts a scene, see
``stream_reset_needed``.

Conversion. The model returns ``[{'pts_bbox': {'boxes_3d', 'scores_3d', 'labels_3d'}}]`` with
``LiDARInstance3DBoxes`` in the **mmdet3d 1.0** LiDAR convention (tensor columns ``x, y, z_bottom,
l(x_size), w(y_size), h, yaw, vx, vy``; StreamPETRHead.get_bboxes moves z to the bottom,
projects/mmdet3d_plugin/models/dense_heads/streampetr_head.py@95f6470). mmdet3d v1.0.0rc6
``output_to_nusc_box`` reorders the dims ``[1, 0, 2]`` to nuScenes ``wlh`` and keeps the yaw;
``lidar_nusc_box_to_global`` then applies lidar2ego, drops boxes past the class range in the ego
frame and applies ego2global. CustomNuScenesDataset (projects/mmdet3d_plugin/datasets/nuscenes_dataset.py)
does not override ``_format_bbox``. The same math is reproduced below in pure functions.

Module-level imports are standard library only; Python 3.7 syntax.
"""
import math
import os
import sys

NAME = "StreamPETR"
DEFAULT_CONFIG = "projects/configs/StreamPETR/stream_petr_r50_flash_704_bs2_seq_428q_nui_60e.py"
# tools/create_data_nusc.py --extra-tag nuscenes2d output (docs/data_preparation.md); also a GitHub
# release asset of exiawsh/storage v1.0. The configs' data.test.ann_file points at it.
DEFAULT_INFO_FILE = "nuscenes2d_temporal_infos_val.pkl"
# class_names of every StreamPETR config (projects/configs/StreamPETR/*.py); labels_3d index this tuple.
CLASS_NAMES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle",
               "bicycle", "pedestrian", "traffic_cone")
# nuScenes detection_cvpr_2019 class_range (metres from the ego), used by _format_bbox to drop boxes.
CLASS_RANGE = {"car": 50.0, "truck": 50.0, "bus": 50.0, "trailer": 50.0, "construction_vehicle": 50.0,
               "pedestrian": 40.0, "motorcycle": 40.0, "bicycle": 40.0, "traffic_cone": 30.0, "barrier": 30.0}
# NuScenesDataset.DefaultAttribute (mmdet3d 0.17.1 and 1.0.0rc6 alike); "" -> null in our schema.
DEFAULT_ATTRIBUTE = {"car": "vehicle.parked", "pedestrian": "pedestrian.moving", "trailer": "vehicle.parked",
                     "truck": "vehicle.parked", "bus": "vehicle.moving", "motorcycle": "cycle.without_rider",
                     "construction_vehicle": "vehicle.parked", "bicycle": "cycle.without_rider",
                     "barrier": "", "traffic_cone": ""}
DEFAULTS = {"info_file": DEFAULT_INFO_FILE, "score_threshold": 0.0, "filter_range": True, "max_boxes": 500,
            "reset_on_gap": True}
# Which box convention this stack's LiDARInstance3DBoxes uses (see lidar_box_to_nuscenes).
BOX_CONVENTION = "mmdet3d-1.0"


# ----------------------------------------------------------------------------------------------
# pure conversion functions (no torch / mmcv needed; numpy only inside functions)
# ----------------------------------------------------------------------------------------------

def quaternion_matrix(q):
    """3x3 rotation matrix (nested tuples) of a nuScenes/pyquaternion [w, x, y, z] quaternion."""
    w, x, y, z = [float(v) for v in q]
    n = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
    w, x, y, z = w / n, x / n, y / n, z / n
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
            (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
            (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))


def _matmul(a, b):
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3))


def _apply(m, v):
    return [sum(m[i][k] * v[k] for k in range(3)) for i in range(3)]


def _rot_z(yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


def wrap_angle(a):
    """Angle in [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def box_tensor_rows(boxes_3d):
    """Rows of a LiDARInstance3DBoxes (``.tensor``), torch tensor, numpy array or nested list -> list of lists."""
    data = getattr(boxes_3d, "tensor", boxes_3d)
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    if hasattr(data, "tolist"):
        data = data.tolist()
    return [[float(v) for v in row] for row in data]


def _flat(values):
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if hasattr(values, "tolist"):
        values = values.tolist()
    return list(values)


def lidar_box_to_nuscenes(row, convention=BOX_CONVENTION):
    """One LiDAR box row -> (gravity centre, nuScenes wlh size, nuScenes-Box yaw, velocity), LiDAR frame.

    mmdet3d 0.17 (mmdet3d/datasets/nuscenes_dataset.py ``output_to_nusc_box`` @v0.17.1): dims are
    already ``w, l, h`` and the nuScenes yaw is ``-yaw - pi/2``. mmdet3d 1.0.0rc6: dims are
    ``l, w, h`` (reordered ``[1, 0, 2]``) and the yaw is used as is. In both, column 2 is the
    bottom z, so the gravity centre is ``z + h/2`` (h = column 5), and columns 7:9 are vx, vy.
    """
    x, y, z, d0, d1, h, yaw = row[:7]
    vx, vy = (row[7], row[8]) if len(row) >= 9 else (0.0, 0.0)
    if convention == "mmdet3d-0.17":
        size = [d0, d1, h]
        nus_yaw = -yaw - math.pi / 2.0
    elif convention == "mmdet3d-1.0":
        size = [d1, d0, h]
        nus_yaw = yaw
    else:
        raise ValueError("unknown box convention %r" % (convention,))
    return [x, y, z + 0.5 * h], size, nus_yaw, [vx, vy, 0.0]


def lidar_to_global(center, yaw, velocity, calib):
    """Move a nuScenes-convention box from the LiDAR frame to ego and then global.

    ``calib`` holds the info-file keys ``lidar2ego_rotation`` / ``lidar2ego_translation`` /
    ``ego2global_rotation`` / ``ego2global_translation`` (quaternions [w, x, y, z]).
    Returns ``(center_ego, center_global, yaw_global, velocity_global)``; velocity is rotated like
    nuScenes ``Box.rotate`` does (both rotations, z component kept during the rotation).
    """
    r_l2e = quaternion_matrix(calib["lidar2ego_rotation"])
    r_e2g = quaternion_matrix(calib["ego2global_rotation"])
    t_l2e = [float(v) for v in calib["lidar2ego_translation"]]
    t_e2g = [float(v) for v in calib["ego2global_translation"]]
    c_ego = [a + b for a, b in zip(_apply(r_l2e, center), t_l2e)]
    c_glob = [a + b for a, b in zip(_apply(r_e2g, c_ego), t_e2g)]
    rot = _matmul(r_e2g, _matmul(r_l2e, _rot_z(yaw)))
    # nuScenes quaternion_yaw: heading of the rotated +x axis projected on the ground plane
    g_yaw = math.atan2(rot[1][0], rot[0][0])
    v_glob = _apply(r_e2g, _apply(r_l2e, velocity))
    return c_ego, c_glob, g_yaw, v_glob


def nuscenes_attribute(name, velocity_xy):
    """The attribute mmdet3d's NuScenesDataset._format_bbox assigns (speed > 0.2 m/s = moving)."""
    speed = math.sqrt(velocity_xy[0] ** 2 + velocity_xy[1] ** 2)
    if speed > 0.2:
        if name in ("car", "construction_vehicle", "bus", "truck", "trailer"):
            attr = "vehicle.moving"
        elif name in ("bicycle", "motorcycle"):
            attr = "cycle.with_rider"
        else:
            attr = DEFAULT_ATTRIBUTE[name]
    else:
        if name == "pedestrian":
            attr = "pedestrian.standing"
        elif name == "bus":
            attr = "vehicle.stopped"
        else:
            attr = DEFAULT_ATTRIBUTE[name]
    return attr or None


def unwrap_result(raw):
    """``[{'pts_bbox': {...}}]`` (what the detector returns), ``{'pts_bbox': {...}}`` or the inner dict."""
    if isinstance(raw, (list, tuple)):
        if len(raw) != 1:
            raise ValueError("expected the result of one sample (batch 1), got %d" % len(raw))
        raw = raw[0]
    if "pts_bbox" in raw:
        raw = raw["pts_bbox"]
    return raw


def convert_detections(raw, calib, sample_token, model=NAME, options=None, convention=BOX_CONVENTION,
                       class_names=CLASS_NAMES):
    """Raw detector output of one sample -> the standard prediction (boxes in the global frame)."""
    opts = dict(DEFAULTS)
    opts.update(options or {})
    result = unwrap_result(raw)
    rows = box_tensor_rows(result["boxes_3d"])
    scores = [float(s) for s in _flat(result["scores_3d"])]
    labels = [int(l) for l in _flat(result["labels_3d"])]
    if not (len(rows) == len(scores) == len(labels)):
        raise ValueError("boxes_3d, scores_3d and labels_3d differ in length: %d, %d, %d"
                         % (len(rows), len(scores), len(labels)))
    dets = []
    for row, score, label in zip(rows, scores, labels):
        if score < float(opts["score_threshold"]):
            continue
        name = class_names[label]
        center, size, yaw, vel = lidar_box_to_nuscenes(row, convention)
        c_ego, c_glob, g_yaw, v_glob = lidar_to_global(center, yaw, vel, calib)
        if opts["filter_range"] and math.hypot(c_ego[0], c_ego[1]) > CLASS_RANGE[name]:
            continue
        dets.append({"label": name, "score": min(max(score, 0.0), 1.0), "center": c_glob,
                     "size": [max(s, 1e-3) for s in size], "yaw": wrap_angle(g_yaw),
                     "velocity": [v_glob[0], v_glob[1]], "attribute": nuscenes_attribute(name, v_glob),
                     "frame": "global"})
    dets.sort(key=lambda d: -d["score"])
    if opts.get("max_boxes"):
        dets = dets[:int(opts["max_boxes"])]
    return {"sample_token": sample_token, "model": model, "detections_3d": dets}


def calib_from_info(info):
    """The four transforms ``convert_detections`` needs, from an mmdet3d nuScenes info dict."""
    return {k: [float(v) for v in info[k]] for k in ("lidar2ego_rotation", "lidar2ego_translation",
                                                     "ego2global_rotation", "ego2global_translation")}


def remap_data_path(path, dataroot):
    """Point an image path stored in an info file (often ``./data/nuscenes/samples/...``) at ``dataroot``."""
    norm = str(path).replace("\\", "/")
    for marker in ("samples/", "sweeps/"):
        if norm.startswith(marker):
            return os.path.join(dataroot, norm)
        pos = norm.rfind("/" + marker)
        if pos >= 0:
            return os.path.join(dataroot, norm[pos + 1:])
    if os.path.isabs(norm):
        return norm
    return os.path.join(dataroot, norm)


def token_index(data_infos):
    """sample token -> dataset index (infos are sorted by timestamp in NuScenesDataset.load_annotations)."""
    return {info["token"]: i for i, info in enumerate(data_infos)}


def plugin_module_name(cfg_dict, config_path, repo):
    """The module tools/test.py imports for ``plugin=True`` configs (plugin_dir, else the config's dir)."""
    if not cfg_dict.get("plugin"):
        return None
    plugin_dir = cfg_dict.get("plugin_dir")
    if plugin_dir:
        rel = os.path.dirname(plugin_dir)
    else:
        rel = os.path.relpath(os.path.dirname(os.path.abspath(config_path)), repo)
    return ".".join(p for p in rel.replace("\\", "/").split("/") if p and p != ".")


def stream_reset_needed(prev, sample, reset_on_gap=True):
    """Whether the streaming memory must be cleared before running ``sample``.

    ``prev`` is the stream state after the previous sample (``stream_state``), or None before the
    first one. The model itself resets when ``scene_token`` changes (petr3d.py simple_test_pts); we
    also reset when the same scene is not continued frame by frame (a skipped or repeated
    ``index_in_scene``), because the propagated queries would then come from a non-adjacent frame,
    which the released models never saw in evaluation order.
    """
    if prev is None:
        return True
    if sample.get("scene_token") != prev.get("scene_token"):
        return True
    if reset_on_gap:
        here, before = sample.get("index_in_scene"), prev.get("index_in_scene")
        if here is not None and before is not None and int(here) != int(before) + 1:
            return True
    return False


def stream_state(sample):
    """What ``stream_reset_needed`` remembers of a sample."""
    return {"scene_token": sample.get("scene_token"), "index_in_scene": sample.get("index_in_scene")}


# ----------------------------------------------------------------------------------------------
# the harness protocol
# ----------------------------------------------------------------------------------------------

def _resolve(repo, path):
    if not path:
        return path
    if os.path.isabs(path):
        return path
    cand = os.path.join(repo, path)
    return cand if os.path.exists(cand) else os.path.abspath(path)


def _device_ids(device):
    if not device or device == "cpu":
        return [-1]
    if ":" in device:
        return [int(device.split(":", 1)[1])]
    return [0]


class Adapter(object):
    """StreamPETR behind the harness protocol (single GPU, non-distributed, streaming memory kept)."""

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
        self.stream = None

    def load(self):
        import importlib

        import torch
        from mmcv import Config
        from mmcv.runner import load_checkpoint, wrap_fp16_model

        if self.repo not in sys.path:
            sys.path.insert(0, self.repo)
        config = _resolve(self.repo, self.settings.get("config") or DEFAULT_CONFIG)
        cfg = Config.fromfile(config)
        if cfg.get("custom_imports", None):
            from mmcv.utils import import_modules_from_strings
            import_modules_from_strings(**cfg["custom_imports"])
        module = plugin_module_name(cfg, config, self.repo)
        if module:
            importlib.import_module(module)

        from mmdet3d.datasets import build_dataset
        from mmdet3d.models import build_model

        dataroot = os.path.abspath(self.settings["dataroot"])
        cfg.model.pretrained = None
        cfg.data.test.test_mode = True
        cfg.data.test.data_root = dataroot + os.sep
        cfg.data.test.ann_file = _resolve(dataroot, self.options["info_file"])
        self.dataset = build_dataset(cfg.data.test)
        for info in self.dataset.data_infos:
            for cam in info.get("cams", {}).values():
                cam["data_path"] = remap_data_path(cam["data_path"], dataroot)
        self.index = token_index(self.dataset.data_infos)

        model = build_model(cfg.model, test_cfg=cfg.get("test_cfg"))
        if cfg.get("fp16", None) is not None:
            wrap_fp16_model(model)
        checkpoint = self.settings.get("checkpoint")
        if not checkpoint:
            raise ValueError("StreamPETR needs settings['checkpoint'] (exiawsh/storage v1.0 release asset)")
        load_checkpoint(model, _resolve(self.repo, checkpoint), map_location="cpu")
        self.torch = torch
        self.model = model.to(torch.device(self.device)).eval()

    def prepare(self, sample):
        from mmcv.parallel import collate, scatter

        idx = self.index.get(sample["token"])
        if idx is None:
            raise KeyError("sample %s is not in %s" % (sample["token"], self.options["info_file"]))
        reset = stream_reset_needed(self.stream, sample, bool(self.options["reset_on_gap"]))
        self.stream = stream_state(sample)
        batch = collate([self.dataset[idx]], samples_per_gpu=1)
        return {"data": scatter(batch, _device_ids(self.device))[0], "reset": reset}

    def forward(self, inputs):
        if inputs["reset"]:
            # the model compares img_metas scene_token with prev_scene_token; None never matches,
            # so simple_test_pts takes its own reset path (prev_exists = 0, reset_memory()).
            self.model.prev_scene_token = None
        with self.torch.no_grad():
            return self.model(return_loss=False, rescale=True, **inputs["data"])

    def convert(self, raw, sample):
        info = self.dataset.data_infos[self.index[sample["token"]]]
        return convert_detections(raw, calib_from_info(info), sample["token"], NAME, self.options)


if __name__ == "__main__":
    import runpy
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(runpy.run_path(os.path.join(_here, "..", "..", "onlinemap", "harness", "standalone.py"))["main"](Adapter))
