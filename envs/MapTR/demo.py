"""MapTR adapter: hustvl/MapTR inside its own conda env (mmdet3d 0.17.2 vendored, mmcv-full 1.4.0, torch 1.9.1).

Design note. The model is built the way the repo's ``tools/test.py`` builds it (plugin import from
``cfg.plugin_dir``, ``pretrained = None``, ``train_cfg = None``, ``wrap_fp16_model`` when the config
has ``fp16`` (CUDA only), ``load_checkpoint`` on CPU, ``CLASSES`` from the checkpoint meta), but on
the single-process path: upstream's non-distributed branch is ``assert False``, so we never go
through ``dist_test_map.sh``; we collate and scatter one sample ourselves (what ``MMDataParallel``
would do; unwrapped on the CPU) and call the detector's ``forward_test``.

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


def _adapterlib():
    """envs/_shared/onlinemap_adapterlib.py, the stdlib-only helpers shared by the adapters."""
    import importlib  # inside a function: this file's module-level imports stay the plain stdlib ones
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_shared"))
    return importlib.import_module("onlinemap_adapterlib")


lib = _adapterlib()

# Shared with VAD (envs/_shared/onlinemap_adapterlib.py); re-exported under the names used here.
quaternion_matrix = lib.quaternion_matrix
matrix_yaw = lib.matrix_yaw
rebase_nuscenes_path = lib.rebase_nuscenes_path
rebase_info_paths = lib.rebase_info_paths
needs_state_reset = lib.needs_state_reset
import_plugin = lib.import_plugin
collate_to_device = lib.collate_to_device

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


# ---------------------------------------------------------------------------------------------------
# Adapter (runs inside the MapTR env)
# ---------------------------------------------------------------------------------------------------

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


def build_model_from_cfg(cfg, checkpoint, device, dataset=None):
    """build_model + fp16 wrap (CUDA only) + checkpoint + CLASSES, as tools/test.py, on ``device`` in eval mode."""
    return lib.build_model_like_test_py(cfg, checkpoint, device, dataset)


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

    def load(self):
        repo, config = lib.checkout_and_config(self.settings, self.name, DEFAULT_CONFIG)  # before the heavy imports
        from mmcv import Config

        cfg = Config.fromfile(config)
        import_plugin(cfg, repo)
        dataroot = self.settings["dataroot"]
        info_path = self.options["info_file"] or os.path.join(dataroot, DEFAULT_INFO_FILE)
        map_ann = self.options["map_ann_file"] or os.path.join(dataroot, "nuscenes_map_anns_val.json")
        self.map_classes = tuple(cfg.get("map_classes", MAP_CLASSES))
        lib.require_lidar_inputs(cfg.data.test.pipeline, dataroot, config)   # the fusion config reads sweeps
        self.dataset = build_test_dataset(cfg, dataroot, info_path, map_ann)
        self.index = {info["token"]: i for i, info in enumerate(self.dataset.data_infos)}
        self.model = build_model_from_cfg(cfg, self.settings["checkpoint"], self.device, self.dataset)

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
