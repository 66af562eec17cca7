"""Shaded mesh rendering: rasterize, interpolate, texture, SH-light and composite."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .camera import PerspectiveCamera
from .ops import Backend, interpolate, rasterize
from .shading import sample_texture, sh_shading, vertex_normals


@dataclass
class RenderOutput:
    """Rendered buffers; ``image``, ``mask`` and ``normals`` are in top-down image row order.

    ``rast`` keeps the rasterizer's (nvdiffrast's) bottom-up orientation; ``normals`` are
    unit camera-space normals, zero where ``mask`` is 0.
    """

    image: torch.Tensor  # [B, 3, H, W]
    mask: torch.Tensor  # [B, 1, H, W]
    rast: torch.Tensor  # [B, H, W, 4]
    normals: torch.Tensor  # [B, 3, H, W]


def _to_image(buf: torch.Tensor) -> torch.Tensor:
    """[B, H, W, C] bottom-up buffer -> [B, C, H, W] top-down image."""
    return buf.flip(1).permute(0, 3, 1, 2).contiguous()


def render_mesh(
    verts_cam: torch.Tensor,
    tri: torch.Tensor,
    camera: PerspectiveCamera,
    *,
    uv: torch.Tensor | None = None,
    texture: torch.Tensor | None = None,
    vertex_colors: torch.Tensor | None = None,
    sh: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    backend: Backend = "auto",
) -> RenderOutput:
    """Render camera-space vertices [B, V, 3] with triangles ``tri`` [F, 3] int32.

    Albedo comes from ``texture`` [B, 3, Ht, Wt] sampled at ``uv`` [V, 2], or from
    ``vertex_colors`` [B, V, 3], or is white when neither is given. ``sh`` [B, 3, 9]
    lights it with camera-space normals (None = unlit). The result is composited over
    ``background`` [B, 3, H, W] (default black) with the coverage mask. Differentiable
    w.r.t. vertices (through the barycentrics and normals), texture, colours and ``sh``.
    """
    if (uv is None) != (texture is None):
        raise ValueError("uv and texture must be given together")
    if texture is not None and vertex_colors is not None:
        raise ValueError("give either uv + texture or vertex_colors, not both")
    rast = rasterize(camera.to_clip(verts_cam), tri, camera.resolution, backend=backend)
    mask = (rast[..., 3:] > 0).to(verts_cam.dtype)
    normals = F.normalize(interpolate(vertex_normals(verts_cam, tri), rast, tri, backend=backend), dim=-1)
    if texture is not None:
        uv_pix = interpolate(uv.to(verts_cam), rast, tri, backend=backend)
        albedo = sample_texture(texture, uv_pix).permute(0, 2, 3, 1)
    elif vertex_colors is not None:
        albedo = interpolate(vertex_colors, rast, tri, backend=backend)
    else:
        albedo = torch.ones_like(normals)
    color = albedo if sh is None else albedo * sh_shading(normals, sh)
    if background is None:
        image = color * mask
    else:
        image = torch.lerp(background.permute(0, 2, 3, 1).flip(1).to(color.dtype), color, mask)
    return RenderOutput(image=_to_image(image), mask=_to_image(mask), rast=rast, normals=_to_image(normals))
