"""Binary PLY of the expressive face with per-vertex colour and normals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facerecon_core.export._common import MM_TO_M, atomic_files, vertex_colors, vertex_normals
from facerecon_core.reconstruction import FaceReconstruction


def write_ply(rec: FaceReconstruction, path: str | os.PathLike) -> Path:
    """Write a binary little-endian PLY atomically; returns the path.

    Vertices: the expressive face (or, with ``rec.head``, the expressive head) in metres (face model frame) with
    float normals and uchar RGB sampled bilinearly from the texture at the vertex UVs; faces as ``uchar``-counted
    ``int`` index lists (counter-clockwise from outside).
    """
    if rec.head is not None:
        return _write(path, rec.head.expressive(), rec.head.triangles, rec.head.vertex_colours(), "head")
    return _write(path, rec.vertices(), rec.triangles, vertex_colors(rec), "face")


def _write(path: str | os.PathLike, verts: np.ndarray, triangles: np.ndarray, colors: np.ndarray, what: str) -> Path:
    path = Path(path)
    vertex = np.empty(len(verts), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"),
                                         ("nz", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    xyz = (verts.astype(np.float64) * MM_TO_M).astype(np.float32)
    normals = vertex_normals(verts, triangles)
    for k, axis in enumerate("xyz"):
        vertex[axis] = xyz[:, k]
        vertex["n" + axis] = normals[:, k]
    for k, channel in enumerate(("red", "green", "blue")):
        vertex[channel] = colors[:, k]
    face = np.empty(len(triangles), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"] = 3
    face["idx"] = triangles
    header = "\n".join([
        "ply",
        "format binary_little_endian 1.0",
        f"comment facerecon {what} reconstruction (identity + expression)",
        "comment units: metres; frame: x = subject's left, y up, z toward the viewer",
        f"element vertex {len(vertex)}",
        *(f"property float {name}" for name in ("x", "y", "z", "nx", "ny", "nz")),
        *(f"property uchar {name}" for name in ("red", "green", "blue")),
        f"element face {len(face)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]) + "\n"
    with atomic_files(path) as (tmp,):
        with open(tmp, "wb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(vertex.tobytes())
            fh.write(face.tobytes())
    return path


def read_ply(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PLY written by :func:`write_ply`: ``vertices`` (m), ``normals``, ``colors``, ``faces``."""
    raw = Path(path).read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    n_vert = int(next(line.split()[2] for line in header if line.startswith("element vertex")))
    n_face = int(next(line.split()[2] for line in header if line.startswith("element face")))
    vdtype = np.dtype([("xyz", "<f4", (3,)), ("n", "<f4", (3,)), ("rgb", "u1", (3,))])
    fdtype = np.dtype([("n", "u1"), ("idx", "<i4", (3,))])
    vertex = np.frombuffer(raw, vdtype, n_vert, end)
    face = np.frombuffer(raw, fdtype, n_face, end + n_vert * vdtype.itemsize)
    return {"vertices": vertex["xyz"].copy(), "normals": vertex["n"].copy(), "colors": vertex["rgb"].copy(),
            "faces": face["idx"].copy()}
