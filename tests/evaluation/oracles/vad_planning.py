"""VAD's own planning metric on scenes given as nuScenes rows (runs in the oracle venv).

usage: vad_planning.py VAD_ROOT MMDET3D_ROOT IN.json OUT.json

IN.json is ``{"scenes": [{"tables": ..., "cases": [...]}, ...]}``; OUT.json one answer list per scene, in
order. Many scenes go through one interpreter (the imports take seconds; each scene is scored on its own).

The agent and target arrays are built as ``tools/data_converter/vad_nuscenes_converter.py``
``_fill_trainval_infos`` builds them (its own ``get_global_sensor_pose`` and ``quart_to_rpy``, the
devkit's ``Box``), filtered as VAD's test pipeline filters them (``use_valid_flag``, mmdet3d's
``NameMapping`` read from mmdet3d's source, ``CustomObjectRangeFilter``'s strict ``in_range_bev``,
``CustomObjectNameFilter``), and scored by VAD's ``PlanningMetric`` exactly as
``VAD.compute_planner_metric_stp3`` calls it.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _stubs  # noqa: E402

vad_root, mmdet3d_root, in_path, out_path = sys.argv[1:5]
name_mapping = _stubs.class_literal(os.path.join(mmdet3d_root, "mmdet3d/datasets/nuscenes_dataset.py"),
                                    "NuScenesDataset", "NameMapping")
_stubs.stub_module("mmcv", check_file_exist=_stubs.raising("mmcv.check_file_exist"))
_stubs.stub_module("mmdet3d.datasets", NuScenesDataset=type("NuScenesDataset", (), {"NameMapping": name_mapping}))
_stubs.stub_module("mmdet3d.core.bbox.box_np_ops", points_cam2img=_stubs.raising("points_cam2img"))
_argv, sys.argv = sys.argv, ["vad_nuscenes_converter", "nuscenes", "--out-dir", "unused"]   # it parses at import
conv = _stubs.load_file("vad_nuscenes_converter", os.path.join(vad_root, "tools/data_converter/vad_nuscenes_converter.py"))
sys.argv = _argv
_stubs.package_path(vad_root, "projects.mmdet3d_plugin.core.evaluation")
_stubs.package_path(vad_root, "projects.mmdet3d_plugin.VAD.planner")
from projects.mmdet3d_plugin.VAD.planner.metric_stp3 import PlanningMetric  # noqa: E402
from nuscenes.utils.data_classes import Box  # noqa: E402
from pyquaternion import Quaternion  # noqa: E402

CLASSES = ['car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle', 'bicycle',
           'pedestrian', 'traffic_cone']      # VAD_tiny_stage_2.py class_names
PC_RANGE = [-15.0, -30.0, -2.0, 15.0, 30.0, 2.0]
FUT_TS = 6


class Tables:
    def __init__(self, tables):
        for k, rows in tables.items():
            setattr(self, k, rows)
        self._ind = {k: {r["token"]: i for i, r in enumerate(rows)} for k, rows in tables.items()}

    def get(self, table, token):
        return getattr(self, table)[self._ind[table][token]]


class Boxes:  # LiDARInstance3DBoxes as get_birds_eye_view_label reads it: only .tensor
    def __init__(self, tensor):
        self.tensor = tensor


def sample_arrays(nusc, sample):
    sd_rec = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    cs_record = nusc.get("calibrated_sensor", sd_rec["calibrated_sensor_token"])
    pose_record = nusc.get("ego_pose", sd_rec["ego_pose_token"])
    cat2idx = {dic["name"]: idx for idx, dic in enumerate(nusc.category)}
    annotations = [nusc.get("sample_annotation", t) for t in sample["anns"]]
    boxes = []
    for a in annotations:   # NuScenes.get_sample_data for a LiDAR: global -> ego -> sensor
        b = Box(a["translation"], a["size"], Quaternion(a["rotation"]), name=a["category_name"], token=a["token"])
        b.translate(-np.array(pose_record["translation"]))
        b.rotate(Quaternion(pose_record["rotation"]).inverse)
        b.translate(-np.array(cs_record["translation"]))
        b.rotate(Quaternion(cs_record["rotation"]).inverse)
        boxes.append(b)
    n = len(boxes)
    locs = np.array([b.center for b in boxes]).reshape(-1, 3)
    dims = np.array([b.wlh for b in boxes]).reshape(-1, 3)
    rots = np.array([b.orientation.yaw_pitch_roll[0] for b in boxes]).reshape(-1, 1)
    valid_flag = np.array([(a["num_lidar_pts"] + a["num_radar_pts"]) > 0 for a in annotations], dtype=bool).reshape(-1)
    names = np.array([name_mapping.get(b.name, b.name) for b in boxes])
    gt_boxes = np.concatenate([locs, dims, -rots - np.pi / 2], axis=1)
    gt_fut_trajs = np.zeros((n, FUT_TS, 2))
    gt_fut_yaw = np.zeros((n, FUT_TS))
    gt_fut_masks = np.zeros((n, FUT_TS))
    gt_boxes_yaw = -(gt_boxes[:, 6] + np.pi / 2)
    agent_lcf_feat = np.zeros((n, 9))
    gt_fut_goal = np.zeros(n)
    for i, anno in enumerate(annotations):
        cur_box, cur_anno = boxes[i], anno
        agent_lcf_feat[i, 0:2] = cur_box.center[:2]
        agent_lcf_feat[i, 2] = gt_boxes_yaw[i]
        agent_lcf_feat[i, 5:8] = anno["size"]
        agent_lcf_feat[i, 8] = cat2idx[anno["category_name"]] if anno["category_name"] in cat2idx else -1
        for j in range(FUT_TS):
            if cur_anno["next"] != "":
                anno_next = nusc.get("sample_annotation", cur_anno["next"])
                box_next = Box(anno_next["translation"], anno_next["size"], Quaternion(anno_next["rotation"]))
                box_next.translate(-np.array(pose_record["translation"]))
                box_next.rotate(Quaternion(pose_record["rotation"]).inverse)
                box_next.translate(-np.array(cs_record["translation"]))
                box_next.rotate(Quaternion(cs_record["rotation"]).inverse)
                gt_fut_trajs[i, j] = box_next.center[:2] - cur_box.center[:2]
                gt_fut_masks[i, j] = 1
                o, o2 = cur_box.orientation, box_next.orientation
                gt_fut_yaw[i, j] = conv.quart_to_rpy([o2.x, o2.y, o2.z, o2.w])[2] - conv.quart_to_rpy([o.x, o.y, o.z, o.w])[2]
                cur_anno, cur_box = anno_next, box_next
            else:
                gt_fut_trajs[i, j:] = 0
                break
    # ego future (offset format), as the converter
    ego_fut_trajs = np.zeros((FUT_TS + 1, 3))
    sample_cur = sample
    for i in range(FUT_TS + 1):
        ego_fut_trajs[i] = conv.get_global_sensor_pose(sample_cur, nusc, inverse=False)[:3, 3]
        if sample_cur["next"] == "":
            ego_fut_trajs[i + 1:] = ego_fut_trajs[i]
            break
        sample_cur = nusc.get("sample", sample_cur["next"])
    ego_fut_trajs = ego_fut_trajs - np.array(pose_record["translation"])
    ego_fut_trajs = np.dot(Quaternion(pose_record["rotation"]).inverse.rotation_matrix, ego_fut_trajs.T).T
    ego_fut_trajs = ego_fut_trajs - np.array(cs_record["translation"])
    ego_fut_trajs = np.dot(Quaternion(cs_record["rotation"]).inverse.rotation_matrix, ego_fut_trajs.T).T
    ego_fut_trajs = (ego_fut_trajs[1:] - ego_fut_trajs[:-1])[:, :2].astype(np.float32)
    # dataset: use_valid_flag mask, attr_labels; pipeline: range filter, name filter
    attr = np.concatenate([gt_fut_trajs.reshape(-1, FUT_TS * 2), gt_fut_masks, gt_fut_goal[:, None], agent_lcf_feat,
                           gt_fut_yaw], axis=-1).astype(np.float32)[valid_flag]
    gtb, names = gt_boxes[valid_flag].astype(np.float32), names[valid_flag]
    keep = ((gtb[:, 0] > PC_RANGE[0]) & (gtb[:, 1] > PC_RANGE[1]) & (gtb[:, 0] < PC_RANGE[3]) & (gtb[:, 1] < PC_RANGE[4])
            & np.array([nm in CLASSES for nm in names], dtype=bool))
    box_tensor = torch.from_numpy(np.concatenate([gtb[keep], np.zeros((int(keep.sum()), 2), np.float32)], axis=1))
    return box_tensor, torch.from_numpy(attr[keep]), torch.from_numpy(ego_fut_trajs)


def score_scene(metric, scene):
    nusc = Tables(scene["tables"])
    out = []
    for case in scene["cases"]:
        sample = nusc.get("sample", case["sample_token"])
        boxes, feats, ego = sample_arrays(nusc, sample)
        gt = ego.cumsum(dim=-2)[None]
        pred = torch.tensor(case["plan_lidar"], dtype=torch.float32)[None]
        # VAD.compute_planner_metric_stp3, fut_valid_flag True
        segmentation, pedestrian = metric.get_label(Boxes(boxes), feats.unsqueeze(0))
        occupancy = torch.logical_or(segmentation, pedestrian)
        res = {"gt_lidar": gt[0].tolist(), "agents": int(len(boxes))}
        for i in range(3):
            cur_time = (i + 1) * 2
            res["plan_L2_%ds" % (i + 1)] = metric.compute_L2(pred[0, :cur_time], gt[0, :cur_time])
            obj_coll, obj_box_coll = metric.evaluate_coll(pred[:, :cur_time], gt[:, :cur_time], occupancy)
            res["plan_obj_box_col_%ds" % (i + 1)] = obj_box_coll.mean().item()
        out.append(res)
    return out


def main():
    data = json.load(open(in_path))
    metric = PlanningMetric()      # holds only the BEV grid constants (no accumulated state)
    json.dump([score_scene(metric, scene) for scene in data["scenes"]], open(out_path, "w"))


main()
