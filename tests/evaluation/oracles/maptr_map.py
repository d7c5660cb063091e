"""MapTR's own map evaluation and GT vectorisation (runs in the oracle venv, shapely 1.8.5).

usage: maptr_map.py MAPTR_ROOT metric IN.json OUT.json
         IN: {"gen_results": [{"vectors": [{"pts", "type", "confidence_level"}]}], "annotations": [{"vectors":
              [{"pts", "type"}]}], "classes": [...]}; OUT: {"cls_aps": [[ap per class] per threshold], "mAP": ...}
       maptr_map.py MAPTR_ROOT gt IN.json OUT.json
         IN: {"dataroot", "poses": [{"location", "lidar2global_translation", "lidar2global_rotation"}]};
         OUT: per pose [{"pts", "type"}], exactly what ``_format_gt`` stores

The metric path is ``format_res_gt_by_classes`` + ``eval_map`` at thresholds 0.5/1.0/1.5 and
``cls_aps.mean(0)`` as ``CustomNuScenesLocalMapDataset._evaluate_single`` runs them (with
``eval_use_same_gt_sample_num_flag=True`` as its configs set); the GT path is
``VectorizedLocalMap.gen_vectorized_samples`` with the maptr_tiny_r50_24e patch (60 x 30 m).
Imports of the mmdet3d plugin that these never call are stand-ins that raise when called; mmcv's
Timer / print_log / dump (progress and logging only) are minimal working ones.
"""
import json
import os
import pickle
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _stubs  # noqa: E402

root, mode, in_path, out_path = sys.argv[1:5]


class Timer:
    def __init__(self):
        self.t0 = self.last = time.time()

    def since_start(self):
        return time.time() - self.t0

    def since_last_check(self):
        now, self.last = time.time(), time.time()
        return now - self.last


def _dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


class _Registry:
    def register_module(self, *args, **kwargs):
        return lambda cls: cls


_stubs.stub_module("mmcv", Timer=Timer, dump=_dump, ProgressBar=_stubs.raising("mmcv.ProgressBar"))
_stubs.stub_module("mmcv.utils", print_log=lambda msg, logger=None: None)
_stubs.stub_module("mmcv.parallel", DataContainer=_stubs.raising("DataContainer"))
_stubs.stub_module("mmdet.core.evaluation.bbox_overlaps", bbox_overlaps=_stubs.raising("bbox_overlaps"))
_stubs.stub_module("mmdet.datasets", DATASETS=_Registry())
_stubs.stub_module("mmdet.datasets.pipelines", to_tensor=_stubs.raising("to_tensor"))
_stubs.stub_module("mmdet3d.datasets", NuScenesDataset=type("NuScenesDataset", (), {}))
_stubs.package_path(root, "projects.mmdet3d_plugin.datasets.map_utils")
_stubs.stub_module("projects.mmdet3d_plugin.models.utils.visual", save_tensor=_stubs.raising("save_tensor"))
_stubs.stub_module("projects.mmdet3d_plugin.datasets.nuscnes_eval", NuScenesEval_custom=type("E", (), {}))
_stubs.stub_module("projects.mmdet3d_plugin.datasets.nuscenes_dataset", CustomNuScenesDataset=type("D", (), {}))

import shapely  # noqa: E402
assert shapely.__version__.startswith("1.8"), shapely.__version__

data = json.load(open(in_path))
if mode == "metric":
    from projects.mmdet3d_plugin.datasets.map_utils.mean_ap import eval_map, format_res_gt_by_classes

    gen_results, annotations, classes = data["gen_results"], data["annotations"], data["classes"]
    with tempfile.TemporaryDirectory() as tmp:
        result_path = os.path.join(tmp, "results.json")
        cls_gens, cls_gts = format_res_gt_by_classes(result_path, gen_results, annotations, cls_names=classes,
                                                     num_pred_pts_per_instance=20,
                                                     eval_use_same_gt_sample_num_flag=True, nproc=2)
        cls_aps = np.zeros((3, len(classes)))
        for i, thr in enumerate([0.5, 1.0, 1.5]):
            _, cls_ap = eval_map(gen_results, annotations, cls_gens, cls_gts, threshold=thr, cls_names=classes,
                                 logger="silent", num_pred_pts_per_instance=20, metric="chamfer", nproc=2)
            for j in range(len(classes)):
                cls_aps[i, j] = cls_ap[j]["ap"]
    json.dump({"cls_aps": cls_aps.tolist(), "AP": cls_aps.mean(0).tolist(), "mAP": float(cls_aps.mean(0).mean())},
              open(out_path, "w"))
else:
    from projects.mmdet3d_plugin.datasets.nuscenes_map_dataset import VectorizedLocalMap

    vmap = VectorizedLocalMap(data["dataroot"], patch_size=(60.0, 30.0),
                              map_classes=["divider", "ped_crossing", "boundary"], fixed_ptsnum_per_line=20,
                              padding_value=-10000)
    out = []
    for pose in data["poses"]:
        anns = vmap.gen_vectorized_samples(pose["location"], pose["lidar2global_translation"],
                                           pose["lidar2global_rotation"])
        out.append([{"pts": np.array(list(v.coords)).tolist(), "type": int(t)}
                    for v, t in zip(anns["gt_vecs_pts_loc"].instance_list, anns["gt_vecs_label"])])
    json.dump(out, open(out_path, "w"))
