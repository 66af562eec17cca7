"""Piecewise-affine image warps defined by moving control points (used to re-pose real photos)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay

from facerecon_core.render.kernels import interpolate_numpy, rasterize_numpy


def warp_image(image: np.ndarray, old_points: np.ndarray, new_points: np.ndarray) -> np.ndarray:
    """Warp ``image`` so that content at ``old_points`` (N, 2) moves to ``new_points`` (N, 2).

    The new points are triangulated (Delaunay) and each output pixel takes the colour at the
    matching position of its triangle in the old configuration; the image corners are added as
    fixed points so the whole image is covered. Points use pixel-centre coordinates.
    """
    h, w = image.shape[:2]
    corners = np.array([[-1, -1], [w, -1], [-1, h], [w, h]], np.float64)
    old = np.concatenate([old_points, corners])
    new = np.concatenate([new_points, corners])
    triangles = Delaunay(new).simplices.astype(np.int32)
    pos = np.zeros((1, len(new), 4))
    pos[0, :, 0] = (new[:, 0] + 0.5) / w * 2 - 1
    pos[0, :, 1] = 1 - (new[:, 1] + 0.5) / h * 2  # image rows run down; the rasterizer's NDC y runs up
    pos[0, :, 3] = 1.0
    rast = rasterize_numpy(pos, triangles, (h, w))
    source = interpolate_numpy(old[None], rast, triangles)[0, ::-1].astype(np.float32)
    covered = rast[0, ::-1, :, 3] > 0
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = np.where(covered, source[..., 0], grid_x)
    map_y = np.where(covered, source[..., 1], grid_y)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
