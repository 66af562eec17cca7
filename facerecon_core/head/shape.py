"""The head's shape for one face (numpy only): ICT's identity fitted to the face, the face area on the face's
own surface, the difference carried smoothly over the skin, the parts inside following the skin around them.

``face_points`` reads the face area off a face (our topology); ``displace`` moves the head so that its face
area lands on given points: the skin by a screened-Laplacian extension (:func:`extend`, conjugate gradients
on the rig's sparse system), the eyeballs and the jaws' teeth and gums as wholes (their skin neighbours' mean
move), the eyelashes with the lids.
"""

from __future__ import annotations

import functools

import numpy as np

from facerecon_core.head.rig import HeadRig

CG_TOLERANCE = 3e-4  # relative residual of the extension's solve
CG_MAX_STEPS = 500
EYE_SEAT_MAX_MM = 6.0
TEETH_SEAT_MAX_MM = 4.0
UPPER_JAW, LOWER_JAW = 2, 3  # the rigid groups of the teeth and gums (see HeadRig.rigid_group)


def face_points(rig: HeadRig, vertices: np.ndarray) -> np.ndarray:
    """The face area's points (F, C) on a face (V, C) of our topology (positions or per-vertex offsets)."""
    v = np.asarray(vertices, np.float64)
    return np.einsum("fk,fkc->fc", rig.face_barycentric.astype(np.float64), v[rig.face_triangles])


def _ell(csr: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A CSR matrix as padded rows: (indices (n, d), values (n, d)), zeros where a row has fewer than d."""
    indptr, indices, data = csr
    counts = np.diff(indptr)
    width = max(int(counts.max(initial=0)), 1)
    rows = np.repeat(np.arange(len(counts)), counts)
    slot = np.arange(len(indices)) - np.repeat(indptr[:-1], counts)
    out_i = np.zeros((len(counts), width), np.int64)
    out_v = np.zeros((len(counts), width), np.float32)
    out_i[rows, slot], out_v[rows, slot] = indices, data
    return out_i, out_v


def _ell_dot(ell: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Padded rows (indices (n, d), values (n, d)) times ``x`` (m, C) → (n, C), a column of slots at a time."""
    indices, values = ell
    out = values[:, :1] * x[indices[:, 0]]
    for slot in range(1, indices.shape[1]):
        out += values[:, slot:slot + 1] * x[indices[:, slot]]
    return out


def extend(rig: HeadRig, values: np.ndarray) -> np.ndarray:
    """Values (F, C) on the face area → (skin_count, C) over the skin: equal on the face area, smooth and
    fading over about ten edges elsewhere ((L + εI) x = −L_uF values, solved by Jacobi-preconditioned CG)."""
    values = np.asarray(values, np.float32)
    system, coupling = _operators(rig)
    rhs = _ell_dot(coupling, values)
    inverse_diagonal = 1.0 / system[1][:, 0]  # each row's first entry is its diagonal (see _operators)
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = r * inverse_diagonal[:, None]
    p = z.copy()
    rz = (r * z).sum(0)
    limit = CG_TOLERANCE * np.maximum(np.linalg.norm(rhs, axis=0), 1e-12)
    for _ in range(CG_MAX_STEPS):
        if (np.linalg.norm(r, axis=0) <= limit).all():
            break
        ap = _ell_dot(system, p)
        step = rz / np.maximum((p * ap).sum(0), 1e-30)
        x += step * p
        r -= step * ap
        z = r * inverse_diagonal[:, None]
        rz_next = (r * z).sum(0)
        p = z + (rz_next / np.maximum(rz, 1e-30)) * p
        rz = rz_next
    out = np.zeros((rig.skin_count, values.shape[1]), np.float32)
    out[rig.face_vertices] = values
    out[rig.free_vertices] = x
    return out


@functools.lru_cache(maxsize=2)
def _operators(rig: HeadRig):
    """The rig's extension system (its diagonal first in each row) and coupling as padded rows."""
    indptr, indices, data = rig.system
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    order = np.lexsort((indices != rows, rows))  # within each row, the diagonal first
    return _ell((indptr, indices[order], data[order])), _ell(rig.coupling)


def displace(rig: HeadRig, vertices: np.ndarray, face_offsets: np.ndarray) -> np.ndarray:
    """``vertices`` (N, C) of the head moved by ``face_offsets`` (F, C) on the face area, the skin around it
    smoothly, the interior parts with their skin (rigid groups by their mean move); C = 3, or 3 per stacked
    shape."""
    skin = extend(rig, face_offsets)
    inner = np.einsum("ik,ikc->ic", rig.interior_weights.astype(np.float64), skin[rig.interior_neighbours])
    for group in np.unique(rig.rigid_group[rig.rigid_group >= 0]):
        members = rig.rigid_group == group
        inner[members] = inner[members].mean(0)
    out = np.asarray(vertices, np.float64).copy()
    out[: rig.skin_count] += skin
    out[rig.interior_vertices] += inner
    return out


def sphere_centre(points: np.ndarray) -> np.ndarray:
    """The centre (3,) of the sphere best fitting ``points`` (M, 3) (linear least squares)."""
    p = np.asarray(points, np.float64)
    solution = np.linalg.lstsq(np.c_[2 * p, np.ones(len(p))], (p**2).sum(1), rcond=None)[0]
    return solution[:3]


def seat_eyes(rig: HeadRig, vertices: np.ndarray) -> np.ndarray:
    """``vertices`` (N, 3) with each eyeball moved back along the gaze (−z) until every lid vertex in front of it
    lies at least as far from its centre as on ICT's own head (at most :data:`EYE_SEAT_MAX_MM`): the lids follow
    the face, whose lids may sit further back than ICT's, and the eyeballs must stay behind them."""
    out = np.asarray(vertices, np.float64).copy()
    for eye, part in enumerate(("eyeball_left", "eyeball_right")):
        ids = rig.part(part)
        mine = rig.lid_eye == eye
        need = rig.lid_radius[mine].astype(np.float64)
        d = out[rig.lid_vertices[mine]] - sphere_centre(out[ids])
        # the centre moved back by t: |d + t ẑ| ≥ need ⇔ t ≥ −d_z + √(d_z² − |d|² + need²) where |d| < need
        disc = d[:, 2] ** 2 - (d**2).sum(1) + need**2
        inside = ((d**2).sum(1) < need**2) & (disc > 0) & (d[:, 2] > 0)  # lids in front of the centre
        back = np.where(inside, -d[:, 2] + np.sqrt(np.maximum(disc, 0.0)), 0.0)
        out[ids, 2] -= min(float(back.max(initial=0.0)), EYE_SEAT_MAX_MM)
    return out


def seat_teeth(rig: HeadRig, vertices: np.ndarray) -> np.ndarray:
    """``vertices`` (N, 3) with each jaw's teeth and gums (their rigid groups) moved back (−z) until the lips
    near the mouth opening lie at least as far in front of them as on ICT's own head (at most
    :data:`TEETH_SEAT_MAX_MM`)."""
    out = np.asarray(vertices, np.float64).copy()
    clearance = out[rig.lip_vertices, 2] - out[rig.lip_teeth, 2]
    short = rig.lip_clearance.astype(np.float64) - clearance
    group_of = np.full(rig.n_vertices, -1, np.int64)
    group_of[rig.interior_vertices] = rig.rigid_group
    for group in (UPPER_JAW, LOWER_JAW):
        mine = group_of[rig.lip_teeth] == group
        back = min(max(float(short[mine].max(initial=0.0)), 0.0), TEETH_SEAT_MAX_MM)
        out[rig.interior_vertices[rig.rigid_group == group], 2] -= back
    return out


def fit_identity(rig: HeadRig, face_offsets: np.ndarray) -> np.ndarray:
    """ICT identity coefficients (K,) whose displacement best explains ``face_offsets`` (F, 3) on the face area."""
    return rig.fit_matrix.astype(np.float64) @ np.asarray(face_offsets, np.float64).reshape(-1)


def identity_displacement(rig: HeadRig, coefficients: np.ndarray) -> np.ndarray:
    """(N, 3) displacement of ICT's identity components at ``coefficients``."""
    return np.tensordot(np.asarray(coefficients, np.float32), rig.identity_basis.astype(np.float32), axes=(0, 0))


def head_vertices(rig: HeadRig, face: np.ndarray) -> np.ndarray:
    """The neutral head (N, 3) around a neutral face ``face`` (V, 3) of our topology: ICT's identity fitted to
    the face's difference from the base head, then its face area moved onto the face."""
    targets = face_points(rig, face)
    fitted = rig.base.astype(np.float64) + identity_displacement(rig, fit_identity(rig, targets - rig.base[rig.face_vertices]))
    return seat(rig, displace(rig, fitted, targets - fitted[rig.face_vertices]))


def seat(rig: HeadRig, vertices: np.ndarray) -> np.ndarray:
    """The eyeballs behind the lids and the teeth behind the lips (:func:`seat_eyes`, :func:`seat_teeth`)."""
    return seat_teeth(rig, seat_eyes(rig, vertices))


def size_ratio(rig: HeadRig, points: np.ndarray) -> float:
    """The RMS spread of the face area's ``points`` (F, 3) over that on the base head (the mean face): the scale
    of the head's expression keys."""
    base = rig.base[rig.face_vertices].astype(np.float64)
    return float(np.sqrt(((points - points.mean(0)) ** 2).sum(1).mean() / ((base - base.mean(0)) ** 2).sum(1).mean()))
