"""Normals, spherical-harmonics lighting and texture sampling in plain torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Lambertian-convolved real SH (Ramamoorthi & Hanrahan 2001: A0 = pi, A1 = 2pi/3,
# A2 = pi/4) divided by A0 * Y00, so that coefficients (1, 0, ..., 0) give irradiance 1.
_K1 = 2.0 / math.sqrt(3.0)  # (2/3) * sqrt(3)
_K2 = math.sqrt(15.0) / 4.0  # (1/4) * sqrt(15)
_K20 = math.sqrt(5.0) / 8.0  # (1/4) * sqrt(5) / 2
_K22 = math.sqrt(15.0) / 8.0  # (1/4) * sqrt(15) / 2


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


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 irradiance SH basis values [..., 9] of unit normals [..., 3].

    Order: 1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2 (l = 0, 1, 2; m = -l..l), each
    scaled by its Lambertian convolution constant and normalised so that the first
    basis function is 1.
    """
    x, y, z = normals.unbind(-1)
    return torch.stack(
        [
            torch.ones_like(x),
            _K1 * y,
            _K1 * z,
            _K1 * x,
            _K2 * x * y,
            _K2 * y * z,
            _K20 * (3.0 * z * z - 1.0),
            _K2 * x * z,
            _K22 * (x * x - y * y),
        ],
        dim=-1,
    )


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
