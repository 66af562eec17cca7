"""Torch-free rendering for inference: numpy mirrors of :mod:`.shading` and :func:`.render_mesh`.

Same conventions and formulas as the torch path (camera: :class:`.camera.PerspectiveCamera`,
which is torch-free itself; rasterization: the numba kernels of :mod:`.kernels`), but images
are channel-last: textures (Ht, Wt, 3) or (B, Ht, Wt, 3), rendered images (B, H, W, 3).
Nothing here is differentiable. Imports numpy and numba only.
"""

from __future__ import annotations

import numpy as np

from facerecon_core.imageops import sample_uv as _sample_one
from facerecon_core.lighting import sh_basis

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
    n_batch, height, width = rast.shape[:3]
    rast = rast[:, ::-1]  # bottom-up buffers -> top-down image rows
    mask = np.ascontiguousarray(rast[..., 3] > 0)
    # Shade covered pixels only: the background is replaced by the composite anyway.
    sel = np.flatnonzero(mask)
    image_of = sel // (height * width)
    rast_sel = np.ascontiguousarray(rast.reshape(-1, 4)[sel][None, None])  # [1, 1, N, 4]
    if texture is not None:
        uv_pix = interpolate_numpy(np.asarray(uv, np.float32), rast_sel, tri)[0, 0]
        tex = _as_float_texture(texture).astype(np.float32, copy=False)
        if tex.ndim == 3:
            color = _sample_one(tex, uv_pix)
        else:
            color = _sample_one(tex, uv_pix, image_of if len(tex) > 1 else None)
    elif vertex_colors is not None:
        colors = np.asarray(vertex_colors, np.float32)
        colors = colors[None] if colors.ndim == 2 else colors
        if len(colors) == 1:
            color = interpolate_numpy(colors, rast_sel, tri)[0, 0]
        else:
            color = np.empty((len(sel), 3), np.float32)
            for b in range(n_batch):
                mine = image_of == b
                color[mine] = interpolate_numpy(colors[b:b + 1], rast_sel[:, :, mine], tri)[0, 0]
    else:
        color = np.ones((len(sel), 3), np.float32)
    if sh is not None:
        normals = np.empty((len(sel), 3), np.float32)
        vnormals = vertex_normals_numpy(verts, tri)
        for b in range(n_batch):
            mine = image_of == b
            normals[mine] = interpolate_numpy(vnormals[b:b + 1], rast_sel[:, :, mine], tri)[0, 0]
        length = np.sqrt(np.sum(normals * normals, axis=-1, keepdims=True))
        normals = normals / np.maximum(length, 1e-12)
        sh = np.asarray(sh, np.float32)
        basis = sh_basis(normals)
        if sh.ndim == 2:
            light = basis @ sh.T
        else:
            light = np.einsum("nk,nck->nc", basis, sh[image_of])
        color = color * light
    if background is None:
        image = np.zeros((n_batch, height, width, 3), np.float32)
    else:
        bg = _as_float_texture(background).astype(np.float32, copy=False)
        image = np.array(np.broadcast_to(bg, (n_batch, height, width, 3)), np.float32)
    image.reshape(-1, 3)[sel] = color
    return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(mask)
