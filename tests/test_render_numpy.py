"""The torch-free render path (``numpy_render``) against the torch one, and the numba normals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from render_meshes import sphere_tensors

from facerecon_core.render import PerspectiveCamera, render_mesh, sample_texture, sh_basis, sh_shading, vertex_normals
from facerecon_core.render import numpy_render as nr
from facerecon_core.render.shading import vertex_normals_torch


def _scene(batch: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    verts, tri = sphere_tensors(3, (0.0, 0.0, -5.0), 1.0, torch.float32)
    verts = verts.numpy()
    batched = np.stack([verts + rng.normal(0, 0.01, verts.shape) + (0.2 * b, -0.1 * b, 0) for b in range(batch)])
    cam = PerspectiveCamera(focal=70.0, width=40, height=32, cx=21.0, cy=15.5, near=0.5, far=50.0)
    uv = np.clip(verts[:, :2] * 0.5 + 0.5, 0, 1).astype(np.float32)
    texture = rng.random((batch, 12, 16, 3), dtype=np.float32)
    sh = np.zeros((batch, 3, 9), np.float32)
    sh[:, :, 0] = 0.8
    sh[:, :, 1:] = rng.normal(0, 0.2, (batch, 3, 8))
    background = rng.random((batch, 32, 40, 3), dtype=np.float32)
    colors = rng.random((batch, len(verts), 3), dtype=np.float32)
    return batched.astype(np.float32), tri.numpy(), cam, uv, texture, sh, background, colors


def _torch_render(verts, tri, cam, **kw):
    conv = {k: (None if v is None else torch.from_numpy(np.ascontiguousarray(v))) for k, v in kw.items()}
    for key in ("texture", "background"):
        if conv.get(key) is not None:
            conv[key] = conv[key].permute(0, 3, 1, 2)
    out = render_mesh(torch.from_numpy(verts), torch.from_numpy(tri), cam, **conv)
    return out.image.permute(0, 2, 3, 1).numpy(), out.mask[:, 0].numpy() > 0


@pytest.mark.parametrize("mode", ["texture", "colors", "white"])
@pytest.mark.parametrize("lit", [True, False])
def test_render_mesh_numpy_matches_torch(mode, lit):
    verts, tri, cam, uv, texture, sh, background, colors = _scene()
    kw = dict(sh=sh if lit else None, background=background if lit else None)
    if mode == "texture":
        kw.update(uv=uv, texture=texture)
    elif mode == "colors":
        kw.update(vertex_colors=colors)
    image, mask = nr.render_mesh_numpy(verts, tri, cam, **kw)
    ref_image, ref_mask = _torch_render(verts, tri, cam, **kw)
    assert image.shape == (2, 32, 40, 3) and image.dtype == np.float32 and mask.dtype == bool
    assert mask.sum() > 200 and (mask == ref_mask).all()
    assert np.abs(image - ref_image).max() < 1e-4


def test_render_mesh_numpy_single_mesh_and_uint8_inputs():
    verts, tri, cam, uv, texture, sh, background, _ = _scene(batch=1)
    tex8 = (texture[0] * 255).round().astype(np.uint8)
    image, mask = nr.render_mesh_numpy(verts[0], tri, cam, uv=uv, texture=tex8, sh=sh[0])
    ref, ref_mask = _torch_render(verts, tri, cam, uv=uv, texture=tex8[None].astype(np.float32) / 255, sh=sh)
    assert image.shape == (1, 32, 40, 3) and (mask == ref_mask).all()
    assert np.abs(image - ref).max() < 1e-4
    assert (image[~mask] == 0).all()


def test_camera_is_array_agnostic():
    cam = PerspectiveCamera(focal=40.0, width=40, height=30, cx=18.0, cy=16.5, near=0.5, far=50.0)
    pts = np.random.default_rng(1).normal(0, 1, (5, 7, 3)) - (0, 0, 6)
    clip_np, pix_np = cam.to_clip(pts), cam.to_pixels(pts)
    assert isinstance(clip_np, np.ndarray) and clip_np.shape == (5, 7, 4)
    clip_t = cam.to_clip(torch.from_numpy(pts))
    assert isinstance(clip_t, torch.Tensor)
    np.testing.assert_allclose(clip_np, clip_t.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pix_np, cam.to_pixels(torch.from_numpy(pts)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(nr.to_clip(cam, pts), clip_np)


def test_shading_and_sampling_mirrors():
    rng = np.random.default_rng(2)
    normals = rng.normal(size=(2, 50, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    sh = rng.normal(size=(2, 3, 9))
    np.testing.assert_allclose(nr.sh_basis(normals), sh_basis(torch.from_numpy(normals)).numpy(), atol=1e-12)
    np.testing.assert_allclose(nr.sh_shading(normals, sh), sh_shading(torch.from_numpy(normals), torch.from_numpy(sh)).numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(nr.sh_shading(normals[0], sh[0]), nr.sh_shading(normals, sh)[0], atol=1e-12)
    tex = rng.random((2, 5, 7, 3)).astype(np.float32)
    uv = rng.uniform(-0.2, 1.2, (2, 6, 9, 2)).astype(np.float32)  # includes border clamping
    ref = sample_texture(torch.from_numpy(tex).permute(0, 3, 1, 2), torch.from_numpy(uv)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(nr.sample_texture(tex, uv), ref, atol=1e-6)
    np.testing.assert_allclose(nr.sample_texture(tex[1], uv[1]), ref[1], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numba_vertex_normals_match_torch(dtype):
    verts, tri = sphere_tensors(2, (0.3, -0.2, 0.1), 2.0, dtype)
    verts = (verts + 0.05 * torch.randn(verts.shape, dtype=dtype)).expand(2, -1, -1).contiguous()
    fast, plain = vertex_normals(verts, tri), vertex_normals_torch(verts, tri)
    assert fast.dtype == dtype
    assert torch.allclose(fast, plain, atol=1e-6 if dtype == torch.float32 else 1e-12)
    np.testing.assert_allclose(nr.vertex_normals(verts.numpy(), tri.numpy()), plain.numpy(), atol=1e-6)
    np.testing.assert_allclose(nr.vertex_normals(verts[0].numpy(), tri.numpy()), plain[0].numpy(), atol=1e-6)


def test_numba_vertex_normals_gradient():
    verts, tri = sphere_tensors(1, (0.0, 0.0, 0.0), 1.0, torch.float64)
    verts = (verts + 0.1 * torch.randn(verts.shape, dtype=torch.float64))[None].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: vertex_normals(v, tri), (verts,))
    g = torch.randn(verts.shape, dtype=torch.float64)
    (vertex_normals(verts, tri) * g).sum().backward()
    fast = verts.grad.clone()
    verts.grad = None
    (vertex_normals_torch(verts, tri) * g).sum().backward()
    assert torch.allclose(fast, verts.grad, atol=1e-10)
