"""Wavefront OBJ + MTL + PNG texture of the expressive face."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facerecon_core.export._common import MM_TO_M, atomic_files, encode_png, resize_texture, vertex_normals
from facerecon_core.reconstruction import FaceReconstruction


def obj_paths(path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """``(NAME.obj, NAME.mtl, NAME_albedo.png)`` for ``path`` = NAME.obj (or NAME)."""
    path = Path(path)
    if path.suffix.lower() == ".obj":
        path = path.with_suffix("")
    return path.with_name(path.name + ".obj"), path.with_name(path.name + ".mtl"), path.with_name(path.name + "_albedo.png")


def _rows(fmt: str, values: np.ndarray) -> str:
    """``fmt`` applied to every row of ``values`` (one C-level formatting call)."""
    return (fmt * len(values)) % tuple(values.ravel().tolist())


def _face_lines(triangles: np.ndarray) -> str:
    idx = np.repeat(triangles.astype(np.int64) + 1, 3, axis=1)  # v/vt/vn share indices
    return _rows("f %d/%d/%d %d/%d/%d %d/%d/%d\n", idx)


def write_obj(rec: FaceReconstruction, path: str | os.PathLike, texture_size: int | None = None) -> list[Path]:
    """Write ``NAME.obj``, ``NAME.mtl`` and ``NAME_albedo.png`` atomically; returns the three paths.

    The mesh is the expressive face (identity + expression) in the face model's frame, in
    **metres** (x = subject's left, y up, z toward the viewer), with ``vt`` (v up) and ``vn``;
    faces ``f v/vt/vn`` (the three indices are equal). ``texture_size`` resizes the texture.
    """
    obj_path, mtl_path, png_path = obj_paths(path)
    verts = rec.vertices()
    normals = vertex_normals(verts, rec.triangles)
    texture = resize_texture(rec.albedo, texture_size)
    material = "face"
    with atomic_files(obj_path, mtl_path, png_path) as (obj_tmp, mtl_tmp, png_tmp):
        png_tmp.write_bytes(encode_png(texture))
        mtl_tmp.write_text(
            "# facerecon face material\n"
            f"newmtl {material}\n"
            "Ka 0 0 0\nKd 1 1 1\nKs 0 0 0\nNs 1\nd 1\nillum 1\n"
            f"map_Kd {png_path.name}\n",
            encoding="utf-8",
        )
        with open(obj_tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("# facerecon face reconstruction (identity + expression)\n")
            if rec.source:
                fh.write(f"# source: {' '.join(rec.source.splitlines())}\n")
            fh.write("# units: metres; frame: x = subject's left, y up, z toward the viewer (face model frame)\n")
            fh.write(f"# {len(verts)} vertices, {len(rec.triangles)} triangles\n")
            fh.write(f"mtllib {mtl_path.name}\no face\n")
            fh.write(_rows("v %.7f %.7f %.7f\n", verts.astype(np.float64) * MM_TO_M))
            fh.write(_rows("vt %.6f %.6f\n", rec.uvs.astype(np.float64)))
            fh.write(_rows("vn %.5f %.5f %.5f\n", normals.astype(np.float64)))
            fh.write(f"usemtl {material}\ns 1\n")
            fh.write(_face_lines(rec.triangles))
    return [obj_path, mtl_path, png_path]
