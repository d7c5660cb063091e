"""StreamPETR adapter (exiawsh/StreamPETR, stack B: mmdet3d 1.0.0rc6, mmcv-full 1.6.0, flash-attn 0.2.2).

Design note. The repo's ``tools/test.py`` asserts on its non-distributed branch and only runs
``custom_multi_gpu_test`` under ``dist_test.sh``; this adapter avoids all of that. It builds the
model the way tools/test.py does up to the launcher (config -> plugin import -> build_dataset ->
build_model -> load_checkpoint), and feeds one sample at a time: ``prepare`` runs the repo's test
pipeline for the dataset index of the sample, collates it and moves it to the device with
``mmcv.parallel.scatter`` (what MMDataParallel does; unwrapped on the CPU, see
``adapterlib.collate_to_device``), ``forward`` makes the ``model(return_loss=False,
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
does not override ``_format_bbox``. The same math is reproduced in pure functions (shared with PETR in
envs/_shared/onlinemap_adapterlib.py).

Module-level imports are standard library only; Python 3.7 syntax.
"""
import os
import sys


def _adapterlib():
    """envs/_shared/onlinemap_adapterlib.py, the stdlib-only helpers shared by the adapters."""
    import importlib  # inside a function: this file's module-level imports stay the plain stdlib ones
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_shared"))
    return importlib.import_module("onlinemap_adapterlib")


lib = _adapterlib()

NAME = "StreamPETR"
DEFAULT_CONFIG = "projects/configs/StreamPETR/stream_petr_r50_flash_704_bs2_seq_428q_nui_60e.py"
# tools/create_data_nusc.py --extra-tag nuscenes2d output (docs/data_preparation.md); also a GitHub
# release asset of exiawsh/storage v1.0. The configs' data.test.ann_file points at it.
DEFAULT_INFO_FILE = "nuscenes2d_temporal_infos_val.pkl"
# class_names of every StreamPETR config (projects/configs/StreamPETR/*.py); labels_3d index this tuple.
CLASS_NAMES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle",
               "bicycle", "pedestrian", "traffic_cone")
# nuScenes detection_cvpr_2019 class_range and NuScenesDataset.DefaultAttribute (shared constants).
CLASS_RANGE = lib.NUSCENES_CLASS_RANGE
DEFAULT_ATTRIBUTE = lib.NUSCENES_DEFAULT_ATTRIBUTE
DEFAULTS = {"info_file": DEFAULT_INFO_FILE, "score_threshold": 0.0, "filter_range": True, "max_boxes": 500,
            "reset_on_gap": True}
# Which box convention this stack's LiDARInstance3DBoxes uses (see lidar_box_to_nuscenes).
BOX_CONVENTION = "mmdet3d-1.0"


# ----------------------------------------------------------------------------------------------
# pure conversion functions (no torch / mmcv needed). The math is shared with PETR in
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
        import torch

        self.model, self.dataset, self.index = lib.build_mmdet3d_detector(
            self.repo, self.settings.get("config") or DEFAULT_CONFIG, self.settings["dataroot"],
            self.options["info_file"], self.settings.get("checkpoint"), self.device,
            "StreamPETR needs settings['checkpoint'] (exiawsh/storage v1.0 release asset)")
        self.torch = torch

    def prepare(self, sample):
        idx = self.index.get(sample["token"])
        if idx is None:
            raise KeyError("sample %s is not in %s" % (sample["token"], self.options["info_file"]))
        reset = stream_reset_needed(self.stream, sample, bool(self.options["reset_on_gap"]))
        self.stream = stream_state(sample)
        return {"data": lib.collate_to_device(self.dataset[idx], self.device), "reset": reset}

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
