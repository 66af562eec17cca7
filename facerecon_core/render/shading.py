"""Normals, spherical-harmonics lighting and texture sampling in plain torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facerecon_core.lighting import sh_basis  # one implementation for numpy arrays and torch tensors


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def vertex_normals(verts: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals [B, V, 3] of ``verts`` [B, V, 3].

    Triangles are counter-clockwise seen from outside, so normals point outward. CPU float
    tensors go through the numba kernels (analytic backward, no double backward); others
    (CUDA) through plain torch, :func:`vertex_normals_torch`.
    """
    if verts.device.type == "cpu" and verts.dtype in (torch.float32, torch.float64) and verts.ndim == 3:
        from . import cpu

        return cpu.vertex_normals(verts, tri)
    return vertex_normals_torch(verts, tri)


def vertex_normals_torch(verts: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Plain-torch :func:`vertex_normals` (any device, twice differentiable)."""
    idx = tri.long()
    n_batch, n_vert = verts.shape[:2]
    # One row per vertex holding the whole batch: gathers and scatters move long rows.
    rows = verts.transpose(0, 1).reshape(n_vert, n_batch * 3)
    v0, v1, v2 = (rows.index_select(0, idx[:, k]).view(-1, n_batch, 3) for k in range(3))
    face = _cross(v1 - v0, v2 - v0).reshape(-1, n_batch * 3)  # length = 2 * area
    normals = torch.zeros_like(rows)
    for k in range(3):
        normals = normals.index_add(0, idx[:, k], face)
    return F.normalize(normals.view(n_vert, n_batch, 3).transpose(0, 1), dim=-1, eps=1e-12)


def sh_shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Per-channel irradiance [B, ..., 3] of normals [B, ..., 3] under ``sh`` [B, 3, 9]."""
    basis = sh_basis(normals)
    flat = basis.reshape(basis.shape[0], -1, 9)
    return torch.bmm(flat, sh.transpose(1, 2)).reshape(normals.shape[:-1] + (sh.shape[1],))


def sample_texture(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``tex`` [B, C, Ht, Wt] at ``uv`` [B, H, W, 2]; returns [B, C, H, W].

    u = 0 is the left and u = 1 the right edge; v = 0 is the bottom and v = 1 the top
    edge of the texture image (OpenGL/Blender), so texel row i is centred at
    v = 1 - (i + 0.5) / Ht. Lookups outside [0, 1] clamp to the border.
    """
    grid = torch.stack([2.0 * uv[..., 0] - 1.0, 1.0 - 2.0 * uv[..., 1]], dim=-1).to(tex.dtype)
    return F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)
