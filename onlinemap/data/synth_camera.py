"""The synthetic camera rig: six cameras at the real nuScenes image size, their images, and the box-corner rule.

Why: the upstream pipelines take the image size from their configs (PETR/StreamPETR: H=900, W=1600)
and the converters' 2-D box code projects onto a 1600x900 canvas, so images and intrinsics must be
the real size and agree with each other. Intrinsics are close to the real rig's (front and side
cameras ~1260 px focal length, ~65 degrees wide; the back camera ~800 px, ~110 degrees).

Images are smooth patterns drawn at an eighth of the size and upscaled, so a 1600x900 JPEG is
~100 kB and a 400-sample dataset writes in minutes, not hours.

The corner rule: the upstream converters (mmdet3d's ``get_2d_boxes``, nuscenes-devkit's
``export_2d_annotations_as_json``) keep the corners of a box with camera z > 0 and take the convex
hull of their projections; with exactly two corners in front that hull is a LineString and
``post_process_coords`` crashes on ``.exterior`` (nuscenes-devkit#762). :func:`corners_in_front`
counts them so the writer never produces such a box.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["CAMERAS", "CAMERA_YAW", "IMAGE_SIZE", "intrinsic", "camera_rotation", "camera_translation",
           "box_corners", "corners_in_front", "write_camera_image", "quat_yaw", "quat_to_matrix"]

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
# camera yaw relative to the ego x axis (degrees), roughly as mounted on the nuScenes car
CAMERA_YAW = {"CAM_FRONT": 0, "CAM_FRONT_RIGHT": -55, "CAM_FRONT_LEFT": 55, "CAM_BACK": 180,
              "CAM_BACK_LEFT": 110, "CAM_BACK_RIGHT": -110}
IMAGE_SIZE = (1600, 900)     # (w, h): the real nuScenes camera images
_FOCAL = {"CAM_BACK": 800.0}  # the real back camera is wide-angle; the others ~1260 px
_DRAW_SCALE = 8               # images are drawn at (w/8, h/8) and upscaled


def quat_yaw(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def _quat_mul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return [w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2]


def quat_to_matrix(q) -> np.ndarray:
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def camera_rotation(camera: str) -> list[float]:
    """Sensor->ego rotation (w, x, y, z) of a camera (camera z forward, x right, y down)."""
    base = [0.5, -0.5, 0.5, -0.5]  # maps camera axes to ego axes for a forward-looking camera
    return _quat_mul(quat_yaw(math.radians(CAMERA_YAW[camera])), base)


def camera_translation(camera: str) -> list[float]:
    yaw = math.radians(CAMERA_YAW[camera])
    return [1.0 * math.cos(yaw), 0.5 * math.sin(yaw), 1.5]


def intrinsic(camera: str) -> list[list[float]]:
    w, h = IMAGE_SIZE
    f = _FOCAL.get(camera, 1260.0)
    return [[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]]


def box_corners(center, size_wlh, yaw: float) -> np.ndarray:
    """(3, 8) global corners, in nuscenes-devkit ``Box.corners()`` order (x forward = length)."""
    w, l, h = size_wlh
    x = l / 2 * np.array([1, 1, 1, 1, -1, -1, -1, -1])
    y = w / 2 * np.array([1, -1, -1, 1, 1, -1, -1, 1])
    z = h / 2 * np.array([1, 1, -1, -1, 1, 1, -1, -1])
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return rot @ np.vstack([x, y, z]) + np.asarray(center, dtype=float).reshape(3, 1)


def corners_in_front(corners_global: np.ndarray, ego_xyz, ego_yaw: float, camera: str) -> int:
    """How many of the corners have camera z > 0 (the converters' test), for the ego pose given."""
    c, s = math.cos(ego_yaw), math.sin(ego_yaw)
    ego_rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    in_ego = ego_rot.T @ (corners_global - np.asarray(ego_xyz, dtype=float).reshape(3, 1))
    cam_rot = quat_to_matrix(camera_rotation(camera))
    in_cam = cam_rot.T @ (in_ego - np.asarray(camera_translation(camera)).reshape(3, 1))
    return int((in_cam[2] > 0).sum())


def write_camera_image(path: Path, rng: np.random.Generator, index: int, camera: str) -> None:
    """A 1600x900 JPEG: a smooth pattern that changes from frame to frame and camera to camera."""
    from PIL import Image

    w, h = IMAGE_SIZE[0] // _DRAW_SCALE, IMAGE_SIZE[1] // _DRAW_SCALE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (index * 0.3 + CAMERAS.index(camera)) % (2 * math.pi)
    base = 127 + 60 * np.sin(x / 2.125 + phase)[..., None] * np.array([1.0, 0.6, 0.3]) + (y / h * 60)[..., None]
    noise = rng.normal(0, 8, size=(h, w, 3))
    small = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    small.resize(IMAGE_SIZE, Image.BILINEAR).save(path, quality=80)
