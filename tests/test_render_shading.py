"""Camera, normals, SH lighting, texture sampling and ``render_mesh``."""

from __future__ import annotations

import math

import torch
from render_meshes import sphere_tensors

from facerecon_core.render import (
    PerspectiveCamera,
    euler_to_matrix,
    interpolate,
    rasterize,
    render_mesh,
    sample_texture,
    sh_basis,
    sh_shading,
    vertex_normals,
)


def test_sh_constant_gives_one():
    normals = torch.nn.functional.normalize(torch.randn(2, 50, 3), dim=-1)
    sh = torch.zeros(2, 3, 9)
    sh[:, :, 0] = 1.0
    assert torch.allclose(sh_shading(normals, sh), torch.ones(2, 50, 3))
    assert sh_basis(normals).shape == (2, 50, 9)


def test_sh_linear_band():
    # (A1 / A0) * Y1m / Y00 = (2/3) * sqrt(3): the l = 1 band is (2 / sqrt(3)) * (y, z, x).
    n = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    basis = sh_basis(n)
    k = 2.0 / math.sqrt(3.0)
    assert torch.allclose(basis[:, 1:4], k * torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]))


def test_vertex_normals_of_sphere_point_outward():
    verts, tri = sphere_tensors(2, (0.3, -0.2, 0.1), 2.0)
    normals = vertex_normals(verts[None], tri)[0]
    radial = torch.nn.functional.normalize(verts - torch.tensor([0.3, -0.2, 0.1], dtype=verts.dtype), dim=-1)
    assert (normals * radial).sum(-1).min() > 0.99
    assert torch.allclose(normals.norm(dim=-1), torch.ones(len(verts), dtype=verts.dtype))


def test_sample_texture_orientation():
    tex = torch.zeros(1, 3, 4, 6)
    tex[0, 0, 0] = 1.0  # top row red
    tex[0, 2, -1] = 1.0  # bottom row blue
    tex[0, 1, 1, 2] = 1.0  # one green texel: row 1, column 2
    uv = torch.tensor([[0.5, 1.0], [0.1, 0.0], [(2 + 0.5) / 6, 1 - (1 + 0.5) / 4]]).view(1, 1, 3, 2)
    out = sample_texture(tex, uv)[0, :, 0].T  # [3 samples, RGB]
    assert torch.allclose(out[0], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(out[1], torch.tensor([0.0, 0, 1]))
    assert torch.allclose(out[2], torch.tensor([0.0, 1, 0]))


def test_euler_to_matrix():
    angles = torch.tensor([[0.3, -0.5, 1.1]])
    r = euler_to_matrix(angles)[0]
    assert torch.allclose(r @ r.T, torch.eye(3), atol=1e-6) and torch.det(r) > 0
    single = [euler_to_matrix(torch.tensor(a)) for a in ([0.3, 0, 0], [0, -0.5, 0], [0, 0, 1.1])]
    assert torch.allclose(r, single[2] @ single[1] @ single[0], atol=1e-6)
    yaw = euler_to_matrix(torch.tensor([0.0, 0.2, 0.0]))
    assert torch.allclose(yaw @ torch.tensor([0.0, 0, 1]), torch.tensor([math.sin(0.2), 0, math.cos(0.2)]))


def test_camera_pixels_agree_with_rasterizer():
    cam = PerspectiveCamera(focal=40.0, width=40, height=30, cx=18.0, cy=16.5, near=0.5, far=50.0)
    verts = torch.tensor([[[-1.0, -0.8, -3.0], [1.5, -0.5, -5.0], [0.2, 1.2, -4.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast = rasterize(cam.to_clip(verts), tri, cam.resolution)
    points = interpolate(verts, rast, tri)  # perspective-correct camera-space points
    y, x = torch.nonzero(rast[0, ..., 3] > 0, as_tuple=True)
    assert len(y) > 50
    pixels = cam.to_pixels(points[0, y, x])
    expected = torch.stack([x + 0.5, (cam.height - 1 - y) + 0.5], -1).double()  # rows flipped to top-down
    assert torch.allclose(pixels, expected, atol=1e-9)
    depth_ndc = rast[0, y, x, 2]
    z = -points[0, y, x, 2]
    n, f = cam.near, cam.far
    assert torch.allclose(depth_ndc, (f + n) / (f - n) - 2 * f * n / ((f - n) * z), atol=1e-9)


def _sphere_scene(batch: int = 1):
    verts, tri = sphere_tensors(3, (0.0, 0.0, -5.0), 1.0, torch.float32)
    cam = PerspectiveCamera(focal=80.0, width=48, height=48)
    return verts.expand(batch, -1, -1).contiguous(), tri, cam


def test_render_mesh_lit_side_and_orientation():
    verts, tri, cam = _sphere_scene()
    verts = verts + torch.tensor([0.0, 0.6, 0.0])  # move up: must land in the top image rows
    sh = torch.zeros(1, 3, 9)
    sh[:, :, 0] = 0.5
    sh[:, :, 3] = 0.5  # light from +x (image right)
    out = render_mesh(verts, tri, cam, sh=sh, background=torch.full((1, 3, 48, 48), 0.25))
    assert out.image.shape == (1, 3, 48, 48) and out.mask.shape == (1, 1, 48, 48)
    rows = torch.nonzero(out.mask[0, 0])[:, 0].float()
    assert rows.mean() < 24 - 3
    assert torch.allclose(out.image[0][:, out.mask[0, 0] == 0], torch.tensor(0.25))
    lum = out.image[0].mean(0)
    covered = out.mask[0, 0] > 0
    left = lum[:, :20][covered[:, :20]].mean()
    right = lum[:, 28:][covered[:, 28:]].mean()
    assert right > left + 0.3
    n = out.normals[0][:, covered]
    assert torch.allclose(n.norm(dim=0), torch.ones(n.shape[1]), atol=1e-4)
    assert n[2].min() > -0.05  # visible normals face the camera (+z)


def test_render_mesh_gradients():
    verts, tri, cam = _sphere_scene(batch=2)
    verts = verts.clone().requires_grad_(True)
    uv = (verts.detach()[0, :, :2] * 0.5 + 0.5).clamp(0, 1)
    texture = torch.rand(2, 3, 16, 16, requires_grad=True)
    sh = torch.zeros(2, 3, 9)
    sh[:, :, 0] = 0.8
    sh[:, :, 2] = 0.3
    sh.requires_grad_(True)
    out = render_mesh(verts, tri, cam, uv=uv, texture=texture, sh=sh)
    out.image.square().sum().backward()
    for t in (verts, texture, sh):
        assert t.grad is not None and t.grad.abs().sum() > 0 and torch.isfinite(t.grad).all()
    colors = torch.rand(2, verts.shape[1], 3, requires_grad=True)
    render_mesh(verts.detach(), tri, cam, vertex_colors=colors).image.sum().backward()
    assert colors.grad.abs().sum() > 0
