"""Helpers shared by the model adapters (``envs/<Model>/demo.py``), kept once instead of copied.

Why this module exists. Several adapters wrap mmdet3d-based repos and need the same small pieces:
quaternion / frame math, the nuScenes-box conversion of mmdet3d LiDAR boxes (PETR, StreamPETR),
info-file path rebasing, plugin import, device handling. They used to be verbatim copies in each
demo.py; they now live here and each adapter re-exports the names it (and its tests) use.

How it is loaded. An adapter runs inside its model's own conda env (Python 3.7/3.8, only that env's
packages) and is loaded by file path, so it cannot rely on any installed package of ours. Each
demo.py puts this folder on ``sys.path`` and imports this file as ``onlinemap_adapterlib`` (the
prefix keeps it from shadowing a model repo's modules). ``envs/_shared/`` has no ``model.toml``, so
the model registry ignores it.

Rules (checked by tests/harness/test_static.py, exactly as for the adapters):
* Python 3.7 syntax (``ast.parse(src, feature_version=(3, 7))``);
* module-level imports are standard library only: torch / numpy / mmcv are imported inside the
  functions that need them, so importing this file never needs the model env's packages;
* never import ``onlinemap`` (the driver package is not installed in the model envs);
* nothing model-specific here: box conventions, class lists, defaults and streaming logic stay in
  the adapter and are passed in as arguments.
"""
import base64
import math
import os
import struct
import sys


# ----------------------------------------------------------------------------------------------
# rotation math on nested 3x3 tuples (pure Python)
# ----------------------------------------------------------------------------------------------

def quaternion_matrix(q):
    """3x3 rotation matrix (nested tuples) of a nuScenes/pyquaternion [w, x, y, z] quaternion (normalised first)."""
    w, x, y, z = [float(v) for v in q]
    n = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
    w, x, y, z = w / n, x / n, y / n, z / n
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
            (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
            (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))


def matrix_yaw(r):
    """Heading of a rotation matrix: the angle of its rotated +x axis in the x-y plane (as devkit quaternion_yaw)."""
    return math.atan2(r[1][0], r[0][0])


def matmul3(a, b):
    """Product of two 3x3 matrices (nested tuples)."""
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3))


def apply3(m, v):
    """3x3 matrix times a 3-vector (list)."""
    return [sum(m[i][k] * v[k] for k in range(3)) for i in range(3)]


def rot_z(yaw):
    """Rotation by ``yaw`` about +z."""
    c, s = math.cos(yaw), math.sin(yaw)
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


def wrap_angle(a):
    """Angle in [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


# ----------------------------------------------------------------------------------------------
# tensors / arrays -> plain lists (duck-typed: no torch or numpy import needed)
# ----------------------------------------------------------------------------------------------

def box_tensor_rows(boxes_3d):
    """Rows of a LiDARInstance3DBoxes (``.tensor``), torch tensor, numpy array or nested list -> list of lists."""
    data = getattr(boxes_3d, "tensor", boxes_3d)
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    if hasattr(data, "tolist"):
        data = data.tolist()
    return [[float(v) for v in row] for row in data]


def flat_list(values):
    """A 1-D torch tensor, numpy array or sequence -> list."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if hasattr(values, "tolist"):
        values = values.tolist()
    return list(values)


# Packed matrices: the prediction schema's ``packed_matrix`` (onlinemap/schemas/prediction.schema.json).
PACKED_MATRIX_ENCODING = "float16-base64"


def pack_matrix_f16(rows, n_rows, n_cols):
    """A dense ``n_rows x n_cols`` matrix of probabilities -> ``{"encoding", "shape", "data"}``.

    Why: a 300 x 300 topology matrix as JSON numbers is ~1 MB per frame; as little-endian IEEE
    float16 (row-major) in base64 it is 240 KB at most, and the ~3 significant digits float16 keeps
    are plenty for probabilities in [0, 1] (absolute error <= 2.5e-4). ``struct`` format ``e`` is
    standard library since Python 3.6, so no numpy is needed here. Decoded on the driver side by
    ``onlinemap.evaluation.topology.matrix``.
    """
    flat = [float(v) for row in rows for v in row]
    if len(rows) != n_rows or len(flat) != n_rows * n_cols:
        raise ValueError("matrix is not %d x %d" % (n_rows, n_cols))
    data = struct.pack("<%de" % len(flat), *flat)
    return {"encoding": PACKED_MATRIX_ENCODING, "shape": [int(n_rows), int(n_cols)],
            "data": base64.b64encode(data).decode("ascii")}


# ----------------------------------------------------------------------------------------------
# mmdet3d LiDAR detections -> standard nuScenes boxes in the global frame (PETR, StreamPETR)
# ----------------------------------------------------------------------------------------------

# nuScenes detection_cvpr_2019 class_range (metres from the ego), used by _format_bbox to drop boxes.
NUSCENES_CLASS_RANGE = {"car": 50.0, "truck": 50.0, "bus": 50.0, "trailer": 50.0, "construction_vehicle": 50.0,
                        "pedestrian": 40.0, "motorcycle": 40.0, "bicycle": 40.0, "traffic_cone": 30.0,
                        "barrier": 30.0}
# NuScenesDataset.DefaultAttribute (mmdet3d 0.17.1 and 1.0.0rc6 alike); "" -> null in our schema.
NUSCENES_DEFAULT_ATTRIBUTE = {"car": "vehicle.parked", "pedestrian": "pedestrian.moving",
                              "trailer": "vehicle.parked", "truck": "vehicle.parked", "bus": "vehicle.moving",
                              "motorcycle": "cycle.without_rider", "construction_vehicle": "vehicle.parked",
                              "bicycle": "cycle.without_rider", "barrier": "", "traffic_cone": ""}


def lidar_box_to_nuscenes(row, convention):
    """One LiDAR box row -> (gravity centre, nuScenes wlh size, nuScenes-Box yaw, velocity), LiDAR frame.

    mmdet3d 0.17 (mmdet3d/datasets/nuscenes_dataset.py ``output_to_nusc_box`` @v0.17.1): dims are
    already ``w, l, h`` and the nuScenes yaw is ``-yaw - pi/2``. mmdet3d 1.0.0rc6: dims are
    ``l, w, h`` (reordered ``[1, 0, 2]``) and the yaw is used as is. In both, column 2 is the
    bottom z, so the gravity centre is ``z + h/2`` (h = column 5), and columns 7:9 are vx, vy.
    ``convention`` is ``"mmdet3d-0.17"`` or ``"mmdet3d-1.0"`` (the adapter's ``BOX_CONVENTION``).
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
    c_ego = [a + b for a, b in zip(apply3(r_l2e, center), t_l2e)]
    c_glob = [a + b for a, b in zip(apply3(r_e2g, c_ego), t_e2g)]
    rot = matmul3(r_e2g, matmul3(r_l2e, rot_z(yaw)))
    # nuScenes quaternion_yaw: heading of the rotated +x axis projected on the ground plane
    g_yaw = matrix_yaw(rot)
    v_glob = apply3(r_e2g, apply3(r_l2e, velocity))
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
            attr = NUSCENES_DEFAULT_ATTRIBUTE[name]
    else:
        if name == "pedestrian":
            attr = "pedestrian.standing"
        elif name == "bus":
            attr = "vehicle.stopped"
        else:
            attr = NUSCENES_DEFAULT_ATTRIBUTE[name]
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


def convert_detections(raw, calib, sample_token, model, options, convention, class_names, defaults):
    """Raw detector output of one sample -> the standard prediction (boxes in the global frame).

    ``options`` override ``defaults`` (the adapter's DEFAULTS: ``score_threshold``, ``filter_range``,
    ``max_boxes``); ``convention`` is the adapter's box convention (see ``lidar_box_to_nuscenes``);
    ``class_names`` are the config's class order that ``labels_3d`` index.
    """
    opts = dict(defaults)
    opts.update(options or {})
    result = unwrap_result(raw)
    rows = box_tensor_rows(result["boxes_3d"])
    scores = [float(s) for s in flat_list(result["scores_3d"])]
    labels = [int(l) for l in flat_list(result["labels_3d"])]
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
        if opts["filter_range"] and math.hypot(c_ego[0], c_ego[1]) > NUSCENES_CLASS_RANGE[name]:
            continue
        dets.append({"label": name, "score": min(max(score, 0.0), 1.0), "center": c_glob,
                     "size": [max(s, 1e-3) for s in size], "yaw": wrap_angle(g_yaw),
                     "velocity": [v_glob[0], v_glob[1]], "attribute": nuscenes_attribute(name, v_glob),
                     "frame": "global"})
    dets.sort(key=lambda d: -d["score"])
    if opts.get("max_boxes"):
        dets = dets[:int(opts["max_boxes"])]
    return {"sample_token": sample_token, "model": model, "detections_3d": dets}


# ----------------------------------------------------------------------------------------------
# mmdet3d nuScenes info files: calibration, data paths, token index
# ----------------------------------------------------------------------------------------------

def calib_from_info(info):
    """The four transforms ``convert_detections`` needs, from an mmdet3d nuScenes info dict."""
    return {k: [float(v) for v in info[k]] for k in ("lidar2ego_rotation", "lidar2ego_translation",
                                                     "ego2global_rotation", "ego2global_translation")}


def remap_data_path(path, dataroot):
    """Point an image path stored in an info file (often ``./data/nuscenes/samples/...``) at ``dataroot``.

    Always rebased (last ``/samples/`` or ``/sweeps/`` marker; other relative paths are joined to
    ``dataroot``); used by PETR / StreamPETR. See ``rebase_nuscenes_path`` for the MapTR / VAD rule.
    """
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


def rebase_nuscenes_path(path, dataroot):
    """Point an info-file path (``./data/nuscenes/samples/...``) at ``dataroot`` when it does not exist as is.

    An existing absolute path is kept; otherwise the first ``/samples/`` or ``/sweeps/`` marker is
    rebased and any other path is returned unchanged (MapTR / VAD).
    """
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


def token_index(data_infos):
    """sample token -> dataset index (infos are sorted by timestamp in NuScenesDataset.load_annotations)."""
    return {info["token"]: i for i, info in enumerate(data_infos)}


# ----------------------------------------------------------------------------------------------
# temporal models: when to drop the carried state
# ----------------------------------------------------------------------------------------------

def needs_state_reset(previous, sample):
    """True when temporal state must be dropped: new scene, or not the next sample of the same scene."""
    if previous is None:
        return True
    return (previous.get("scene_token") != sample.get("scene_token")
            or previous.get("index_in_scene", -2) + 1 != sample.get("index_in_scene"))


# ----------------------------------------------------------------------------------------------
# building the model: plugin import, paths, devices
# ----------------------------------------------------------------------------------------------

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


def import_plugin(cfg, repo):
    """Import the repo's plugin package the way tools/test.py does (registries fill on import).

    Puts ``repo`` on ``sys.path``; requires ``plugin_dir`` when the config sets ``plugin = True``.
    """
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


def pipeline_types(pipeline):
    """Every transform ``type`` of a pipeline config, nested ``transforms`` included, in order."""
    out = []
    for step in pipeline or []:
        out.append(str(step.get("type", "")))
        out.extend(pipeline_types(step.get("transforms")))
    return out


# LiDAR inputs a test pipeline reads, by the transform that reads them (suffix match: the repos
# prefix their own copies, e.g. MapTR's CustomLoadPointsFromMultiSweeps).
LIDAR_INPUTS = (("LoadPointsFromFile", os.path.join("samples", "LIDAR_TOP"), "the nuScenes LIDAR_TOP keyframes"),
                ("LoadPointsFromMultiSweeps", os.path.join("sweeps", "LIDAR_TOP"), "the nuScenes LiDAR sweeps"))


def require_lidar_inputs(pipeline, dataroot, config):
    """Refuse in one line, before any dataset is built, when the pipeline reads LiDAR data ``dataroot`` lacks.

    ``[data] needs`` speaks for a pack's default config; another config (MapTR's fusion config loads
    9 LiDAR sweeps per sample) can need more, and would otherwise fail deep in the data loader.
    """
    types = pipeline_types(pipeline)
    for suffix, folder, what in LIDAR_INPUTS:
        step = next((t for t in types if t.endswith(suffix)), None)
        if step and not os.path.isdir(os.path.join(dataroot, folder)):
            raise RuntimeError("%s reads %s (%s) but %s is missing: add them to the dataroot or use a camera-only config"
                               % (os.path.basename(str(config)), what, step, os.path.join(dataroot, folder)))


def checkout_and_config(settings, name, default_config):
    """(repo, config path) from the harness settings, refusing early when the checkout or checkpoint is missing.

    The config is ``settings['config']`` (else ``default_config``), relative to the repo unless absolute.
    """
    repo = settings.get("repo")
    if not repo or not os.path.isdir(repo):
        raise RuntimeError("settings['repo'] must be the %s checkout, got %r" % (name, repo))
    if not settings.get("checkpoint"):
        raise RuntimeError("settings['checkpoint'] is required (model.toml [checkpoint])")
    config = settings.get("config") or default_config
    return repo, (config if os.path.isabs(config) else os.path.join(repo, config))


def resolve_path(base, path):
    """``path`` as is when empty or absolute, else ``base/path`` if that exists, else relative to the cwd."""
    if not path:
        return path
    if os.path.isabs(path):
        return path
    cand = os.path.join(base, path)
    return cand if os.path.exists(cand) else os.path.abspath(path)


def device_ids(device):
    """``mmcv.parallel.scatter`` target ids for a device string: [-1] for the CPU, [n] for cuda:n."""
    if not device or device == "cpu":
        return [-1]
    if ":" in device:
        return [int(device.split(":", 1)[1])]
    return [0]


def is_cuda_device(device):
    """True for ``cuda`` / ``cuda:N``: the only devices the mmcv scatter path and fp16 wrapping are for."""
    return str(device or "").startswith("cuda")


def unwrap_data_containers(obj):
    """Replace every mmcv ``DataContainer`` in a collated batch by its first (only) chunk, ``.data[0]``.

    Why: on the CPU, mmcv's ``scatter(data, [-1])`` unsqueezes every tensor once more (its CPU branch
    mimics the per-GPU list), which turns a stacked ``(1, 6, 3, H, W)`` multi-view image into a 6-D
    tensor the detectors refuse. mmdet's ``inference_detector`` avoids it by taking ``dc.data[0]``
    on the CPU; this does the same for every container (recursively through dicts, lists, tuples), so
    the result has exactly the structure ``scatter(data, [gpu])[0]`` gives on one GPU. A container is
    recognised by duck typing (``data``, ``stack`` and ``cpu_only`` attributes), so this module stays
    free of mmcv imports.
    """
    if all(hasattr(obj, a) for a in ("data", "stack", "cpu_only")) and not isinstance(obj, (dict, list, tuple)):
        return obj.data[0]
    if isinstance(obj, dict):
        return type(obj)((k, unwrap_data_containers(v)) for k, v in obj.items())
    if isinstance(obj, tuple):
        return tuple(unwrap_data_containers(v) for v in obj)
    if isinstance(obj, list):
        return [unwrap_data_containers(v) for v in obj]
    return obj


def collate_to_device(item, device):
    """collate + scatter of one pipeline output, as MMDataParallel does for one GPU; unwrapped on the CPU.

    On ``cuda[:N]`` this is ``scatter(collate([item]), [N])[0]`` (MMDataParallel's path); on the CPU
    the DataContainers are unwrapped instead (see ``unwrap_data_containers``), as mmdet's
    ``inference_detector`` does.
    """
    from mmcv.parallel import collate

    data = collate([item], samples_per_gpu=1)
    if not is_cuda_device(device):
        return unwrap_data_containers(data)
    from mmcv.parallel import scatter

    return scatter(data, device_ids(device))[0]


def require_checkpoint(checkpoint, message):
    """Refuse (ValueError ``message``) when no checkpoint is given, before any dataset or model is built."""
    if not checkpoint:
        raise ValueError(message)
    return checkpoint


def build_model_like_test_py(cfg, checkpoint, device, dataset=None):
    """Build the detector and load ``checkpoint`` the way each repo's ``tools/test.py`` does, then move it.

    As tools/test.py (PETR, StreamPETR, TopoMLP, MapTR and VAD at their pinned commits):
    ``cfg.model.pretrained = None`` and ``cfg.model.train_cfg = None`` before ``build_model``;
    ``wrap_fp16_model`` when the config has ``fp16`` (here only on a CUDA device: on the CPU the
    half-precision casts of ``auto_fp16`` have no kernels); ``load_checkpoint(map_location='cpu')``;
    ``model.CLASSES`` (and ``PALETTE``) from the checkpoint's ``meta`` when present, else from the
    dataset. Returns the model on ``device`` in eval mode. ``build_model`` is imported after the
    caller imported the repo's plugin (its registries fill on import).
    """
    import torch
    from mmcv.runner import load_checkpoint, wrap_fp16_model
    from mmdet3d.models import build_model

    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    model = build_model(cfg.model, test_cfg=cfg.get("test_cfg"))
    if cfg.get("fp16", None) is not None and is_cuda_device(device):
        wrap_fp16_model(model)
    loaded = load_checkpoint(model, checkpoint, map_location="cpu")
    meta = (loaded or {}).get("meta", {}) if isinstance(loaded, dict) else {}
    if "CLASSES" in meta:
        model.CLASSES = meta["CLASSES"]
    elif dataset is not None and hasattr(dataset, "CLASSES"):
        model.CLASSES = dataset.CLASSES
    if "PALETTE" in meta:
        model.PALETTE = meta["PALETTE"]
    elif dataset is not None and hasattr(dataset, "PALETTE"):
        model.PALETTE = dataset.PALETTE
    return model.to(torch.device(device)).eval()


def build_mmdet3d_detector(repo, config, dataroot, info_file, checkpoint, device, missing_checkpoint):
    """The single-GPU test path of an mmdet3d detector repo (PETR, StreamPETR), as its tools/test.py.

    Refuses a missing checkpoint first (``missing_checkpoint`` is the error text), then imports the
    repo's plugin, builds the test dataset from ``info_file`` under ``dataroot`` (camera paths rebased
    onto it) and the model (``build_model_like_test_py``). Returns ``(model, dataset, token -> index)``.
    """
    import importlib

    from mmcv import Config

    require_checkpoint(checkpoint, missing_checkpoint)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    config = resolve_path(repo, config)
    cfg = Config.fromfile(config)
    if cfg.get("custom_imports", None):
        from mmcv.utils import import_modules_from_strings
        import_modules_from_strings(**cfg["custom_imports"])
    module = plugin_module_name(cfg, config, repo)
    if module:
        importlib.import_module(module)

    from mmdet3d.datasets import build_dataset

    dataroot = os.path.abspath(dataroot)
    cfg.data.test.test_mode = True
    cfg.data.test.data_root = dataroot + os.sep
    cfg.data.test.ann_file = resolve_path(dataroot, info_file)
    dataset = build_dataset(cfg.data.test)
    for info in dataset.data_infos:
        for cam in info.get("cams", {}).values():
            cam["data_path"] = remap_data_path(cam["data_path"], dataroot)

    model = build_model_like_test_py(cfg, resolve_path(repo, checkpoint), device, dataset)
    return model, dataset, token_index(dataset.data_infos)
