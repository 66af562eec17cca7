"""Wavefront OBJ + MTL + PNG texture of the expressive face."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facerecon_core.export._common import MM_TO_M, atomic_files, encode_png, resize_texture, vertex_normals
from facerecon_core.head.texture import OPACITY
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
    With ``rec.head``, the expressive head instead (:func:`_write_head`; also ``NAME_eyes.png``).
    """
    if rec.head is not None:
        return _write_head(rec, *obj_paths(path))
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


def _write_head(rec: FaceReconstruction, obj_path: Path, mtl_path: Path, png_path: Path) -> list[Path]:
    """The expressive head: ICT's quads and triangles, grouped by material (``usemtl``), its own UVs; the skin
    texture in ``NAME_albedo.png``, the eyes' in ``NAME_eyes.png``, flat colours for gums, teeth and eyelashes."""
    head = rec.head
    eyes_path = png_path.with_name(png_path.name.replace("_albedo.png", "_eyes.png"))
    verts = head.expressive()
    normals = vertex_normals(verts, head.triangles)
    images = {"skin": (png_path, head.skin_texture), "eyes": (eyes_path, head.eye_texture)}
    starts = np.concatenate([[0], np.cumsum(head.poly_sizes)[:-1]])
    with atomic_files(obj_path, mtl_path, png_path, eyes_path) as (obj_tmp, mtl_tmp, png_tmp, eyes_tmp):
        png_tmp.write_bytes(encode_png(head.skin_texture))
        eyes_tmp.write_bytes(encode_png(head.eye_texture))
        lines = ["# facerecon head materials"]
        for name in head.materials:
            colour = head.colours.get(name, (1.0, 1.0, 1.0)) if name not in images else (1.0, 1.0, 1.0)
            lines += [f"newmtl {name}", "Ka 0 0 0", "Kd %.4f %.4f %.4f" % tuple(colour), "Ks 0 0 0", "Ns 1",
                      f"d {OPACITY.get(name, 1.0):g}", "illum 1"] + ([f"map_Kd {images[name][0].name}"] if name in images else [])
        mtl_tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with open(obj_tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("# facerecon head reconstruction (identity + expression)\n")
            if rec.source:
                fh.write(f"# source: {' '.join(rec.source.splitlines())}\n")
            fh.write("# units: metres; frame: x = subject's left, y up, z toward the viewer (face model frame)\n")
            for line in head.notice.splitlines()[:3]:
                fh.write(f"# {line}\n")
            fh.write(f"# {len(verts)} vertices, {len(head.poly_sizes)} polygons\n")
            fh.write(f"mtllib {mtl_path.name}\no head\n")
            fh.write(_rows("v %.7f %.7f %.7f\n", verts.astype(np.float64) * MM_TO_M))
            fh.write(_rows("vt %.6f %.6f\n", head.uvs.astype(np.float64)))
            fh.write(_rows("vn %.5f %.5f %.5f\n", normals.astype(np.float64)))
            fh.write("s 1\n")
            for index, name in enumerate(head.materials):
                fh.write(f"usemtl {name}\n")
                for size in (3, 4):
                    polygons = np.flatnonzero((head.poly_material == index) & (head.poly_sizes == size))
                    if not len(polygons):
                        continue
                    corners = starts[polygons][:, None] + np.arange(size)
                    v = head.poly_vertices[corners].astype(np.int64) + 1
                    t = head.poly_uvs[corners].astype(np.int64) + 1
                    fh.write(_rows("f" + " %d/%d/%d" * size + "\n", np.stack([v, t, v], -1).reshape(len(v), -1)))
    return [obj_path, mtl_path, png_path, eyes_path]
