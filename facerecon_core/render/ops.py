"""Public rasterization ops with nvdiffrast's semantics, dispatching to a backend.

``rasterize`` returns ``rast`` [B, H, W, 4] = (u, v, z/w, triangle_id + 1), zero on the
background, row 0 at NDC y = -1 (the bottom). ``interpolate`` returns per-pixel
attributes [B, H, W, C]. Both are differentiable: ``rast`` w.r.t. ``pos_clip`` through
(u, v) only, ``interpolate`` w.r.t. ``attr`` and (u, v) of ``rast``.

Backends: ``"cpu"`` (numba kernels, float32 or float64), ``"cuda"`` (nvdiffrast,
float32 only) and ``"auto"`` (``cuda`` for CUDA tensors when nvdiffrast imports, else
``cpu``, copying CUDA tensors to the CPU and the result back with a warning). The CPU
backend drops triangles with a vertex at w <= 0 where nvdiffrast clips them.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch

from . import cpu, cuda

Backend = Literal["auto", "cpu", "cuda"]


def _resolve(backend: str, *tensors: torch.Tensor) -> str:
    on_cuda = any(t.is_cuda for t in tensors)
    if backend == "auto":
        if not on_cuda:
            return "cpu"
        if cuda.available():
            return "cuda"
        warnings.warn(
            "CUDA tensors but nvdiffrast is not installed: rasterizing on the CPU (slow); "
            "install nvdiffrast for the cuda backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return "cpu-fallback"
    if backend == "cpu":
        if on_cuda:
            raise ValueError("the cpu render backend needs CPU tensors; move them with .cpu() or use backend='cuda'")
        return "cpu"
    if backend == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("backend='cuda' needs a CUDA build of torch and a CUDA device")
        cuda._dr()  # raises with install instructions when nvdiffrast is missing
        if not all(t.is_cuda for t in tensors):
            raise ValueError("backend='cuda' needs all tensors on a CUDA device")
        return "cuda"
    raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'cpu' or 'cuda'")


def _check_float(name: str, t: torch.Tensor, backend: str) -> None:
    backend = backend.removesuffix("-fallback")
    allowed = (torch.float32,) if backend == "cuda" else (torch.float32, torch.float64)
    if t.dtype not in allowed:
        names = " or ".join(str(d).removeprefix("torch.") for d in allowed)
        raise TypeError(f"{name} must be {names} for backend '{backend}', got {t.dtype}")


def _check_tri(tri: torch.Tensor) -> None:
    # Index bounds are checked by the CPU kernels' numpy wrappers.
    if tri.dtype != torch.int32 or tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"tri must be an int32 tensor of shape [F, 3], got {tri.dtype} {tuple(tri.shape)}")


def rasterize(
    pos_clip: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], backend: Backend = "auto"
) -> torch.Tensor:
    """Rasterize clip-space vertices ``pos_clip`` [B, V, 4] with triangles ``tri`` [F, 3] int32.

    ``resolution`` is ``(H, W)``. Returns ``rast`` [B, H, W, 4] in the dtype of ``pos_clip``.
    """
    if pos_clip.ndim != 3 or pos_clip.shape[2] != 4:
        raise ValueError(f"pos_clip must have shape [B, V, 4], got {tuple(pos_clip.shape)}")
    if len(resolution) != 2 or min(int(r) for r in resolution) <= 0:
        raise ValueError(f"resolution must be two positive ints (H, W), got {resolution}")
    name = _resolve(backend, pos_clip, tri)
    _check_float("pos_clip", pos_clip, name)
    _check_tri(tri)
    res = (int(resolution[0]), int(resolution[1]))
    if name == "cpu-fallback":
        return cpu.rasterize(pos_clip.cpu(), tri.cpu(), res).to(pos_clip.device)
    return (cuda if name == "cuda" else cpu).rasterize(pos_clip, tri, res)


def interpolate(
    attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor, backend: Backend = "auto"
) -> torch.Tensor:
    """Interpolate vertex attributes over ``rast``: ``u a[t0] + v a[t1] + (1 - u - v) a[t2]``.

    ``attr`` is [B, V, C], [1, V, C] (broadcast over the batch) or [V, C]; returns
    [B, H, W, C], zero on the background.
    """
    if rast.ndim != 4 or rast.shape[3] != 4:
        raise ValueError(f"rast must have shape [B, H, W, 4], got {tuple(rast.shape)}")
    if attr.ndim == 2:
        attr = attr.unsqueeze(0)
    if attr.ndim != 3 or attr.shape[0] not in (1, rast.shape[0]):
        raise ValueError(
            f"attr must have shape [V, C], [1, V, C] or [{rast.shape[0]}, V, C], got {tuple(attr.shape)}"
        )
    name = _resolve(backend, attr, rast, tri)
    _check_float("attr", attr, name)
    _check_float("rast", rast, name)
    _check_tri(tri)
    if name == "cpu-fallback":
        return cpu.interpolate(attr.cpu(), rast.cpu(), tri.cpu()).to(attr.device)
    return (cuda if name == "cuda" else cpu).interpolate(attr, rast, tri)
