"""Writers of a :class:`~facerecon_core.reconstruction.FaceReconstruction` (numpy/OpenCV, no torch).

Every writer is atomic: files are written to temporary names beside the targets and renamed
only when everything succeeded, so a failure leaves nothing half-written. Mesh files (OBJ,
GLB, PLY) are in **metres** in the face model's frame (x = subject's left, y up, z toward the
viewer); the NPZ keeps the reconstruction's own units (mm).

- ``write_obj``  → NAME.obj + NAME.mtl + NAME_albedo.png (expressive face, vt + vn)
- ``write_glb``  → NAME.glb (identity mesh + morph target "Expression", embedded texture)
- ``write_ply``  → NAME.ply (binary, expressive face, per-vertex colour from the texture)
- ``write_npz``  → NAME.npz (everything, loadable without pickle)
- ``write_overlay`` → NAME_overlay.png (shaded face, outline and landmarks over the photo)
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from facerecon_core.export._common import MM_TO_M, atomic_files, resize_texture
from facerecon_core.export.gltf import TARGET_NAME, write_glb
from facerecon_core.export.obj import write_obj
from facerecon_core.export.overlay import overlay_image, write_overlay
from facerecon_core.export.ply import write_ply
from facerecon_core.reconstruction import FaceReconstruction

FORMATS = ("obj", "glb", "ply", "npz")

__all__ = [
    "FORMATS", "MM_TO_M", "TARGET_NAME", "atomic_files", "overlay_image", "write_all", "write_glb", "write_npz",
    "write_obj", "write_overlay", "write_ply",
]


def write_npz(rec: FaceReconstruction, path: str | os.PathLike) -> Path:
    """Write ``rec.to_arrays()`` as a compressed NPZ atomically (read back with ``FaceReconstruction.load``)."""
    from facerecon_core.io.atomic import atomic_save_npz

    return atomic_save_npz(path, rec.to_arrays())


def write_all(
    rec: FaceReconstruction,
    photo: np.ndarray | str | os.PathLike | None,
    outdir: str | os.PathLike,
    name: str,
    formats: tuple[str, ...] | list[str] = ("obj", "glb", "ply", "npz"),
    texture_size: int | None = 512,
) -> list[Path]:
    """Write ``outdir/name.{formats}`` plus ``name_overlay.png`` (when ``photo`` is given).

    ``texture_size`` sets the side of the texture in the OBJ/GLB/PLY outputs (None = as is; the
    NPZ always keeps the original). Returns the written paths; on any failure the files written
    so far for this face are removed and the exception propagates.
    """
    formats = [f.lower().lstrip(".") for f in formats]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if not name or Path(name).name != name:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    base = outdir / name
    albedo = resize_texture(rec.albedo, texture_size)
    confidence = rec.texture_confidence
    if confidence is not None and confidence.shape != albedo.shape[:2]:
        from facerecon_core import imageops

        confidence = imageops.resize(confidence, albedo.shape[1], albedo.shape[0], "linear")
    mesh_rec = replace(rec, albedo=albedo, texture_confidence=confidence)
    written: list[Path] = []
    try:
        for fmt in dict.fromkeys(formats):
            if fmt == "obj":
                written += write_obj(mesh_rec, base.with_name(name + ".obj"))
            elif fmt == "glb":
                written.append(write_glb(mesh_rec, base.with_name(name + ".glb")))
            elif fmt == "ply":
                written.append(write_ply(mesh_rec, base.with_name(name + ".ply")))
            elif fmt == "npz":
                written.append(write_npz(rec, base.with_name(name + ".npz")))
        if photo is not None:
            written.append(write_overlay(rec, photo, base.with_name(name + "_overlay.png")))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
