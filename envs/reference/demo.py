"""Reference adapter: a small seeded CNN over the six nuScenes camera images.

The network's weights are random but fixed by a seed, so its outputs are deterministic and need
no download; they carry no meaning. It exists so that every machine, with or without a GPU, can
run the real pipeline: read a real nuScenes-layout sample, run a torch forward on CPU or CUDA,
and convert raw tensors into the standard prediction schema (boxes in the global frame, map
polylines in the ego frame) exactly as the real adapters do.

Harness protocol (shared by every envs/<Model>/demo.py): ``Adapter(settings)``, ``load()``,
``prepare(sample) -> inputs``, ``forward(inputs) -> raw``, ``convert(raw, sample) -> prediction``;
optional export hook ``export_forward(inputs)`` + ``finish_raw(outputs, inputs)`` (docs/backends.md).
Standalone: ``python envs/reference/demo.py --dataroot D --sample-token T --device cpu --out p.json``.
"""
import json
import math
import os

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
DETECTION_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle",
                     "bicycle", "traffic_cone", "barrier")
MAP_CLASSES = ("divider", "ped_crossing", "boundary")
DEFAULTS = {"seed": 0, "image_height": 128, "image_width": 224, "width": 32, "num_queries": 50,
            "num_polylines": 20, "points_per_polyline": 20, "score_threshold": 0.0, "range_m": 51.2}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def quaternion_yaw(q):
    """Yaw (rotation about z, radians) of a nuScenes [w, x, y, z] quaternion."""
    w, x, y, z = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quaternion_matrix(q):
    w, x, y, z = q
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
            (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
            (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))


def ego_to_global(center, yaw, velocity, ego_pose):
    """Move a box from the ego frame to the global frame given the sample's ego pose."""
    r = quaternion_matrix(ego_pose["rotation"])
    t = ego_pose["translation"]
    g = [sum(r[i][j] * center[j] for j in range(3)) + t[i] for i in range(3)]
    ego_yaw = quaternion_yaw(ego_pose["rotation"])
    c, s = math.cos(ego_yaw), math.sin(ego_yaw)
    v = [c * velocity[0] - s * velocity[1], s * velocity[0] + c * velocity[1]]
    gyaw = math.atan2(math.sin(yaw + ego_yaw), math.cos(yaw + ego_yaw))
    return g, gyaw, v


class _Tables(object):
    """The few nuScenes table lookups this adapter needs, read once with the json module."""

    def __init__(self, dataroot, version):
        def table(name):
            with open(os.path.join(dataroot, version, name + ".json")) as fh:
                return json.load(fh)

        sensors = {s["token"]: s["channel"] for s in table("sensor")}
        calib = {c["token"]: sensors[c["sensor_token"]] for c in table("calibrated_sensor")}
        self.ego_pose = {e["token"]: e for e in table("ego_pose")}
        self.by_sample = {}
        wanted = set(CAMERAS) | {"LIDAR_TOP"}
        for sd in table("sample_data"):
            if not sd["is_key_frame"]:
                continue
            channel = calib.get(sd["calibrated_sensor_token"])
            if channel in wanted:
                self.by_sample.setdefault(sd["sample_token"], {})[channel] = sd


class Adapter(object):
    """The reference model behind the harness protocol."""

    name = "reference"

    def __init__(self, settings):
        self.settings = settings
        self.options = dict(DEFAULTS)
        self.options.update(settings.get("options") or {})
        self.device = settings.get("device") or "cpu"
        self.model = None
        self.tables = None

    def load(self):
        import torch
        from torch import nn

        opts = self.options
        torch.manual_seed(int(opts["seed"]))
        width = int(opts["width"])
        q, p, k = int(opts["num_queries"]), int(opts["num_polylines"]), int(opts["points_per_polyline"])

        class ReferenceNet(nn.Module):
            """Shared image encoder -> camera tokens -> pooled scene code -> box and polyline heads."""

            def __init__(self):
                super(ReferenceNet, self).__init__()
                self.encoder = nn.Sequential(
                    nn.Conv2d(3, width, 5, stride=4, padding=2), nn.ReLU(inplace=True),
                    nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                    nn.Conv2d(width * 2, width * 4, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                    nn.AdaptiveAvgPool2d(1))
                self.fuse = nn.Sequential(nn.Linear(width * 4 * len(CAMERAS), 256), nn.ReLU(inplace=True))
                self.box_head = nn.Linear(256, q * (len(DETECTION_CLASSES) + 10))
                self.map_head = nn.Linear(256, p * (len(MAP_CLASSES) + 2 * k))

            def forward(self, images):  # images: (6, 3, H, W)
                tokens = self.encoder(images).flatten(1)          # (6, C)
                code = self.fuse(tokens.reshape(1, -1))           # (1, 256)
                boxes = self.box_head(code).reshape(q, len(DETECTION_CLASSES) + 10)
                polys = self.map_head(code).reshape(p, len(MAP_CLASSES) + 2 * k)
                return {"box_logits": boxes[:, :len(DETECTION_CLASSES)], "box_params": boxes[:, len(DETECTION_CLASSES):],
                        "map_logits": polys[:, :len(MAP_CLASSES)], "map_points": polys[:, len(MAP_CLASSES):].reshape(p, k, 2)}

        self.torch = torch
        self.model = ReferenceNet().to(self.device).eval()
        self.tables = _Tables(self.settings["dataroot"], self.settings["version"])

    def prepare(self, sample):
        import numpy as np
        from PIL import Image

        torch = self.torch
        records = self.tables.by_sample.get(sample["token"])
        if records is None or any(c not in records for c in CAMERAS):
            raise KeyError("sample %s lacks key-frame images for all six cameras" % sample["token"])
        h, w = int(self.options["image_height"]), int(self.options["image_width"])
        mean = np.array(MEAN, dtype=np.float32)
        std = np.array(STD, dtype=np.float32)
        images = []
        for cam in CAMERAS:
            path = os.path.join(self.settings["dataroot"], records[cam]["filename"])
            with Image.open(path) as im:
                im.draft("RGB", (w, h))   # JPEG: decode at the smallest DCT scale >= (w, h) (1600x900 -> 400x225)
                arr = np.asarray(im.convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
            images.append(((arr - mean) / std).transpose(2, 0, 1))
        batch = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
        return {"images": batch, "ego_pose": self.tables.ego_pose[records["LIDAR_TOP"]["ego_pose_token"]]}

    def forward(self, inputs):
        with self.torch.no_grad():
            return self.finish_raw(self.export_forward(inputs), inputs)

    # Export hook (onlinemap/harness/export.py, docs/backends.md): the tensor part of forward, which
    # ONNX / torch.export trace, and what forward adds to it that is no tensor (the ego pose).
    def export_forward(self, inputs):
        return self.model(inputs["images"])

    def finish_raw(self, outputs, inputs):
        raw = dict(outputs)
        raw["ego_pose"] = inputs["ego_pose"]
        return raw

    def convert(self, raw, sample):
        return convert_outputs({k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in raw.items()},
                               sample["token"], self.options)


def _r(values, digits=4):
    return [round(v, digits) for v in values]


def _softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def convert_outputs(raw, sample_token, options=None):
    """Raw head outputs (numpy arrays) -> the standard prediction (boxes global, polylines ego)."""
    opts = dict(DEFAULTS)
    opts.update(options or {})
    rng = float(opts["range_m"])
    dets = []
    for logits, params in zip(raw["box_logits"].tolist(), raw["box_params"].tolist()):
        probs = _softmax(logits)
        label = max(range(len(probs)), key=probs.__getitem__)
        score = probs[label]
        if score < float(opts["score_threshold"]):
            continue
        cx, cy, cz, lw, ll, lh, ys, yc, vx, vy = params
        center_ego = [math.tanh(cx) * rng, math.tanh(cy) * rng, math.tanh(cz) * 2.0]
        size = [math.exp(max(min(lw, 3.0), -3.0)) * 2.0, math.exp(max(min(ll, 3.0), -3.0)) * 4.5,
                math.exp(max(min(lh, 3.0), -3.0)) * 1.7]
        center, yaw, vel = ego_to_global(center_ego, math.atan2(ys, yc), [vx, vy], raw["ego_pose"])
        # 0.1 mm / 1e-4 rad is far below any metric's resolution and halves the JSON the harness writes
        dets.append({"label": DETECTION_CLASSES[label], "score": round(score, 6), "center": _r(center),
                     "size": _r(size), "yaw": round(yaw, 4), "velocity": _r(vel), "frame": "global"})
    elements = []
    for logits, pts in zip(raw["map_logits"].tolist(), raw["map_points"].tolist()):
        probs = _softmax(logits)
        label = max(range(len(probs)), key=probs.__getitem__)
        elements.append({"label": MAP_CLASSES[label], "score": round(probs[label], 6),
                         "points": [[round(math.tanh(x) * 30.0, 4), round(math.tanh(y) * 15.0, 4)] for x, y in pts],
                         "frame": "ego"})
    return {"sample_token": sample_token, "model": "reference", "detections_3d": dets, "map_elements": elements}


if __name__ == "__main__":
    import runpy
    import sys
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(runpy.run_path(os.path.join(_here, "..", "..", "onlinemap", "harness", "standalone.py"))["main"](Adapter))
