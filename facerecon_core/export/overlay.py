"""The overlay image: the shaded reconstruction over the photo, its outline and the landmarks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facerecon_core.reconstruction import FaceReconstruction

# iBUG 68-point contours: (first, last, closed)
LANDMARK_CONTOURS = (
    (0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False), (31, 35, False),
    (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True),
)
OUTLINE_RGB = (255, 214, 64)  # warm yellow: visible on skin and on most backgrounds
LANDMARK_RGB = (64, 255, 128)
_SHIFT = 4  # sub-pixel bits for OpenCV drawing


def face_window(rec: FaceReconstruction, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The crop box rounded outward and clipped to the photo: (x0, y0, x1, y1), None if empty."""
    left, top, side = (float(x) for x in rec.crop_box)
    x0, y0 = max(int(np.floor(left)), 0), max(int(np.floor(top)), 0)
    x1, y1 = min(int(np.ceil(left + side)), width), min(int(np.ceil(top + side)), height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def render_face(rec: FaceReconstruction, height: int, width: int,
                window: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The shaded face (albedo texture × SH light) in photo pixels: image (h, w, 3) float32, mask (h, w).

    Covers photo pixels [x0, x1) × [y0, y1) of ``window`` (default: the whole H×W photo). Only
    the crop box is rendered, with the crop camera re-expressed in photo pixels, so rendered
    pixels coincide with photo pixels (no warping).
    """
    from facerecon_core.render.numpy_render import render_mesh_numpy

    x0, y0, x1, y1 = (0, 0, width, height) if window is None else window
    image = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    box = face_window(rec, height, width)
    if box is None:
        return image, mask
    bx0, by0 = max(box[0], x0), max(box[1], y0)
    bx1, by1 = min(box[2], x1), min(box[3], y1)
    if bx1 <= bx0 or by1 <= by0:
        return image, mask
    camera = rec.photo_camera((bx0, by0, bx1, by1))
    rendered, covered = render_mesh_numpy(rec.camera_vertices(), rec.triangles, camera, uv=rec.uvs,
                                          texture=rec.albedo, sh=rec.sh)
    image[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = rendered[0]
    mask[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = covered[0]
    return image, mask


def overlay_image(rec: FaceReconstruction, photo: np.ndarray, alpha: float = 0.75,
                  landmarks: bool = True) -> np.ndarray:
    """The overlay as an H×W×3 uint8 RGB image (``photo``: H×W×3 uint8 RGB).

    The face is blended at opacity ``alpha`` and outlined; the 68 landmarks are drawn as the
    iBUG contours with dots. Line widths follow the face size.
    """
    import cv2

    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be an H×W×3 uint8 RGB image, got {photo.dtype} {photo.shape}")
    height, width = photo.shape[:2]
    canvas = photo.copy()
    scale = float(rec.crop_box[2]) / 224.0  # drawing sizes follow the face size
    thickness = max(1, int(round(1.5 * scale)))
    window = face_window(rec, height, width)
    if window is not None:
        x0, y0, x1, y1 = window
        face, mask = render_face(rec, height, width, window)
        base = photo[y0:y1, x0:x1].astype(np.float32) / 255.0
        weight = mask[..., None].astype(np.float32) * alpha  # the outline drawn below hides the staircase
        blended = base + weight * (np.clip(face, 0.0, 1.0) - base)
        canvas[y0:y1, x0:x1] = np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if mask.any():
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE,
                                           offset=(x0, y0))
            cv2.drawContours(canvas, contours, -1, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.drawContours(canvas, contours, -1, OUTLINE_RGB, thickness, cv2.LINE_AA)
    if landmarks and len(rec.landmarks_2d):
        _draw_landmarks(canvas, rec.landmarks_2d, scale)
    return canvas


def _draw_landmarks(canvas: np.ndarray, points: np.ndarray, scale: float) -> None:
    import cv2

    fixed = np.round(np.asarray(points, np.float64) * (1 << _SHIFT)).astype(np.int32)
    line = max(1, int(round(0.8 * scale)))
    if len(points) == 68:
        for first, last, closed in LANDMARK_CONTOURS:
            cv2.polylines(canvas, [fixed[first:last + 1]], closed, LANDMARK_RGB, line, cv2.LINE_AA, _SHIFT)
    radius = max(1.5, 2.2 * scale)
    for p in fixed:
        centre = (int(p[0]), int(p[1]))
        cv2.circle(canvas, centre, int(round((radius + 1) * (1 << _SHIFT))), (0, 0, 0), -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(canvas, centre, int(round(radius * (1 << _SHIFT))), LANDMARK_RGB, -1, cv2.LINE_AA, _SHIFT)


def write_overlay(rec: FaceReconstruction, photo: np.ndarray | str | os.PathLike, path: str | os.PathLike,
                  alpha: float = 0.75) -> Path:
    """Write the overlay PNG (photo size) atomically; ``photo`` is H×W×3 uint8 RGB or a photo path."""
    from facerecon_core.io.images import save_image

    if not isinstance(photo, np.ndarray):
        from facerecon_core.io.photo import load_photo

        photo = load_photo(photo)
    return save_image(path, overlay_image(rec, photo, alpha))
