"""Mesh connectivity: 1-ring neighbourhoods and the uniform Laplacian used by L_reg."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp


def one_ring(triangles: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """1-ring neighbours of every vertex as CSR arrays ``(indptr, indices)``, sorted, unique.

    ``indices[indptr[i]:indptr[i + 1]]`` are the vertices sharing an edge with vertex ``i``.
    """
    t = np.asarray(triangles, np.int64)
    src = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0]])
    dst = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2]])
    edges = np.unique(src * n_vertices + dst)
    src, dst = edges // n_vertices, edges % n_vertices
    indptr = np.zeros(n_vertices + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n_vertices), out=indptr[1:])
    return indptr, dst


def laplacian_matrix(indptr: np.ndarray, indices: np.ndarray) -> sp.csr_matrix:
    """The uniform graph Laplacian L = I − D⁻¹A as a sparse (V, V) matrix."""
    import scipy.sparse as sp  # training and fitting only: the add-on ships without scipy

    n = len(indptr) - 1
    counts = np.maximum(np.diff(indptr), 1)
    adjacency = sp.csr_matrix((np.repeat(1.0 / counts, np.diff(indptr)), indices, indptr), shape=(n, n))
    return (sp.identity(n, format="csr") - adjacency).tocsr()


def uniform_laplacian(vertices: np.ndarray, laplacian: sp.csr_matrix) -> np.ndarray:
    """δ_i = v_i − mean of its 1-ring for vertices (V, 3) or (B, V, 3); zero inside a plane."""
    vertices = np.asarray(vertices)
    flat = np.moveaxis(vertices, -2, 0).reshape(vertices.shape[-2], -1)
    out = (laplacian @ flat).reshape(np.moveaxis(vertices, -2, 0).shape)
    return np.moveaxis(out, 0, -2)


def boundary_vertices(triangles: np.ndarray) -> np.ndarray:
    """Sorted ids of the vertices on the mesh's open boundary (edges used by one triangle only)."""
    t = np.asarray(triangles, np.int64)
    edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    return np.unique(unique[counts == 1])
