"""Torch-free rendering for inference: numpy mirrors of :mod:`.shading` and :func:`.render_mesh`.

Same conventions and formulas as the torch path (camera: :class:`.camera.PerspectiveCamera`,
which is torch-free itself; rasterization: the numba kernels of :mod:`.kernels`), but images
are channel-last: textures (Ht, Wt, 3) or (B, Ht, Wt, 3), rendered images (B, H, W, 3).
Nothing here is differentiable. Imports numpy and numba only.
"""

from __future__ import annotations

import math

import numpy as np

from .camera import PerspectiveCamera
from .kernels import interpolate_numpy, rasterize_numpy, vertex_normals_numpy

__all__ = [
    "PerspectiveCamera",
    "to_clip",
    "vertex_normals",
    "sh_basis",
    "sh_shading",
    "sample_texture",
    "render_mesh_numpy",
]

# Same constants as .shading (Lambertian-convolved real SH normalised so that Y00 -> 1).
_K1 = 2.0 / math.sqrt(3.0)
_K2 = math.sqrt(15.0) / 4.0
_K20 = math.sqrt(5.0) / 8.0
_K22 = math.sqrt(15.0) / 8.0


def to_clip(camera: PerspectiveCamera, points_cam: np.ndarray) -> np.ndarray:
    """Clip-space positions (..., 4) of camera-space points (..., 3); ``camera.to_clip`` on numpy."""
    return camera.to_clip(np.asarray(points_cam))


def vertex_normals(verts: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of ``verts`` (V, 3) or (B, V, 3), same shape."""
    verts = np.asarray(verts)
    if verts.dtype not in (np.float32, np.float64):
        verts = verts.astype(np.float32)
    single = verts.ndim == 2
    out = vertex_normals_numpy(verts[None] if single else verts, np.ascontiguousarray(tri, np.int32))
    return out[0] if single else out


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """The 9 irradiance SH basis values (..., 9) of unit normals (..., 3) (order as in torch)."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    return np.stack(
        [
            np.ones_like(x),
            _K1 * y,
            _K1 * z,
            _K1 * x,
            _K2 * x * y,
            _K2 * y * z,
            _K20 * (3.0 * z * z - 1.0),
            _K2 * x * z,
            _K22 * (x * x - y * y),
        ],
        axis=-1,
    )


def sh_shading(normals: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """Per-channel irradiance (..., 3) of normals (..., 3) under ``sh`` (3, 9).

    With a batch, ``normals`` is (B, ..., 3) and ``sh`` (B, 3, 9).
    """
    basis = sh_basis(normals)
    sh = np.asarray(sh, basis.dtype)
    if sh.ndim == 2:
        return basis @ sh.T
    flat = basis.reshape(basis.shape[0], -1, 9)
    return np.matmul(flat, np.swapaxes(sh, 1, 2)).reshape(normals.shape[:-1] + (sh.shape[1],))


def _as_float_texture(texture: np.ndarray) -> np.ndarray:
    texture = np.asarray(texture)
    if texture.dtype == np.uint8:
        return texture.astype(np.float32) / 255.0
    if texture.dtype not in (np.float32, np.float64):
        return texture.astype(np.float32)
    return texture


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinearly sample ``texture`` (Ht, Wt, C) at ``uv`` (..., 2) → (..., C).

    With a batch: ``texture`` (B, Ht, Wt, C) and ``uv`` (B, ..., 2). Convention as the torch
    ``sample_texture`` (``grid_sample``, ``align_corners=False``, border padding): u = 0/1 are the
    left/right edges, v = 0 the bottom and v = 1 the top edge, so texel row i is centred at
    v = 1 - (i + 0.5) / Ht; lookups outside [0, 1] clamp to the border texels. uint8 textures
    are read as value / 255.
    """
    texture = _as_float_texture(texture)
    uv = np.asarray(uv)
    if texture.ndim == 3:
        return _sample_one(texture, uv)
    if texture.ndim != 4 or len(texture) != len(uv):
        raise ValueError(f"texture must be (Ht, Wt, C) or (B, Ht, Wt, C) matching uv's batch, got {texture.shape}")
    return np.stack([_sample_one(tex, coords) for tex, coords in zip(texture, uv)])


def _sample_one(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    h, w = texture.shape[:2]
    dtype = np.result_type(texture.dtype, np.float32)
    x = np.clip(uv[..., 0].astype(np.float64) * w - 0.5, 0.0, w - 1)
    y = np.clip((1.0 - uv[..., 1].astype(np.float64)) * h - 0.5, 0.0, h - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0).astype(dtype)[..., None]
    fy = (y - y0).astype(dtype)[..., None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(dtype, copy=False)


def render_mesh_numpy(
    verts_cam: np.ndarray,
    tri: np.ndarray,
    camera: PerspectiveCamera,
    *,
    uv: np.ndarray | None = None,
    texture: np.ndarray | None = None,
    vertex_colors: np.ndarray | None = None,
    sh: np.ndarray | None = None,
    background: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render camera-space vertices (B, V, 3) or (V, 3) (units of ``camera.near``/``far``).

    Albedo comes from ``texture`` ((Ht, Wt, 3) shared or (B, Ht, Wt, 3); float in [0, 1] or
    uint8) sampled at ``uv`` (V, 2), or from ``vertex_colors`` ((V, 3) or (B, V, 3)), or is
    white. ``sh`` ((3, 9) or (B, 3, 9)) lights it with camera-space normals (None = unlit).
    The result is composited over ``background`` ((H, W, 3) or (B, H, W, 3), float in [0, 1]
    or uint8; default black).

    Returns ``(image, mask)``: image (B, H, W, 3) float32, top-down rows, not clipped (SH light
    can exceed 1); mask (B, H, W) bool. Matches the torch :func:`.render_mesh` (float32).
    """
    if (uv is None) != (texture is None):
        raise ValueError("uv and texture must be given together")
    if texture is not None and vertex_colors is not None:
        raise ValueError("give either uv + texture or vertex_colors, not both")
    verts = np.asarray(verts_cam, np.float32)
    if verts.ndim == 2:
        verts = verts[None]
    if verts.ndim != 3 or verts.shape[2] != 3:
        raise ValueError(f"verts_cam must have shape (B, V, 3) or (V, 3), got {np.shape(verts_cam)}")
    n_batch = len(verts)
    tri = np.ascontiguousarray(tri, np.int32)

    rast = rasterize_numpy(np.ascontiguousarray(camera.to_clip(verts), np.float32), tri, camera.resolution)
    mask = rast[..., 3] > 0  # bottom-up, like rast
    if texture is not None:
        uv_pix = interpolate_numpy(np.asarray(uv, np.float32), rast, tri)
        tex = _as_float_texture(texture).astype(np.float32, copy=False)
        if tex.ndim == 3:
            tex = np.broadcast_to(tex, (n_batch,) + tex.shape)
        albedo = sample_texture(tex, uv_pix)
    elif vertex_colors is not None:
        albedo = interpolate_numpy(np.asarray(vertex_colors, np.float32), rast, tri)
    else:
        albedo = np.ones(rast.shape[:3] + (3,), np.float32)
    color = albedo
    if sh is not None:
        normals = interpolate_numpy(vertex_normals_numpy(verts, tri), rast, tri)
        length = np.sqrt(np.sum(normals * normals, axis=-1, keepdims=True))
        normals = normals / np.maximum(length, 1e-12)
        sh = np.asarray(sh, np.float32)
        if sh.ndim == 2:
            sh = np.broadcast_to(sh, (n_batch, 3, 9))
        color = albedo * sh_shading(normals, sh)
    color = color[:, ::-1]  # bottom-up buffers -> top-down image
    mask = mask[:, ::-1]
    m = mask[..., None].astype(np.float32)
    if background is None:
        image = color * m
    else:
        bg = _as_float_texture(background).astype(np.float32, copy=False)
        bg = np.broadcast_to(bg, color.shape) if bg.ndim == 3 else bg
        image = bg + m * (color - bg)
    return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(mask)
