"""The whole BFM head around the face (forehead, ears and neck: all 53,215 vertices), for rendering.

The face model is the no-neck part of the BFM; rendered alone, a synthetic face floats on its
background with an edge where real photos show ears, neck and more skin. :class:`HeadModel` renders
the full BFM surface instead, with the face model's vertices, coefficients and triangles as its face
part (so every label stays the face model's). Its triangles are the face model's, then a Delaunay
triangulation of the BFM UV layout over the rest (the layout unwraps the whole surface; no
triangle of it is longer than :data:`MAX_EDGE_MM`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon_core.facemodel import sources
from facerecon_core.facemodel.model import FaceModel

MAX_EDGE_MM = 8.0  # triangles of the UV triangulation longer than this on the mean head are dropped
MATCH_TOLERANCE_MM = 1e-3  # the face model's vertices must equal the head's face part within this


@dataclass(frozen=True)
class HeadModel:
    mean_shape: np.ndarray  # (N, 3) float32, mm, in the face model's frame
    id_basis: np.ndarray  # (K_id, N, 3) float32, the face model's coefficients
    exp_basis: np.ndarray  # (K_exp, N, 3) float32
    albedo_mean: np.ndarray  # (N, 3) float32, linear RGB in [0, 1]
    triangles: np.ndarray  # (F, 3) int32, counter-clockwise from outside; the first n_face_triangles are the face's
    face_indices: np.ndarray  # (V,) int64: the face model's vertices among the head's
    n_face_triangles: int

    @classmethod
    def build(cls, face: FaceModel, source: Path | None = None, param_stats: Path | None = None) -> HeadModel:
        """The head of ``face`` from its BFM source folder (default ``<shared>/bfm``).

        Raises :class:`~facerecon_core.facemodel.SourceError` when the source's face part does not
        match ``face`` (another model, or a face model with an albedo basis the head cannot follow).
        """
        from facerecon_core import paths
        from facerecon_core.facemodel.build import PARAM_STATS

        source = Path(source) if source else paths.bfm_source_dir()
        raw = sources.read_3ddfa_subset(source, param_stats or source.parent / PARAM_STATS)
        topo = sources.read_topology(source)
        mean = (raw.mean_shape.reshape(-1, 3) / 1000.0 - face.bfm_offset_mm).astype(np.float32)

        def basis(full: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray((full / 1000.0).T.reshape(full.shape[1], -1, 3), np.float32)

        id_basis, exp_basis = basis(raw.id_basis), basis(raw.exp_basis)
        idx = face.full_indices
        if (face.n_albedo or id_basis.shape[0] != face.n_id or exp_basis.shape[0] != face.n_exp
                or len(idx) != face.n_vertices):
            raise sources.SourceError(f"{source}: its components do not match the face model {face.source!r}")
        for head_part, face_part in ((mean[idx], face.mean_shape), (id_basis[:, idx], face.id_basis),
                                     (exp_basis[:, idx], face.exp_basis)):
            if np.abs(head_part - face_part).max() > MATCH_TOLERANCE_MM:
                raise sources.SourceError(f"{source}: its face part does not match the face model "
                                          f"(content hash {face.content_hash[:12]})")
        mean[idx], id_basis[:, idx], exp_basis[:, idx] = face.mean_shape, face.id_basis, face.exp_basis
        albedo = (raw.albedo_mean.reshape(-1, 3) / 255.0).astype(np.float32)
        albedo[idx] = face.albedo_mean
        face_tris = idx[face.triangles].astype(np.int32)
        rest = rest_triangles(topo.uv_full, mean, idx, face_tris)
        return cls(mean, id_basis, exp_basis, albedo, np.concatenate([face_tris, rest]), idx, len(face_tris))

    @property
    def n_vertices(self) -> int:
        return len(self.mean_shape)

    def vertices(self, id_coeff: np.ndarray | None = None, exp_coeff: np.ndarray | None = None) -> np.ndarray:
        """Mean + identity + expression (the face model's coefficients): (K,) → (N, 3)."""
        shape = self.mean_shape
        for coeff, basis in ((id_coeff, self.id_basis), (exp_coeff, self.exp_basis)):
            if coeff is not None:
                shape = shape + np.tensordot(np.asarray(coeff, np.float32), basis, axes=([-1], [0]))
        return shape

    def around(self, face_vertices: np.ndarray, id_coeff: np.ndarray, exp_coeff: np.ndarray) -> np.ndarray:
        """The head's vertices (N, 3) with its face part exactly ``face_vertices`` (V, 3)."""
        head = self.vertices(id_coeff, exp_coeff)
        head[self.face_indices] = face_vertices
        return head

    def albedo_around(self, face_albedo: np.ndarray, tint) -> np.ndarray:
        """Per-vertex albedo (N, 3): the mean albedo × ``tint`` (the face's skin-tone factors), its face
        part exactly ``face_albedo`` (V, 3)."""
        albedo = self.albedo_mean * tint
        albedo[self.face_indices] = face_albedo
        return albedo


def rest_triangles(uv: np.ndarray, vertices: np.ndarray, face_indices: np.ndarray,
                   face_triangles: np.ndarray) -> np.ndarray:
    """Triangles (F, 3) int32 over the vertices outside the face: a Delaunay triangulation of ``uv``
    without the triangles of face vertices only and those longer than :data:`MAX_EDGE_MM`, wound as
    the face triangles are in UV (so counter-clockwise from outside, as they are)."""
    from scipy.spatial import Delaunay

    tri = Delaunay(uv).simplices.astype(np.int32)
    in_face = np.zeros(len(uv), bool)
    in_face[face_indices] = True
    tri = tri[~in_face[tri].all(axis=1)]
    edges = np.stack([np.linalg.norm(vertices[tri[:, a]] - vertices[tri[:, b]], axis=1)
                      for a, b in ((0, 1), (1, 2), (2, 0))], axis=1)
    tri = tri[edges.max(axis=1) <= MAX_EDGE_MM]
    face_sign = np.sign(np.median(_uv_area(uv, face_triangles)))
    flip = np.sign(_uv_area(uv, tri)) != face_sign
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return np.ascontiguousarray(tri)


def _uv_area(uv: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = uv[tri[:, 0]], uv[tri[:, 1]], uv[tri[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
