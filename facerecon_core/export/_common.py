"""Shared pieces of the writers: multi-file atomic writes, units, normals, texture handling."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facerecon_core.io.atomic import atomic_path
from facerecon_core.reconstruction import FaceReconstruction

MM_TO_M = 1e-3
"""Mesh files (OBJ, glTF, PLY) are written in metres, the unit of glTF and Blender's default."""


@contextlib.contextmanager
def atomic_files(*targets: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary paths beside ``targets``; all are renamed into place only if the block succeeds.

    On an exception every temporary file is removed and no target is touched.
    """
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(t)) for t in targets]


def vertex_normals(verts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals (V, 3) float32 (numba, torch-free; plain numpy where the
    renderer is not installed, e.g. in the Blender add-on)."""
    try:
        from facerecon_core.render.numpy_render import vertex_normals as normals
    except ImportError:
        return vertex_normals_plain(verts, triangles)
    return normals(np.asarray(verts, np.float32), triangles).astype(np.float32)


def vertex_normals_plain(verts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """:func:`vertex_normals` in plain numpy (no numba): float64 accumulation, zero for unused vertices."""
    v = np.asarray(verts, np.float64)
    tri = np.asarray(triangles, np.int64)
    face_normals = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])  # 2 × area
    acc = np.zeros_like(v)
    for corner in range(3):
        np.add.at(acc, tri[:, corner], face_normals)
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    return (acc / np.maximum(norm, 1e-12)).astype(np.float32)


def resize_texture(texture: np.ndarray, size: int | None) -> np.ndarray:
    """The (T, T, 3) uint8 texture at ``size`` × ``size`` (unchanged when None or equal)."""
    if size is None or texture.shape[:2] == (size, size):
        return texture
    from facerecon_core import imageops

    return imageops.resize(texture, size, size, interpolation="area" if size < texture.shape[0] else "cubic")


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an H×W×3 uint8 RGB image."""
    from facerecon_core import imageops

    return imageops.encode_png(np.asarray(rgb, np.uint8))


def vertex_colors(rec: FaceReconstruction, texture: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex colours (V, 3) uint8 sampled bilinearly from the albedo texture at the UVs."""
    from facerecon_core.render.numpy_render import sample_texture

    tex = rec.albedo if texture is None else texture
    colors = sample_texture(tex, rec.uvs)
    return np.clip(colors * 255.0 + 0.5, 0, 255).astype(np.uint8)
