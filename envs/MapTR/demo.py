"""MapTR adapter: hustvl/MapTR inside its own conda env (mmdet3d 0.17.2 vendored, mmcv-full 1.4.0, torch 1.9.1).

Design note. The model is built the way the repo's ``tools/test.py`` builds it (plugin import from
``cfg.plugin_dir``, ``pretrained = None``, ``wrap_fp16_model`` when the config has ``fp16``,
``load_checkpoint`` on CPU), but on the single-process path: upstream's non-distributed branch is
``assert False``, so we never go through ``dist_test_map.sh``; we collate and scatter one sample
ourselves (what ``MMDataParallel`` would do) and call the detector's ``forward_test``.

Frames (checked against hustvl/MapTR@a6872d8d):
* The head decodes ``pts`` in the BEV patch the map GT is cut from. ``VectorizedLocalMap`` cuts that
  patch around the *LiDAR* pose: centre = lidar2global translation, angle = yaw of lidar2global
  (``nuscenes_map_dataset.py`` ``vectormap_pipeline`` / ``gen_vectorized_samples``), so x points to
  the LiDAR's x (the car's right) and y forward, +-15 m x +-30 m (``point_cloud_range``).
* The standard prediction wants map polylines in the ego frame (x forward, y left). We apply the 2-D
  part of lidar2ego: the yaw of its rotation and its x/y translation (the patch itself ignores roll
  and pitch, so a yaw-only transform is exact for it).
* Labels follow the config's ``map_classes`` order (``['divider', 'ped_crossing', 'boundary']``;
  ``VectorizedLocalMap.CLASS2LABEL``: road/lane dividers -> 0, ped_crossing -> 1, contours -> 2).

Module-level imports are standard library only (the harness loads this file under any Python 3.7+);
torch, numpy and mmcv are imported inside the functions that need them.
"""
import math
import os
import sys

DEFAULT_CONFIG = "projects/configs/maptr/maptr_tiny_r50_24e.py"
DEFAULT_INFO_FILE = "nuscenes_infos_temporal_val.pkl"
# The repo's class order (config ``map_classes``) and how each maps onto the standard labels.
MAP_CLASSES = ("divider", "ped_crossing", "boundary")
STANDARD_MAP_LABELS = {"divider": "divider", "ped_crossing": "ped_crossing", "boundary": "boundary",
                       "centerline": "centerline"}
DEFAULTS = {"info_file": None, "score_threshold": 0.0, "map_ann_file": None}


# ---------------------------------------------------------------------------------------------------
# Pure conversion functions (no torch / mmcv needed: they take tensors or arrays and use tolist()).
# ---------------------------------------------------------------------------------------------------

def quaternion_matrix(q):
    """3x3 rotation matrix (nested tuples) of a nuScenes [w, x, y, z] quaternion (normalised first)."""
    w, x, y, z = [float(v) for v in q]
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
            (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
            (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))


def matrix_yaw(r):
    """Heading of a rotation matrix: the angle of its rotated +x axis in the x-y plane (as devkit quaternion_yaw)."""
    return math.atan2(r[1][0], r[0][0])


def _as_list(value):
    """tolist() of a torch tensor / numpy array, or the value itself when it is already a list."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value)


def lidar_bev_to_ego(points, lidar2ego_rotation, lidar2ego_translation):
    """Move [[x, y], ...] from the LiDAR BEV frame to the ego BEV frame (yaw + x/y shift of lidar2ego)."""
    yaw = matrix_yaw(quaternion_matrix(lidar2ego_rotation))
    c, s = math.cos(yaw), math.sin(yaw)
    tx, ty = float(lidar2ego_translation[0]), float(lidar2ego_translation[1])
    return [[c * x - s * y + tx, s * x + c * y + ty] for x, y in points]


def convert_maptr_outputs(result, sample_token, lidar2ego_rotation, lidar2ego_translation,
                          map_classes=MAP_CLASSES, score_threshold=0.0, model="MapTR"):
    """MapTR's per-sample result -> the standard prediction (map polylines in the ego frame).

    ``result`` is what ``MapTR.simple_test`` puts under ``'pts_bbox'`` (``pred2result``):
    ``boxes_3d`` (N, 4) xyxy, ``scores_3d`` (N,) sigmoid scores, ``labels_3d`` (N,) indices into
    ``map_classes``, ``pts_3d`` (N, P, 2) metres in the LiDAR BEV frame; N <= max_num (50) after the
    ``post_center_range`` filter of ``MapTRNMSFreeCoder``. The outer ``{'pts_bbox': ...}`` is accepted too.
    """
    if "pts_bbox" in result:
        result = result["pts_bbox"]
    scores = _as_list(result["scores_3d"])
    labels = _as_list(result["labels_3d"])
    pts = _as_list(result["pts_3d"])
    elements = []
    skipped = 0
    for score, label, line in zip(scores, labels, pts):
        name = STANDARD_MAP_LABELS.get(map_classes[int(label)])
        if name is None:
            skipped += 1
            continue
        if float(score) < float(score_threshold):
            continue
        elements.append({"label": name, "score": min(max(float(score), 0.0), 1.0),
                         "points": lidar_bev_to_ego(line, lidar2ego_rotation, lidar2ego_translation),
                         "frame": "ego"})
    pred = {"sample_token": sample_token, "model": model, "map_elements": elements}
    if skipped:
        pred["extra"] = {"skipped_unknown_class": skipped}
    return pred


def rebase_nuscenes_path(path, dataroot):
    """Point an info-file path (``./data/nuscenes/samples/...``) at ``dataroot`` when it does not exist as is."""
    if os.path.isabs(path) and os.path.exists(path):
        return path
    norm = path.replace("\\", "/")
    for marker in ("samples/", "sweeps/"):
        if norm.startswith(marker):
            return os.path.join(dataroot, norm)
        pos = norm.find("/" + marker)
        if pos >= 0:
            return os.path.join(dataroot, norm[pos + 1:])
    return path


def rebase_info_paths(info, dataroot):
    """Rewrite the image / LiDAR / sweep paths of one info dict in place (what the repo's pipeline reads)."""
    if "lidar_path" in info:
        info["lidar_path"] = rebase_nuscenes_path(info["lidar_path"], dataroot)
    for cam in (info.get("cams") or {}).values():
        cam["data_path"] = rebase_nuscenes_path(cam["data_path"], dataroot)
    for sweep in info.get("sweeps") or []:
        if "data_path" in sweep:
            sweep["data_path"] = rebase_nuscenes_path(sweep["data_path"], dataroot)
    return info


def needs_state_reset(previous, sample):
    """True when temporal state must be dropped: new scene, or not the next sample of the same scene."""
    if previous is None:
        return True
    return (previous.get("scene_token") != sample.get("scene_token")
            or previous.get("index_in_scene", -2) + 1 != sample.get("index_in_scene"))


# ---------------------------------------------------------------------------------------------------
# Adapter (runs inside the MapTR env)
# ---------------------------------------------------------------------------------------------------

def import_plugin(cfg, repo):
    """Import the repo's plugin package the way tools/test.py does (registries fill on import)."""
    import importlib

    if repo not in sys.path:
        sys.path.insert(0, repo)
    if not cfg.get("plugin", False):
        return None
    plugin_dir = cfg.get("plugin_dir", None)
    if plugin_dir is None:
        raise ValueError("config sets plugin = True but no plugin_dir")
    module = os.path.dirname(plugin_dir.rstrip("/") + "/").replace("/", ".")
    return importlib.import_module(module)


def build_test_dataset(cfg, dataroot, info_path, map_ann_file):
    """cfg.data.test with data_root / ann_file pointed at our dataroot, built by mmdet3d's build_dataset."""
    from mmdet3d.datasets import build_dataset

    test = cfg.data.test
    test.test_mode = True
    test.pop("samples_per_gpu", None)
    test.data_root = dataroot.rstrip("/") + "/"
    test.ann_file = info_path
    if "map_ann_file" in test:
        test.map_ann_file = map_ann_file
    dataset = build_dataset(test)
    for info in dataset.data_infos:
        rebase_info_paths(info, dataroot)
    return dataset


def build_model_from_cfg(cfg, checkpoint, device):
    """build_model + fp16 wrap + checkpoint, as tools/test.py, then move to ``device`` in eval mode."""
    from mmcv.runner import load_checkpoint, wrap_fp16_model
    from mmdet3d.models import build_model

    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    model = build_model(cfg.model, test_cfg=cfg.get("test_cfg"))
    if cfg.get("fp16", None) is not None:
        wrap_fp16_model(model)
    load_checkpoint(model, checkpoint, map_location="cpu")
    return model.to(device).eval()


def collate_to_device(item, device):
    """collate + scatter of one pipeline output, as MMDataParallel does for one GPU (or the CPU)."""
    from mmcv.parallel import collate, scatter

    data = collate([item], samples_per_gpu=1)
    target = [-1]
    if str(device).startswith("cuda"):
        import torch
        target = [torch.device(device).index or 0]
    return scatter(data, target)[0]


class Adapter(object):
    """MapTR behind the harness protocol: load, prepare, forward, convert."""

    name = "MapTR"

    def __init__(self, settings):
        self.settings = settings
        self.options = dict(DEFAULTS)
        self.options.update(settings.get("options") or {})
        self.device = settings.get("device") or "cuda:0"
        self.model = None
        self.dataset = None
        self.index = {}
        self.map_classes = MAP_CLASSES
        self.previous = None

    def _path_in_repo(self, path):
        return path if os.path.isabs(path) else os.path.join(self.settings["repo"], path)

    def load(self):
        from mmcv import Config

        repo = self.settings.get("repo")
        if not repo or not os.path.isdir(repo):
            raise RuntimeError("settings['repo'] must be the MapTR checkout, got %r" % (repo,))
        if not self.settings.get("checkpoint"):
            raise RuntimeError("settings['checkpoint'] is required (model.toml [checkpoint])")
        cfg = Config.fromfile(self._path_in_repo(self.settings.get("config") or DEFAULT_CONFIG))
        import_plugin(cfg, repo)
        dataroot = self.settings["dataroot"]
        info_path = self.options["info_file"] or os.path.join(dataroot, DEFAULT_INFO_FILE)
        map_ann = self.options["map_ann_file"] or os.path.join(dataroot, "nuscenes_map_anns_val.json")
        self.map_classes = tuple(cfg.get("map_classes", MAP_CLASSES))
        self.dataset = build_test_dataset(cfg, dataroot, info_path, map_ann)
        self.index = {info["token"]: i for i, info in enumerate(self.dataset.data_infos)}
        self.model = build_model_from_cfg(cfg, self.settings["checkpoint"], self.device)

    def prepare(self, sample):
        idx = self.index.get(sample["token"])
        if idx is None:
            raise KeyError("sample %s is not in the info file (%d samples); MapTR infos cover one split"
                           % (sample["token"], len(self.index)))
        data = collate_to_device(self.dataset[idx], self.device)
        return {"data": data, "info": self.dataset.data_infos[idx], "reset": needs_state_reset(self.previous, sample),
                "sample": sample}

    def forward(self, inputs):
        import torch

        info = getattr(self.model, "prev_frame_info", None)
        if inputs["reset"] and info is not None:
            # forward_test only resets on a scene change; a skipped sample must not reuse prev_bev either.
            info["prev_bev"] = None
            info["scene_token"] = None
        self.previous = inputs["sample"]
        with torch.no_grad():
            result = self.model(return_loss=False, rescale=True, **inputs["data"])
        return {"result": result[0]["pts_bbox"], "info": inputs["info"]}

    def convert(self, raw, sample):
        info = raw["info"]
        return convert_maptr_outputs(raw["result"], sample["token"], info["lidar2ego_rotation"],
                                     info["lidar2ego_translation"], map_classes=self.map_classes,
                                     score_threshold=float(self.options["score_threshold"]), model=self.name)


if __name__ == "__main__":
    import runpy
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(runpy.run_path(os.path.join(_here, "..", "..", "onlinemap", "harness", "standalone.py"))["main"](Adapter))
