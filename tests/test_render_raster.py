"""Rasterize/interpolate: semantics, gradients and parity with the pure-torch reference."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from render_meshes import sphere_tensors

from facerecon_core.render import PerspectiveCamera, interpolate, rasterize
from facerecon_core.render import kernels
from facerecon_core.render.kernels import interpolate_numpy, rasterize_numpy
from facerecon_core.render.reference import interpolate_reference, rasterize_reference

TRI1 = torch.tensor([[0, 1, 2]], dtype=torch.int32)


def _clip(points: list[tuple[float, float, float, float]], dtype=torch.float32) -> torch.Tensor:
    """Clip positions [1, V, 4] from (ndc_x, ndc_y, ndc_z, w) tuples."""
    return torch.tensor([[(x * w, y * w, z * w, w) for x, y, z, w in points]], dtype=dtype)


def test_kernels_import_without_torch():
    code = ("import sys, facerecon_core.render.kernels, facerecon_core.render, facerecon_core.render.numpy_render, "
            "facerecon_core.reconstruction, facerecon_core.export, facerecon_core.pose; "
            "facerecon_core.pose.CropCamera(224).render_camera(); "
            "from facerecon_core.render import render_mesh_numpy, PerspectiveCamera; "
            "assert 'torch' not in sys.modules")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root)
    import facerecon_core.render as render

    assert all(callable(getattr(render, name)) for name in render.__all__)


def test_row_zero_is_bottom_and_background_is_zero():
    pos = _clip([(-0.5, 0.2, 0.0, 1.0), (0.5, 0.2, 0.0, 1.0), (0.0, 0.9, 0.0, 1.0)])
    rast = rasterize(pos, TRI1, (16, 16))
    rows = torch.nonzero(rast[0, ..., 3])[:, 0]
    assert len(rows) > 0 and rows.min() >= 8  # upper half of NDC -> high rows
    background = rast[0, ..., 3] == 0
    assert (rast[0][background] == 0).all()


def test_u_weights_vertex_zero_and_depth():
    pos = _clip([(-1.0, -1.0, 0.3, 2.0), (1.2, -1.0, 0.3, 1.0), (-1.0, 1.2, 0.3, 1.5)])
    rast = rasterize(pos, TRI1, (32, 32))
    covered = rast[0, ..., 3] > 0
    u, v = rast[0, ..., 0], rast[0, ..., 1]
    assert u[0, 0] > 0.85 and v[0, 31] > 0.85  # bottom-left near vertex 0, bottom-right near vertex 1
    assert torch.allclose(rast[0, ..., 2][covered], torch.tensor(0.3))
    out = interpolate(torch.eye(3), rast, TRI1)
    assert torch.allclose(out[0, ..., 0], u) and torch.allclose(out[0, ..., 1], v)
    assert torch.allclose(out.sum(-1)[0][covered], torch.tensor(1.0))


@pytest.mark.parametrize("near_first", [True, False])
def test_depth_test_keeps_smallest_depth(near_first):
    near = [(-0.8, -0.8, -0.5, 1.0), (0.8, -0.8, -0.5, 1.0), (0.0, 0.8, -0.5, 1.0)]
    far = [(-0.8, 0.8, 0.5, 1.0), (0.0, -0.8, 0.5, 1.0), (0.8, 0.8, 0.5, 1.0)]
    pos = _clip(near + far if near_first else far + near)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast = rasterize(pos, tri, (32, 32))
    near_id = 1 if near_first else 2
    centre = rast[0, 16, 16]
    assert centre[3] == near_id and centre[2] == pytest.approx(-0.5)
    assert set(rast[0, ..., 3].unique().tolist()) == {0.0, 1.0, 2.0}


def test_numpy_api_dtypes_and_behind_camera():
    pos = _clip([(-0.5, -0.5, 0.0, 1.0), (0.5, -0.5, 0.0, 1.0), (0.0, 0.5, 0.0, 1.0)]).numpy()
    tri = TRI1.numpy()
    r32 = rasterize_numpy(pos, tri, (8, 8))
    r64 = rasterize_numpy(pos.astype(np.float64), tri, (8, 8))
    assert r32.dtype == np.float32 and r64.dtype == np.float64 and np.allclose(r32, r64)
    assert interpolate_numpy(np.ones((3, 2)), r64, tri).shape == (1, 8, 8, 2)
    behind = pos.copy()
    behind[0, 2, 3] = -1.0
    assert not rasterize_numpy(behind, tri, (8, 8)).any()  # a vertex at w <= 0 drops the triangle


def test_band_split_matches_whole_image():
    pos, tri, cam = _scene(torch.float64)
    pos_np, tri_np = pos.numpy(), tri.numpy()
    rng = np.random.default_rng(0)
    attr = rng.standard_normal((1, pos_np.shape[1], 3))
    grad_out = rng.standard_normal((2, *cam.resolution, 3))
    results = []
    for n_bands in (1, 7):
        rast = np.zeros((2, *cam.resolution, 4))
        kernels._rasterize_kernel(pos_np, tri_np, rast, n_bands)
        grad_attr = np.zeros((2, n_bands) + attr.shape[1:])
        grad_rast = np.empty_like(rast)
        kernels._interpolate_backward_kernel(attr, rast, tri_np, grad_out, grad_attr, grad_rast, True, True)
        grad_pos = np.zeros((2, n_bands, pos_np.shape[1], 4))
        kernels._rasterize_backward_kernel(pos_np, tri_np, rast, grad_rast, grad_pos)
        results.append((rast, grad_rast, grad_attr.sum(1), grad_pos.sum(1)))
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])
    assert np.allclose(results[0][2], results[1][2]) and np.allclose(results[0][3], results[1][3])
    assert np.array_equal(results[0][0][:1], rasterize_numpy(pos_np[:1], tri_np, cam.resolution))


def test_input_errors():
    pos = torch.zeros(1, 3, 4)
    with pytest.raises(ValueError, match="int32"):
        rasterize(pos, TRI1.long(), (8, 8))
    with pytest.raises(ValueError, match=r"\[B, V, 4\]"):
        rasterize(pos[..., :3], TRI1, (8, 8))
    with pytest.raises(ValueError, match="outside"):
        rasterize(pos, TRI1 + 1, (8, 8))
    with pytest.raises(TypeError, match="float32"):
        rasterize(pos.half(), TRI1, (8, 8))
    with pytest.raises(ValueError, match="backend"):
        rasterize(pos, TRI1, (8, 8), backend="gl")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            rasterize(pos, TRI1, (8, 8), backend="cuda")


def _gradcheck_mesh():
    """Two perspective triangles on an 8x8 grid with every pixel centre far from every edge."""
    pos = _clip(
        [(-0.83, -0.71, 0.1, 1.3), (0.77, -0.62, 0.2, 0.9), (-0.05, 0.81, 0.3, 1.1),
         (0.12, -0.93, -0.2, 1.0), (0.91, 0.13, 0.0, 1.2), (0.33, 0.87, -0.1, 0.8)],
        torch.float64,
    )
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    # Distance guard: every barycentric of every (pixel, triangle) pair is far from 0.
    lam = []
    for t in range(2):
        v = pos[0, tri[t].long()]
        px = (torch.arange(8, dtype=torch.float64) + 0.5) / 4 - 1
        py, pxx = torch.meshgrid(px, px, indexing="ij")
        a = v[:, 0].view(3, 1, 1) - pxx * v[:, 3].view(3, 1, 1)
        b = v[:, 1].view(3, 1, 1) - py * v[:, 3].view(3, 1, 1)
        c = torch.linalg.cross(a, b, dim=0)
        lam.append(c / c.sum(0))
    assert torch.stack(lam).abs().min() > 1e-3
    return pos, tri


def test_gradcheck_rasterize():
    pos, tri = _gradcheck_mesh()
    pos.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: rasterize(p, tri, (8, 8))[..., :2], (pos,))


def test_gradcheck_interpolate():
    pos, tri = _gradcheck_mesh()
    rast = rasterize(pos, tri, (8, 8)).repeat(2, 1, 1, 1)
    uv = rast[..., :2].clone().requires_grad_(True)
    attr = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    shared = torch.randn(1, 6, 2, dtype=torch.float64, requires_grad=True)

    def fn(a, s, uv_):
        r = torch.cat([uv_, rast[..., 2:]], -1)
        return interpolate(a, r, tri), interpolate(s, r, tri)

    assert torch.autograd.gradcheck(fn, (attr, shared, uv))


def _scene(dtype=torch.float64):
    """Two overlapping icospheres seen in perspective, in a batch of two poses."""
    big_v, big_f = sphere_tensors(2, (0.0, 0.0, -4.0), 1.0, dtype)
    small_v, small_f = sphere_tensors(1, (0.5, 0.3, -3.2), 0.5, dtype)
    verts = torch.cat([big_v, small_v])
    tri = torch.cat([big_f, small_f + len(big_v)])
    cam = PerspectiveCamera(focal=60.0, width=48, height=40)
    batch = torch.stack([verts, verts + torch.tensor([0.2, -0.1, 0.3], dtype=dtype)])
    return cam.to_clip(batch), tri, cam


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_matches_reference(dtype):
    pos, tri, cam = _scene(dtype)
    rast = rasterize(pos, tri, cam.resolution, backend="cpu")
    ref = rasterize_reference(pos, tri, cam.resolution)
    ids, ref_ids = rast[..., 3], ref[..., 3]
    assert (ids == ref_ids).double().mean() >= 0.999
    assert (ids > 0).double().mean() > 0.2
    same = (ids == ref_ids) & (ids > 0)
    assert (rast[same][:, :3] - ref[same][:, :3]).abs().max() < 1e-3
    attr = torch.randn(1, pos.shape[1], 5, dtype=dtype)
    out = interpolate(attr, rast, tri)
    assert torch.allclose(out, interpolate_reference(attr, rast, tri), atol=1e-5)


def test_cpu_gradients_match_reference():
    pos, tri, cam = _scene(torch.float64)
    attr = torch.randn(2, pos.shape[1], 3, dtype=torch.float64)
    weights = torch.randn(2, *cam.resolution, 3, dtype=torch.float64)
    grads = []
    for rast_fn, interp_fn in [(rasterize, interpolate), (rasterize_reference, interpolate_reference)]:
        p = pos.clone().requires_grad_(True)
        a = attr.clone().requires_grad_(True)
        rast = rast_fn(p, tri, cam.resolution)
        (interp_fn(a, rast, tri) * weights).sum().backward()
        grads.append((rast[..., 3], p.grad, a.grad))
    (ids, gp, ga), (ref_ids, ref_gp, ref_ga) = grads
    assert torch.equal(ids, ref_ids)
    assert torch.allclose(gp, ref_gp, rtol=1e-6, atol=1e-8)
    assert torch.allclose(ga, ref_ga, rtol=1e-6, atol=1e-8)


@pytest.mark.cuda
@pytest.mark.skipif(
    not (torch.cuda.is_available() and importlib.util.find_spec("nvdiffrast") is not None),
    reason="needs CUDA and nvdiffrast",
)
def test_cuda_matches_cpu():
    pos, tri, cam = _scene(torch.float32)
    attr = torch.randn(2, pos.shape[1], 3)
    rast_cpu = rasterize(pos, tri, cam.resolution, backend="cpu")
    rast_gpu = rasterize(pos.cuda(), tri.cuda(), cam.resolution, backend="cuda").cpu()
    ids, gpu_ids = rast_cpu[..., 3], rast_gpu[..., 3]
    assert (ids == gpu_ids).double().mean() >= 0.99
    same = (ids == gpu_ids) & (ids > 0)
    assert (rast_cpu[same] - rast_gpu[same]).abs().max() < 1e-3
    out_gpu = interpolate(attr.cuda(), rast_cpu.cuda(), tri.cuda(), backend="cuda").cpu()
    assert torch.allclose(interpolate(attr, rast_cpu, tri, backend="cpu"), out_gpu, atol=1e-4)
