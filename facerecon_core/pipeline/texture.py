"""Stage 5: the UV albedo texture — the texture stream's map, resized, with the area outside the
face region filled smoothly by push-pull (pyramid) interpolation, so there are no seams where the
mesh's border samples the map."""

from __future__ import annotations

import numpy as np

from facerecon_core import imageops
from facerecon_core.facemodel import FaceModel


def push_pull_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the texels where ``known`` is False with a smooth membrane interpolation of the known ones.

    ``image`` (H, W, C) float32, ``known`` (H, W) bool. Known texels are unchanged. Push: average the
    known texels down a pyramid (weights = coverage); pull: from the coarsest level up, unknown texels
    take the bilinear upsampling of the coarser level, partly-known texels blend by their coverage.
    """
    image = np.asarray(image, np.float32)
    weight = known.astype(np.float32)
    if weight.all() or not weight.any():
        return image.copy()
    levels = [(image * weight[..., None], weight)]
    while min(levels[-1][1].shape) > 1:
        premult, w = levels[-1]
        h, wd = w.shape
        size = (max((wd + 1) // 2, 1), max((h + 1) // 2, 1))
        levels.append((imageops.resize(premult, *size, interpolation="area").reshape(size[1], size[0], -1),
                       imageops.resize(w, *size, interpolation="area")))
    premult, w = levels[-1]
    filled = premult / np.maximum(w, 1e-8)[..., None]
    for premult, w in reversed(levels[:-1]):
        h, wd = w.shape
        up = imageops.resize(filled, wd, h, interpolation="linear").reshape(h, wd, -1)
        colour = premult / np.maximum(w, 1e-8)[..., None]
        alpha = np.clip(w * 2.0, 0.0, 1.0)[..., None]  # a texel half covered is trusted fully
        filled = alpha * colour + (1.0 - alpha) * up
    return np.where(known[..., None], image, filled).astype(np.float32)


def face_region(facemodel: FaceModel, size: int, erode: int = 1) -> np.ndarray:
    """The face region in UV at ``size`` × ``size`` (bool), eroded by ``erode`` texels so the
    network's values at the region's border are replaced by the smooth fill too."""
    mask = facemodel.uv_face_mask
    if mask.shape != (size, size):
        mask = imageops.resize(mask.astype(np.float32), size, size, interpolation="area") > 0.5
    if erode > 0:
        mask = imageops.erode(mask, iterations=erode)
    return np.asarray(mask, bool)


def albedo_texture(albedo_map: np.ndarray, facemodel: FaceModel, texture_size: int) -> np.ndarray:
    """The network's albedo map (T, T, 3) in [0, 1] → the (texture_size, texture_size, 3) uint8 texture:
    outside the face region push-pull filled (at the network's resolution), then resized."""
    filled = albedo_texture_float(albedo_map, facemodel, texture_size)
    return np.clip(filled * 255.0 + 0.5, 0, 255).astype(np.uint8)


def albedo_texture_float(albedo_map: np.ndarray, facemodel: FaceModel, texture_size: int) -> np.ndarray:
    """:func:`albedo_texture` before its quantisation: (texture_size, texture_size, 3) float32, about [0, 1]."""
    albedo_map = np.nan_to_num(np.asarray(albedo_map, np.float32), nan=0.5, posinf=1.0, neginf=0.0)
    t = albedo_map.shape[0]
    filled = push_pull_fill(np.clip(albedo_map, 0.0, 1.0), face_region(facemodel, t))
    if texture_size != t:
        shrink = texture_size < t
        filled = imageops.resize(filled, texture_size, texture_size, interpolation="area" if shrink else "cubic")
    return filled
