"""Differentiable rasterization with nvdiffrast's semantics, plus camera and shading.

Backends: ``cpu`` (numba kernels of our own, see :mod:`.kernels`), ``cuda``
(nvdiffrast) and a brute-force pure-torch reference (:mod:`.reference`, tests only).
Torch is imported lazily, so ``import facerecon_core.render.kernels`` works without it; the
torch-free inference path is :mod:`.numpy_render` (``render_mesh_numpy``) with the torch-free
:class:`.camera.PerspectiveCamera`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "rasterize": ".ops",
    "interpolate": ".ops",
    "sample_texture": ".shading",
    "vertex_normals": ".shading",
    "sh_basis": ".shading",
    "sh_shading": ".shading",
    "PerspectiveCamera": ".camera",
    "euler_to_matrix": ".camera",
    "render_mesh": ".renderer",
    "RenderOutput": ".renderer",
    "render_mesh_numpy": ".numpy_render",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from .camera import PerspectiveCamera, euler_to_matrix
    from .ops import interpolate, rasterize
    from .numpy_render import render_mesh_numpy
    from .renderer import RenderOutput, render_mesh
    from .shading import sample_texture, sh_basis, sh_shading, vertex_normals


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
