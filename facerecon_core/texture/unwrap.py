"""Unwrapping a photo's face into the UV map of a fitted mesh.

Each texel's 3D point (from the UV position map of the posed mesh) is projected into the crop and
the photo sampled there. A texel counts as visible when its point is the front-most surface at
that pixel (depth test against the rendered depth, ``depth_tolerance`` mm), faces the camera
(cosine above ``min_facing``), lands inside the crop, and lies in the face region. The fitted SH
light gives each texel's shading, so ``albedo = colour / shading``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerecon_core.facemodel import FaceModel
from facerecon_core.pose import CropCamera
from facerecon_core.render import interpolate, rasterize, sh_shading, vertex_normals


@dataclass
class UnwrappedTexture:
    """A photo's colours in UV (float32 [0, 1]), where they are visible, and the fitted shading."""

    colour: np.ndarray  # (T, T, 3), 0 where not visible
    visibility: np.ndarray  # (T, T) bool
    shading: np.ndarray  # (T, T, 3) SH irradiance under the fitted light

    def albedo(self) -> np.ndarray:
        """De-lit colour (T, T, 3) in [0, 1]; 0 where not visible."""
        albedo = self.colour / np.maximum(self.shading, 0.05)
        return np.where(self.visibility[..., None], np.clip(albedo, 0.0, 1.0), 0.0).astype(np.float32)


def unwrap_photo(
    image: np.ndarray,
    verts_cam: np.ndarray,
    model: FaceModel,
    sh: np.ndarray,
    size: int = 256,
    depth_tolerance: float = 6.0,
    min_facing: float = 0.2,
) -> UnwrappedTexture:
    """Unwrap a square uint8 crop (S, S, 3) seen by ``CropCamera(S)`` onto the mesh ``verts_cam`` (V, 3)."""
    crop = image.shape[0]
    camera = CropCamera(crop)
    verts = torch.as_tensor(verts_cam, dtype=torch.float32)[None]
    tri = torch.as_tensor(model.triangles)
    with torch.no_grad():
        normals = vertex_normals(verts, tri)[0].numpy()
        rast = rasterize(camera.render_camera().to_clip(verts), tri, (crop, crop), backend="cpu")
        depth = interpolate(-verts[..., 2:], rast, tri, backend="cpu")[0, :, :, 0].numpy()[::-1]  # top-down rows
    covered = rast[0, :, :, 3].numpy()[::-1] > 0

    position = model.to_uv_map(verts_cam, size)
    normal = model.to_uv_map(normals, size)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-8)
    pixels = camera.project(position).astype(np.float32)
    colour = cv2.remap(image, pixels[..., 0], pixels[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    seen_depth = cv2.remap(np.where(covered, depth, np.inf).astype(np.float32), pixels[..., 0], pixels[..., 1],
                           cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=np.inf)
    view = -position / np.maximum(np.linalg.norm(position, axis=-1, keepdims=True), 1e-8)
    inside = (pixels >= 0).all(-1) & (pixels <= crop - 1).all(-1)
    visible = (inside & model.face_mask(size) & (-position[..., 2] <= seen_depth + depth_tolerance)
               & ((normal * view).sum(-1) > min_facing))
    with torch.no_grad():
        shading = sh_shading(torch.as_tensor(normal)[None], torch.as_tensor(sh, dtype=torch.float32)[None])[0].numpy()
    colour = np.where(visible[..., None], colour.astype(np.float32) / 255.0, 0.0).astype(np.float32)
    return UnwrappedTexture(colour, visible, shading.astype(np.float32))


def fill_occluded(texture: np.ndarray, visible: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Fill invisible texels of a (T, T, 3) map: from their left-right mirror texel where that one is
    visible (the UV layout is symmetric about u = 0.5), else from ``fallback`` scaled per channel to
    the visible texels' colour; the seam between photo and fill is feathered."""
    mirror_visible = visible[:, ::-1] & ~visible
    known = visible | mirror_visible
    if visible.any():
        gain = np.median(texture[visible], axis=0) / np.maximum(np.median(fallback[visible], axis=0), 1e-3)
        fallback = fallback * gain
    filled = np.where(visible[..., None], texture, np.where(mirror_visible[..., None], texture[:, ::-1], fallback))
    sigma = max(1.0, texture.shape[0] / 128)
    weight = cv2.GaussianBlur(known.astype(np.float32), (0, 0), sigma)
    smooth = cv2.GaussianBlur(filled.astype(np.float32), (0, 0), sigma)
    weight = np.where(known, 1.0, weight)[..., None]
    return (weight * filled + (1 - weight) * smooth).astype(np.float32)
