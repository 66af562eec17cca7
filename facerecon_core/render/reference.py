"""Brute-force pure-torch rasterizer with the exact semantics of the CPU backend.

Every pixel is tested against every triangle, so memory is O(B * H * W * F): use it
only on tiny meshes (tests). Gradients come from torch autograd and, like the real
backends, reach ``pos_clip`` only through the barycentrics (u, v).
"""

from __future__ import annotations

import torch


def rasterize_reference(pos_clip: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Reference of :func:`facerecon_core.render.rasterize` (``pos_clip`` [B, V, 4])."""
    height, width = resolution
    dtype, device = pos_clip.dtype, pos_clip.device
    px = (torch.arange(width, dtype=torch.float64, device=device) + 0.5) * (2.0 / width) - 1.0
    py = (torch.arange(height, dtype=torch.float64, device=device) + 0.5) * (2.0 / height) - 1.0
    py, px = (g.reshape(1, -1, 1, 1) for g in torch.meshgrid(py, px, indexing="ij"))  # [1, P, 1, 1]
    v = pos_clip.double()[:, tri.long()]  # [B, F, 3, 4]
    x, y, z, w = (v[..., k].unsqueeze(1) for k in range(4))  # [B, 1, F, 3]
    c = torch.linalg.cross(x - px * w, y - py * w, dim=-1)  # [B, P, F, 3]
    s = c.sum(-1)
    inside = ((c * s.sign().unsqueeze(-1)) >= 0).all(-1) & (s != 0) & (w > 0).all(-1)
    zw = ((c * z).sum(-1) / (c * w).sum(-1)).detach()
    inside &= (zw >= -1) & (zw <= 1)
    depth = torch.where(inside, zw, torch.full_like(zw, float("inf")))
    best = depth.argmin(-1, keepdim=True)  # first (lowest id) on ties
    hit = inside.gather(-1, best)
    s_best = s.gather(-1, best)
    s_best = torch.where(hit, s_best, torch.ones_like(s_best))  # keep gradients finite off-mesh
    lam = c.gather(2, best.unsqueeze(-1).expand(-1, -1, -1, 3)).squeeze(2) / s_best
    rast = torch.cat([lam[..., :2], zw.gather(-1, best), (best + 1).to(zw.dtype)], dim=-1)
    rast = torch.where(hit, rast, torch.zeros_like(rast))
    return rast.reshape(pos_clip.shape[0], height, width, 4).to(dtype)


def interpolate_reference(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Reference of :func:`facerecon_core.render.interpolate`."""
    if attr.ndim == 2:
        attr = attr.unsqueeze(0)
    attr = attr.expand(rast.shape[0], -1, -1)
    ids = rast[..., 3].long()
    hit = (ids > 0).unsqueeze(-1)
    corners = tri.long()[(ids - 1).clamp(min=0)]  # [B, H, W, 3]
    batch = torch.arange(rast.shape[0], device=rast.device).view(-1, 1, 1, 1)
    a = attr[batch, corners]  # [B, H, W, 3, C]
    u, v = rast[..., 0:1], rast[..., 1:2]
    out = u * a[..., 0, :] + v * a[..., 1, :] + (1 - u - v) * a[..., 2, :]
    return torch.where(hit, out, torch.zeros_like(out))
