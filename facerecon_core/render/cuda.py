"""CUDA backend: a thin wrapper around nvdiffrast (imported only when this backend is used)."""

from __future__ import annotations

import torch

_CONTEXTS: dict[torch.device, object] = {}


def _dr():
    try:
        import nvdiffrast.torch as dr
    except ImportError as exc:
        raise RuntimeError(
            "the cuda render backend needs nvdiffrast: install it with `pip install setuptools wheel ninja && "
            "pip install --no-build-isolation git+https://github.com/NVlabs/nvdiffrast.git` (it compiles "
            "against your CUDA toolkit), or use backend='cpu'"
        ) from exc
    return dr


def available() -> bool:
    """True when CUDA is usable and nvdiffrast imports."""
    if not torch.cuda.is_available():
        return False
    try:
        _dr()
    except RuntimeError:
        return False
    return True


def _context(device: torch.device):
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    ctx = _CONTEXTS.get(device)
    if ctx is None:
        ctx = _CONTEXTS[device] = _dr().RasterizeCudaContext(device=device)
    return ctx


def rasterize(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """nvdiffrast's ``rasterize`` without the derivative buffer."""
    return _dr().rasterize(_context(pos.device), pos.contiguous(), tri.contiguous(), resolution, grad_db=False)[0]


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """nvdiffrast's ``interpolate`` without the derivative output."""
    return _dr().interpolate(attr.contiguous(), rast, tri.contiguous())[0]
