"""CPU backend: autograd Functions around the numba kernels, with analytic backward."""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import kernels


def keep_torch_threads() -> None:
    """Keep torch's thread count (``OMP_NUM_THREADS``) through the numba kernels.

    numba's OpenMP layer, when it starts, sets the OpenMP thread count that torch shares to the number
    of cores: start it now and restore torch's count."""
    import numba

    threads = torch.get_num_threads()
    numba.get_num_threads()  # launches numba's threads
    torch.set_num_threads(threads)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
        rast = torch.from_numpy(kernels.rasterize_numpy(_np(pos), _np(tri), resolution))
        ctx.save_for_backward(pos, tri, rast)
        return rast

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rast: torch.Tensor):
        pos, tri, rast = ctx.saved_tensors
        grad = kernels.rasterize_backward_numpy(_np(pos), _np(tri), _np(rast), _np(grad_rast))
        return torch.from_numpy(grad), None, None


class _Interpolate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        out = torch.from_numpy(kernels.interpolate_numpy(_np(attr), _np(rast), _np(tri)))
        ctx.save_for_backward(attr, rast, tri)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        attr, rast, tri = ctx.saved_tensors
        want_attr, want_rast = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (want_attr or want_rast):
            return None, None, None
        grad_attr, grad_rast = kernels.interpolate_backward_numpy(
            _np(attr), _np(rast), _np(tri), _np(grad_out), want_attr, want_rast
        )
        return (
            None if grad_attr is None else torch.from_numpy(grad_attr),
            None if grad_rast is None else torch.from_numpy(grad_rast),
            None,
        )


def rasterize(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Rasterize ``pos`` [B, V, 4] on the CPU; see :mod:`facerecon_core.render.kernels`."""
    return _Rasterize.apply(pos, tri, resolution)


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Interpolate ``attr`` [1 or B, V, C] over ``rast`` on the CPU."""
    return _Interpolate.apply(attr, rast, tri)


class _VertexNormals(torch.autograd.Function):
    @staticmethod
    def forward(ctx, verts: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        tri_np = _np(tri).astype(np.int32, copy=False)
        ctx.save_for_backward(verts)
        ctx.tri = tri_np
        return torch.from_numpy(kernels.vertex_normals_numpy(_np(verts), tri_np))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        (verts,) = ctx.saved_tensors
        grad = kernels.vertex_normals_backward_numpy(_np(verts), ctx.tri, _np(grad_out))
        return torch.from_numpy(grad), None


def vertex_normals(verts: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Unit vertex normals of CPU ``verts`` [B, V, 3] with the numba kernels (analytic backward)."""
    return _VertexNormals.apply(verts, tri)
