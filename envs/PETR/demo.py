"""PETR adapter (megvii-research/PETR, stack A: mmdet3d 0.17.1, mmcv-full 1.4.0, torch 1.9 cu111).

Design note. The model is built the way the repo's ``tools/test.py`` does on its ``--launcher none``
path (config -> plugin import -> ``build_dataset(cfg.data.test)`` -> ``build_model`` ->
``load_checkpoint``), without ``MMDataParallel`` and without any distributed code: ``prepare`` runs
the repo's own test pipeline for one dataset index, collates it and moves it to the device with
``mmcv.parallel.scatter`` (what ``MMDataParallel`` does for one GPU; on the CPU the DataContainers
are unwrapped instead, as mmdet's ``inference_detector`` does: ``adapterlib.collate_to_device``);
``forward`` is the model call ``single_gpu_test`` makes.

The conversion to the standard prediction is done here, in pure functions, instead of calling the
dataset's ``_format_bbox``: the model returns ``[{'pts_bbox': {'boxes_3d', 'scores_3d', 'labels_3d'}}]``
with ``LiDARInstance3DBoxes`` in the **mmdet3d 0.17** LiDAR convention (tensor columns
``x, y, z_bottom, w, l, h, yaw, vx, vy``; PETRHead.get_bboxes moves z to the bottom,
projects/mmdet3d_plugin/models/dense_heads/petr_head.py@f7525f9). mmdet3d v0.17.1
``output_to_nusc_box`` keeps the dims as nuScenes ``wlh`` and turns the yaw into ``-yaw - pi/2``;
``lidar_nusc_box_to_global`` rotates/translates by lidar2ego, drops boxes beyond the class range in
the ego frame, then rotates/translates by ego2global (velocity rotated with the box, as nuScenes
``Box.rotate`` does). The same math is reproduced in pure functions (envs/_shared/onlinemap_adapterlib.py).

Module-level imports are standard library only (the harness loads this file in the model env
before torch is imported); Python 3.7 syntax.
"""
import os
import sys


def _adapterlib():
    """envs/_shared/onlinemap_adapterlib.py, the stdlib-only helpers shared by the adapters."""
    import importlib  # inside a function: this file's module-level imports stay the plain stdlib ones
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_shared"))
    return importlib.import_module("onlinemap_adapterlib")


lib = _adapterlib()

NAME = "PETR"
DEFAULT_CONFIG = "projects/configs/petr/petr_vovnet_gridmask_p4_800x320.py"
# mmdet3d v0.17.1 tools/create_data.py output; PETRv1 test configs inherit it from
# mmdetection3d/configs/_base_/datasets/nus-3d.py (data/nuscenes/nuscenes_infos_val.pkl).
DEFAULT_INFO_FILE = "nuscenes_infos_val.pkl"
# class_names of every PETR config (projects/configs/petr/*.py); labels_3d index this tuple.
CLASS_NAMES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle",
               "bicycle", "pedestrian", "traffic_cone")
# nuScenes detection_cvpr_2019 class_range and NuScenesDataset.DefaultAttribute (shared constants).
CLASS_RANGE = lib.NUSCENES_CLASS_RANGE
DEFAULT_ATTRIBUTE = lib.NUSCENES_DEFAULT_ATTRIBUTE
DEFAULTS = {"info_file": DEFAULT_INFO_FILE, "score_threshold": 0.0, "filter_range": True, "max_boxes": 500}
# Which box convention this stack's LiDARInstance3DBoxes uses (see lidar_box_to_nuscenes).
BOX_CONVENTION = "mmdet3d-0.17"


# ----------------------------------------------------------------------------------------------
# pure conversion functions (no torch / mmcv needed). The math is shared with StreamPETR in
# envs/_shared/onlinemap_adapterlib.py; this adapter binds its BOX_CONVENTION, NAME and DEFAULTS.
# ----------------------------------------------------------------------------------------------

quaternion_matrix = lib.quaternion_matrix
wrap_angle = lib.wrap_angle
box_tensor_rows = lib.box_tensor_rows
lidar_to_global = lib.lidar_to_global
nuscenes_attribute = lib.nuscenes_attribute
unwrap_result = lib.unwrap_result
calib_from_info = lib.calib_from_info


def lidar_box_to_nuscenes(row, convention=BOX_CONVENTION):
    """One LiDAR box row -> (gravity centre, nuScenes wlh size, nuScenes-Box yaw, velocity), LiDAR frame."""
    return lib.lidar_box_to_nuscenes(row, convention)


def convert_detections(raw, calib, sample_token, model=NAME, options=None, convention=BOX_CONVENTION,
                       class_names=CLASS_NAMES):
    """Raw detector output of one sample -> the standard prediction (boxes in the global frame)."""
    return lib.convert_detections(raw, calib, sample_token, model, options, convention, class_names, DEFAULTS)


# ----------------------------------------------------------------------------------------------
# the harness protocol
# ----------------------------------------------------------------------------------------------

class Adapter(object):
    """PETR behind the harness protocol (single GPU, non-distributed)."""

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

        self.model, self.dataset, self.index = lib.build_mmdet3d_detector(
            self.repo, self.settings.get("config") or DEFAULT_CONFIG, self.settings["dataroot"],
            self.options["info_file"], self.settings.get("checkpoint"), self.device,
            "PETR needs settings['checkpoint'] (weights from the README's Google Drive links)")
        self.torch = torch

    def prepare(self, sample):
        idx = self.index.get(sample["token"])
        if idx is None:
            raise KeyError("sample %s is not in %s" % (sample["token"], self.options["info_file"]))
        return lib.collate_to_device(self.dataset[idx], self.device)

    def forward(self, inputs):
        with self.torch.no_grad():
            return self.model(return_loss=False, rescale=True, **inputs)

    def convert(self, raw, sample):
        info = self.dataset.data_infos[self.index[sample["token"]]]
        return convert_detections(raw, calib_from_info(info), sample["token"], NAME, self.options)


if __name__ == "__main__":
    import runpy
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(runpy.run_path(os.path.join(_here, "..", "..", "onlinemap", "harness", "standalone.py"))["main"](Adapter))
